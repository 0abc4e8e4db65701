"""Training of the shipped detector and segmenter on seeded synthetic data.

Seeds: training images use ``seed``, the held-out split ``seed + 10_000`` (never seen in training).
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from monai.losses import DiceCELoss

from models.domains import domain_spec
from models.offline import ultralytics_module
from models.registry import WEIGHTS_DIR, ModelCard, sha256_file, write_card
from models.segmenter import UNetConfig, build_unet, crop_roi, roi_window, save_segmenter
from models.synthetic import Sample, samples_for

HELD_OUT_OFFSET = 10_000


def export_yolo_dataset(domain: str, out_dir: Path, n_train: int, n_val: int, seed: int) -> Path:
    """Write a YOLO-format dataset (PNG + label txt + data.yaml); returns the yaml path."""
    spec = domain_spec(domain)
    splits = {
        "train": samples_for(domain, seed, n_train),
        "val": samples_for(domain, seed + HELD_OUT_OFFSET, n_val),
    }
    for split, samples in splits.items():
        (out_dir / "images" / split).mkdir(parents=True, exist_ok=True)
        (out_dir / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i, sample in enumerate(samples):
            h, w = sample.image.shape
            cv2.imwrite(str(out_dir / "images" / split / f"{i:05d}.png"), sample.image)
            rows = []
            for (x1, y1, x2, y2), cls in zip(sample.boxes, sample.class_ids, strict=True):
                cx, cy, bw, bh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h
                rows.append(f"{cls} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
            (out_dir / "labels" / split / f"{i:05d}.txt").write_text("\n".join(rows))
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(spec.class_names))
    yaml_path = out_dir / "data.yaml"
    yaml_path.write_text(f"path: {out_dir}\ntrain: images/train\nval: images/val\nnames:\n{names}\n")
    return yaml_path


def train_detector(
    domain: str,
    work_dir: Path,
    *,
    epochs: int = 20,
    n_train: int = 240,
    n_val: int = 80,
    seed: int = 0,
    model_yaml: str = "yolo11n.yaml",
    output: Path | None = None,
) -> ModelCard:
    """Train a YOLO detector from its yaml on synthetic data; write weights and card."""
    YOLO = ultralytics_module().YOLO
    spec = domain_spec(domain)
    data_yaml = export_yolo_dataset(domain, work_dir / f"{domain}_data", n_train, n_val, seed)
    started = time.monotonic()
    model = YOLO(model_yaml, task="detect")
    model.train(
        data=str(data_yaml),
        epochs=epochs,
        imgsz=spec.image_size,
        batch=16,
        device="cpu" if not torch.cuda.is_available() else 0,
        workers=2,
        seed=seed,
        deterministic=True,
        project=str(work_dir / "runs"),
        name=f"{domain}_detector",
        exist_ok=True,
        plots=False,
        verbose=False,
        cache=True,
        amp=False,  # on CUDA, ultralytics' AMP self-check downloads a model
        mosaic=1.0,
        close_mosaic=3,
        fliplr=0.5,
        flipud=0.5,
        degrees=0.0,
        hsv_h=0.0,
        hsv_s=0.0,
    )
    train_seconds = time.monotonic() - started
    best = work_dir / "runs" / f"{domain}_detector" / "weights" / "best.pt"
    target = output or WEIGHTS_DIR / spec.detector_file
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(best, target)
    metrics = evaluate_detector_file(target, data_yaml, spec.image_size)
    card = ModelCard(
        name=f"argus-{domain}-detector",
        version=dt.date.today().strftime("%Y.%m.%d"),
        task="detection",
        architecture=f"ultralytics {model_yaml.removesuffix('.yaml').upper()} from yaml, not pretrained",
        domain=domain,
        class_names=list(spec.class_names),
        weights_file=target.name,
        sha256=sha256_file(target),
        size_bytes=target.stat().st_size,
        input={"imgsz": spec.image_size, "channels": "gray replicated to 3", "dtype": "uint8"},
        training={
            "generator": f"models.synthetic.samples_for('{domain}', seed={seed})",
            "train_images": n_train,
            "held_out_images": n_val,
            "held_out_seed": seed + HELD_OUT_OFFSET,
            "epochs": epochs,
            "train_seconds_cpu": round(train_seconds, 1),
        },
        metrics=metrics,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    write_card(card, target)
    return card


def evaluate_detector_file(weights: Path, data_yaml: Path, image_size: int) -> dict[str, Any]:
    """mAP50 (overall and per class) of weights on the dataset's held-out split."""
    model = ultralytics_module().YOLO(str(weights), task="detect")
    res = model.val(
        data=str(data_yaml),
        split="val",
        imgsz=image_size,
        batch=16,
        device="cpu",
        plots=False,
        verbose=False,
        workers=0,
    )
    names = model.names
    per_class = {
        names[int(c)]: round(float(ap), 4) for c, ap in zip(res.box.ap_class_index, res.box.ap50, strict=True)
    }
    return {
        "map50": round(float(res.box.map50), 4),
        "map50_95": round(float(res.box.map), 4),
        "per_class_ap50": per_class,
    }


