"""Detector choices on the CPU: YOLO11n vs YOLO12n, input size, and PyTorch vs exported ONNX / TorchScript.

Architectures: the network forward of each yaml at the domain's class count (weights do not change
its cost), next to the held-out accuracy of one training run per architecture made the same way
(same data, same wall-clock budget), whose model cards are kept in ``benchmarks/records/``.
Input sizes: the shipped network run at each size (its cost depends on the size, not the weights), next
to the held-out accuracy of a detector fine-tuned at that size (its card, in ``benchmarks/records/``).
Formats: the shipped detector exported by ``models.export`` (which checks it reproduces the
detections), run through ``Detector.detect`` like any detector weights.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.models import REPEATS, detector_scaling, median_seconds

DOMAIN = "industrial"
IMAGES = 32
BATCH_SIZES = (1, 8)
INPUT_SIZES = (256, 320)
RECORDS = Path(__file__).resolve().parent / "records"


def _images() -> list[np.ndarray]:
    from models.synthetic import HELD_OUT_OFFSET, LATEST_GENERATOR, samples_for

    return [s.image for s in samples_for(DOMAIN, HELD_OUT_OFFSET + 500, IMAGES, version=LATEST_GENERATOR)]


def _forward_ms(network: Any, images: list[np.ndarray], batch: int) -> float:
    """ms per image of the fused network's forward pass (no pre/post-processing, the same for both)."""
    import torch

    tensor = torch.from_numpy(np.stack(images)).float().div(255)[:, None].repeat(1, 3, 1, 1)

    def run() -> None:
        with torch.inference_mode():
            for start in range(0, len(tensor), batch):
                network(tensor[start : start + batch])

    return median_seconds(run) / len(images) * 1000


def architectures(images: list[np.ndarray]) -> list[dict[str, Any]]:
    """Per architecture: parameters, forward ms / image by batch size, and its recorded training run."""
    from models.domains import domain_spec
    from models.offline import ultralytics_module
    from models.registry import ModelCard
    from models.train import DETECTOR_ARCHS

    ultralytics_module()  # offline flags before ultralytics' own modules are imported
    from ultralytics.nn.tasks import DetectionModel

    rows = []
    for arch in DETECTOR_ARCHS:
        network = DetectionModel(f"{arch}.yaml", nc=len(domain_spec(DOMAIN).class_names), verbose=False)
        network = network.fuse(verbose=False).eval()
        record = RECORDS / f"{DOMAIN}_detector_{arch}.json"
        rows.append(
            {
                "arch": arch,
                "parameters": sum(p.numel() for p in network.parameters()),
                "ms": {b: _forward_ms(network, images, b) for b in BATCH_SIZES},
                "card": ModelCard.model_validate_json(record.read_text()) if record.exists() else None,
            }
        )
    return rows


def input_sizes(images: list[np.ndarray]) -> dict[int, dict[str, Any]]:
    """Per input size: the shipped detector's images / s at it, and the record of a detector trained at it."""
    from models.detector import load_detector
    from models.registry import ModelCard, resolve_weights

    ref = resolve_weights("detector", DOMAIN)
    rows = {}
    for size in INPUT_SIZES:
        record = RECORDS / f"{DOMAIN}_detector_imgsz{size}.json"
        rows[size] = {
            "rates": detector_scaling(load_detector(ref.path, ref.sha256, "cpu", size), images, BATCH_SIZES),
            "card": ModelCard.model_validate_json(record.read_text()) if record.exists() else None,
        }
    return rows


def formats(images: list[np.ndarray]) -> dict[str, dict[int, float]]:
    """Images / s through ``Detector.detect`` for the shipped weights and each export of them."""
    from models.detector import EXPORT_FORMATS, load_detector
    from models.export import export_detector
    from models.registry import resolve_weights

    ref = resolve_weights("detector", DOMAIN)
    paths = {"pytorch": (ref.path, ref.sha256)}
    folder = Path(tempfile.mkdtemp(prefix="argus-bench-export-"))
    for fmt, suffix in EXPORT_FORMATS.items():
        card = export_detector(ref.path, fmt, folder / f"detector{suffix}", domain=DOMAIN)
        paths[fmt] = (folder / card.weights_file, card.sha256)
    return {
        name: detector_scaling(load_detector(path, sha, "cpu"), images, BATCH_SIZES)
        for name, (path, sha) in paths.items()
    }


def _accuracy_cells(card: Any, metrics: str | None = None) -> str:
    """mAP50, AP50 per class and training time of a record; ``metrics`` names a nested result (the
    card's 200-image ``evaluation``) to use instead of the training-time one."""
    if card is None:
        return "no record | – | –"
    result = card.metrics[metrics] if metrics else card.metrics
    classes = ", ".join(f"{name} {c['ap50']:.2f}" for name, c in result["per_class"].items())
    training = card.training
    spent = f"{training['epochs']} epochs in {training['train_seconds_cpu'] / 60:.0f} min"
    return f"{result['map50']:.3f} | {classes} | {spent}"


def section() -> list[str]:
    """Run the detector benchmarks; the BENCHMARKS.md section as markdown lines."""
    import torch

    from models.offline import configure_offline_ml

    configure_offline_ml(Path(tempfile.mkdtemp(prefix="argus-bench-")) / "ultralytics")
    images = _images()
    archs = architectures(images)
    sizes = input_sizes(images)
    rates = formats(images)
    base = rates["pytorch"]
    lines = [
        "## Detector architectures and export formats",
        "",
        f"{DOMAIN.capitalize()} detector, {IMAGES} held-out synthetic 256x256 images (latest generator), "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads, medians of {REPEATS} runs.",
        "",
        "Architectures: network forward (fused, no pre/post-processing) built from each yaml, and the "
        "held-out mAP50 of one training run each made the same way (from the yaml, same images, same "
        "wall-clock budget; cards in `benchmarks/records/`):",
        "",
        "| arch | parameters | ms / image, batch 1 | ms / image, batch 8 | held-out mAP50 | AP50 per class "
        "| training |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in archs:
        ms = row["ms"]
        lines.append(
            f"| {row['arch']} | {row['parameters'] / 1e6:.2f} M | {ms[1]:.1f} | {ms[8]:.1f} | "
            f"{_accuracy_cells(row['card'])} |"
        )
    small = sizes[INPUT_SIZES[0]]["rates"]
    lines += [
        "",
        "Input size: the shipped network letterboxed to each size (images / s through `Detector.detect`), "
        "and the held-out mAP50 (200 images) of the detector trained at that size on the same 1 500 images "
        "(256 px: fine-tuned from the generator-1 detector; 320 px: fine-tuned further from the 256 px one; "
        "cards in `benchmarks/records/`):",
        "",
        "| input | batch 1 | batch 8 | batch 8 vs 256 | held-out mAP50 | AP50 per class | training |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {size} px | {row['rates'][1]:.1f} | {row['rates'][8]:.1f} | "
            f"{row['rates'][8] / small[8]:.2f}x | {_accuracy_cells(row['card'], 'evaluation')} |"
            for size, row in sizes.items()
        ],
    ]
    lines += [
        "",
        "Export formats of the shipped detector (`argus export`; each export reproduced the original's "
        "detections on 24 held-out images before it was timed), images / s through `Detector.detect`:",
        "",
        "| format | batch 1 | batch 8 | batch 8 vs PyTorch |",
        "|---|---|---|---|",
        *[f"| {name} | {r[1]:.1f} | {r[8]:.1f} | {r[8] / base[8]:.2f}x |" for name, r in rates.items()],
    ]
    return lines
