"""Training of the shipped detector and segmenter on seeded synthetic data.

Seeds: training images use ``seed``, the held-out split ``seed + 10_000`` (never trained on; the
detector's best epoch is picked on it and the card's metrics are from it). Both come from one generator
version (``models.synthetic.GENERATORS``), which the card records. ``argus evaluate`` scores on a third
split, ``seed + 20_000``, that no training step reads.
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

from models.detector import EXPORT_FORMATS, keep_torch_threads, load_detector
from models.domains import DomainSpec, domain_spec
from models.evaluation import dice_score, evaluate_detector, roi_pairs
from models.offline import ultralytics_module
from models.registry import WEIGHTS_DIR, ModelCard, sha256_file, write_card
from models.segmenter import SegmenterConfig, build_network, config_for, save_segmenter
from models.synthetic import HELD_OUT_OFFSET, generator_spec, samples_for

# Detector architectures trained from ultralytics' model yaml (never a .pt name: that downloads).
DETECTOR_ARCHS = ("yolo11n", "yolo12n")


def _generator_call(domain: str, seed: int, version: int) -> str:
    """The call that regenerates the training data, as the card records it."""
    return f"models.synthetic.samples_for('{domain}', seed={seed}, version={version})"


def export_yolo_dataset(
    domain: str, out_dir: Path, n_train: int, n_val: int, seed: int, generator_version: int = 1
) -> Path:
    """Write a YOLO-format dataset (PNG + label txt + data.yaml) into a fresh ``out_dir``; returns the
    yaml path."""
    spec = domain_spec(domain)
    if out_dir.exists():
        shutil.rmtree(out_dir)  # images left by a larger or other-version export would be trained on
    splits = {
        "train": samples_for(domain, seed, n_train, version=generator_version),
        "val": samples_for(domain, seed + HELD_OUT_OFFSET, n_val, version=generator_version),
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
    arch: str = "yolo11n",
    generator_version: int = 1,
    hours: float | None = None,
    output: Path | None = None,
    start_from: Path | None = None,
    image_size: int | None = None,
    learning_rate: float | None = None,
) -> ModelCard:
    """Train a YOLO detector (``arch`` in ``DETECTOR_ARCHS``) from its yaml on synthetic data of a
    generator version; write weights and card.

    With ``hours``, training stops after that long instead of after ``epochs``: ultralytics re-plans
    the epochs (and the learning-rate schedule) from the measured epoch time, which keeps a budget
    on a machine shared with other work. ``start_from`` fine-tunes from a YOLO checkpoint of the
    same architecture and classes (our shipped weights, say) instead of random weights: the usual way
    to adapt a detector to new data in a fraction of the time. ``image_size`` (default: the domain's
    image side) is the network input: larger upsamples the images, which thin defects gain from, at
    about the square of the ratio in time; the weights record it and inference uses it.
    ``learning_rate`` sets AdamW's initial rate instead of ultralytics' automatic choice (0.002 for one
    class): a fine-tune from a trained detector can lose what it knew at the automatic rate (the medical
    one fell below mAP50 0.1 after its warm-up in both runs) and a lower one keeps it.
    """
    if arch not in DETECTOR_ARCHS:
        raise ValueError(f"unknown detector architecture {arch!r}; expected one of {list(DETECTOR_ARCHS)}")
    generator_spec(generator_version)  # an unknown version fails before any work
    spec = domain_spec(domain)
    imgsz = image_size or spec.image_size
    if imgsz % 32:
        raise ValueError(f"image size {imgsz} must be a multiple of 32 (YOLO's largest stride)")
    if learning_rate is not None and not 0 < learning_rate < 1:
        raise ValueError(f"learning rate {learning_rate} must be between 0 and 1")
    optimizer = {} if learning_rate is None else {"optimizer": "AdamW", "lr0": learning_rate}
    start_sha, origin = None, "not pretrained"
    if start_from is not None:
        start_sha = sha256_file(start_from)
        origin = f"fine-tuned from {start_from.name} (sha256 {start_sha})"
        _check_start_weights(start_from, start_sha, arch, spec)
    YOLO = ultralytics_module().YOLO
    work_dir = work_dir.resolve()  # ultralytics puts a relative project under its own runs/ folder
    data_yaml = export_yolo_dataset(
        domain, work_dir / f"{domain}_data", n_train, n_val, seed, generator_version
    )
    started = time.monotonic()
    model = YOLO(f"{arch}.yaml", task="detect")
    if start_from is not None:
        model.load(str(start_from))
    threads: list[int] = []  # what torch trained with, for the card: training time depends on it
    model.add_callback("on_train_start", lambda trainer: threads.append(torch.get_num_threads()))
    with keep_torch_threads():  # ultralytics would train on cpu_count - 1 threads
        model.train(
            data=str(data_yaml),
            epochs=epochs,
            time=hours,
            imgsz=imgsz,
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
            # As ultralytics' automatic choice does for AdamW: bias warm-up from 0, not SGD's 0.1.
            **({**optimizer, "warmup_bias_lr": 0.0} if optimizer else {}),
            mosaic=1.0,
            close_mosaic=3,
            fliplr=0.5,
            flipud=0.5,
            degrees=0.0,
            hsv_h=0.0,
            hsv_s=0.0,
        )
    train_seconds = time.monotonic() - started
    best = Path(model.trainer.best)  # where this run wrote its best epoch
    target = output or WEIGHTS_DIR / spec.detector_file
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(best, target)
    detector = load_detector(target, sha256_file(target), "cpu")
    held_out = samples_for(domain, seed + HELD_OUT_OFFSET, n_val, version=generator_version)
    metrics = evaluate_detector(detector, held_out)
    metrics["ultralytics_val"] = ultralytics_val(target, data_yaml, imgsz)
    card = ModelCard(
        name=f"argus-{domain}-detector",
        version=dt.date.today().strftime("%Y.%m.%d"),
        task="detection",
        architecture=f"ultralytics {arch.upper()} from yaml, {origin}",
        domain=domain,
        class_names=list(spec.class_names),
        weights_file=target.name,
        sha256=sha256_file(target),
        size_bytes=target.stat().st_size,
        input={"imgsz": imgsz, "channels": "gray replicated to 3", "dtype": "uint8"},
        training={
            "generator": _generator_call(domain, seed, generator_version),
            "arch": arch,
            **({} if start_sha is None else {"start_from_sha256": start_sha}),
            **optimizer,
            "train_images": n_train,
            "held_out_images": n_val,
            "held_out_seed": seed + HELD_OUT_OFFSET,
            "epochs": model.trainer.epoch + 1,  # the epochs run, also under a time budget
            **({} if hours is None else {"time_budget_hours": hours}),
            "train_seconds_cpu": round(train_seconds, 1),
            "torch_threads": threads[0],
        },
        metrics=metrics,
        generator_version=generator_version,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    write_card(card, target)
    return card


def _check_start_weights(path: Path, sha256: str, arch: str, spec: DomainSpec) -> None:
    """Refuse a start checkpoint that is not a YOLO detector of ``arch`` with the domain's classes:
    copying weights between mismatched models transfers only some layers, silently."""
    if path.suffix in EXPORT_FORMATS.values():
        raise ValueError(f"{path} is an exported detector (inference only); fine-tuning needs a YOLO .pt")
    base = load_detector(path, sha256, "cpu")
    if base.class_names != spec.class_names:
        raise ValueError(f"{path} detects {list(base.class_names)}, not {list(spec.class_names)}")
    built_from = str(base.model.model.yaml.get("yaml_file", ""))
    if Path(built_from).stem != arch:
        raise ValueError(f"{path} is a {Path(built_from).stem or 'unknown'} model, not {arch}")


def ultralytics_val(weights: Path, data_yaml: Path, image_size: int) -> dict[str, Any]:
    """ultralytics' own mAP50 / mAP50-95 on a dataset's val split: a cross-check of ours."""
    model = ultralytics_module().YOLO(str(weights), task="detect")
    with keep_torch_threads():
        res = model.val(
            data=str(data_yaml),
            split="val",
            imgsz=image_size,
            batch=16,
            device="cpu",
            plots=False,
            verbose=False,
            workers=0,
            # Next to the dataset: a relative default would write runs/detect/val* into the working directory.
            project=str(data_yaml.parent / "val_runs"),
            exist_ok=True,
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


def train_segmenter(
    domain: str,
    *,
    arch: str = "unet",
    steps: int = 600,
    n_train: int = 300,
    n_val: int = 80,
    seed: int = 0,
    generator_version: int = 1,
    config: SegmenterConfig | None = None,
    output: Path | None = None,
) -> ModelCard:
    """Train a segmenter (U-Net or DeepLabV3+) on ROI crops of synthetic findings; write weights and card."""
    spec = domain_spec(domain)
    config = config or config_for(arch)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train = roi_pairs(samples_for(domain, seed, n_train, version=generator_version), config, rng, jitter=0.08)
    held_out_samples = samples_for(domain, seed + HELD_OUT_OFFSET, n_val, version=generator_version)
    held_out = roi_pairs(held_out_samples, config, rng, jitter=0.08)
    net = build_network(config)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    xt, yt = torch.from_numpy(train.images), torch.from_numpy(train.masks)
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
    x_val = held_out.images
    with torch.inference_mode():
        pred = torch.cat(
            [net(torch.from_numpy(x_val[i : i + 64])).argmax(1) for i in range(0, len(x_val), 64)]
        )
    dice = dice_score(pred.numpy() == 1, held_out.masks[:, 0] == 1)
    target = output or WEIGHTS_DIR / spec.segmenter_file(config.arch)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_segmenter(net, config, target, meta={"domain": domain})
    described = ", ".join(f"{k}={v}" for k, v in asdict(config).items() if k != "class_names")
    card = ModelCard(
        name=f"argus-{domain}-{config.arch}",
        version=dt.date.today().strftime("%Y.%m.%d"),
        task="segmentation",
        architecture=f"{config.architecture} {described}",
        domain=domain,
        class_names=list(config.class_names),
        weights_file=target.name,
        sha256=sha256_file(target),
        size_bytes=target.stat().st_size,
        input={"roi_size": config.roi_size, "margin": config.margin, "scale": "uint8 / 255"},
        training={
            "generator": _generator_call(domain, seed, generator_version),
            "train_rois": len(train.images),
            "held_out_rois": len(x_val),
            "held_out_seed": seed + HELD_OUT_OFFSET,
            "steps": steps,
            "batch": 32,
            "loss": "DiceCE",
            "parameters": sum(p.numel() for p in net.parameters()),
            "train_seconds_cpu": round(train_seconds, 1),
        },
        metrics={"dice": round(dice, 4), "box_jitter": 0.08},
        generator_version=generator_version,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    write_card(card, target)
    return card