def roi_pairs(
    samples: list[Sample], config: UNetConfig, rng: np.random.Generator, jitter: float
) -> tuple[np.ndarray, np.ndarray]:
    """ROI crops and their masks, boxes jittered the way a detector's boxes would be."""
    images, masks = [], []
    for sample in samples:
        for mask, box in zip(sample.masks, sample.boxes, strict=True):
            x1, y1, x2, y2 = box
            w, h = x2 - x1, y2 - y1
            noisy = (
                x1 + rng.normal(0, jitter) * w,
                y1 + rng.normal(0, jitter) * h,
                x2 + rng.normal(0, jitter) * w,
                y2 + rng.normal(0, jitter) * h,
            )
            window = roi_window(noisy, sample.image.shape, config.margin)
            images.append(crop_roi(sample.image, window, config.roi_size))
            m = crop_roi(mask.astype(np.uint8) * 255, window, config.roi_size) >= 0.5
            masks.append(m)
    return np.stack(images)[:, None], np.stack(masks)[:, None].astype(np.int64)


def dice_score(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice over a whole set of binary masks (1.0 when both are empty)."""
    inter = float(np.logical_and(pred, truth).sum())
    total = float(pred.sum() + truth.sum())
    return 1.0 if total == 0 else 2 * inter / total


def train_segmenter(
    domain: str,
    *,
    steps: int = 600,
    n_train: int = 300,
    n_val: int = 80,
    seed: int = 0,
    config: UNetConfig | None = None,
    output: Path | None = None,
) -> ModelCard:
    """Train a MONAI U-Net on ROI crops of synthetic findings; write weights and card."""
    spec = domain_spec(domain)
    config = config or UNetConfig()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x_train, y_train = roi_pairs(samples_for(domain, seed, n_train), config, rng, jitter=0.08)
    x_val, y_val = roi_pairs(samples_for(domain, seed + HELD_OUT_OFFSET, n_val), config, rng, jitter=0.08)
    net = build_unet(config)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    started = time.monotonic()
    net.train()
    for _ in range(steps):
        idx = torch.from_numpy(rng.integers(0, len(xt), 32))
        xb, yb = xt[idx], yt[idx]
        if rng.random() < 0.5:
            xb, yb = xb.flip(-1), yb.flip(-1)
        if rng.random() < 0.5:
            xb, yb = xb.flip(-2), yb.flip(-2)
        opt.zero_grad()
        loss = loss_fn(net(xb), yb)
        loss.backward()
        opt.step()
        sched.step()
    train_seconds = time.monotonic() - started
    net.eval()
    with torch.inference_mode():
        pred = torch.cat(
            [net(torch.from_numpy(x_val[i : i + 64])).argmax(1) for i in range(0, len(x_val), 64)]
        )
    dice = dice_score(pred.numpy() == 1, y_val[:, 0] == 1)
    target = output or WEIGHTS_DIR / spec.segmenter_file
    target.parent.mkdir(parents=True, exist_ok=True)
    save_segmenter(net, config, target, meta={"domain": domain})
    card = ModelCard(
        name=f"argus-{domain}-unet",
        version=dt.date.today().strftime("%Y.%m.%d"),
        task="segmentation",
        architecture="MONAI UNet " + ", ".join(f"{k}={v}" for k, v in asdict(config).items()),
        domain=domain,
        class_names=["background", "finding"],
        weights_file=target.name,
        sha256=sha256_file(target),
        size_bytes=target.stat().st_size,
        input={"roi_size": config.roi_size, "margin": config.margin, "scale": "uint8 / 255"},
        training={
            "generator": f"models.synthetic.samples_for('{domain}', seed={seed})",
            "train_rois": len(x_train),
            "held_out_rois": len(x_val),
            "held_out_seed": seed + HELD_OUT_OFFSET,
            "steps": steps,
            "batch": 32,
            "loss": "DiceCE",
            "train_seconds_cpu": round(train_seconds, 1),
        },
        metrics={"dice": round(dice, 4), "box_jitter": 0.08},
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    write_card(card, target)
    return card
