"""Detector export to ONNX or TorchScript for CPU inference, checked against the original.

ultralytics writes the exported file; this module adds what an operator needs to trust it: the
exported model is run next to the original on held-out synthetic images, and a model card for the
exported file records the source checksum and how closely the two agree. The file then loads like
any detector weights (``load_detector``, ``ARGUS_DETECTOR`` or ``--detector``).
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from models.boxes import box_iou
from models.detector import EXPORT_FORMATS, Detector, keep_torch_threads, load_detector
from models.domains import domain_spec
from models.offline import ultralytics_module
from models.registry import ModelCard, read_card, sha256_file, write_card
from models.synthetic import HELD_OUT_OFFSET, LATEST_GENERATOR, samples_for
from models.types import Detection

# An export that moves a box by more than this (IoU to its original) or changes a score by more than
# MAX_SCORE_DIFF is not the same model.
MIN_BOX_IOU = 0.95
MAX_SCORE_DIFF = 0.02


class ExportError(RuntimeError):
    """The exported model does not reproduce the original's detections."""


@dataclass(frozen=True)
class ExportCheck:
    """How the exported detector's output compares with the original's on the same images."""

    images: int
    detections: int
    mismatched_images: int  # images where the two models found a different number of boxes
    min_iou: float
    max_score_diff: float

    @property
    def faithful(self) -> bool:
        """Same boxes (to rounding) and scores on every image."""
        return (
            self.mismatched_images == 0
            and self.min_iou >= MIN_BOX_IOU
            and self.max_score_diff <= MAX_SCORE_DIFF
        )


def compare_detections(original: list[list[Detection]], exported: list[list[Detection]]) -> ExportCheck:
    """Pair each original detection with the exported one of its class that overlaps it most."""
    mismatched, min_iou, max_diff, count = 0, 1.0, 0.0, 0
    for ours, theirs in zip(original, exported, strict=True):
        if len(ours) != len(theirs):
            mismatched += 1
        for det in ours:
            count += 1
            same_class = [t for t in theirs if t.class_id == det.class_id]
            best = max(same_class, key=lambda t: box_iou(det.box, t.box), default=None)
            if best is None:
                min_iou = 0.0
                continue
            min_iou = min(min_iou, box_iou(det.box, best.box))
            max_diff = max(max_diff, abs(det.score - best.score))
    return ExportCheck(len(original), count, mismatched, round(min_iou, 4), round(max_diff, 4))


def _export_file(weights: Path, fmt: str, image_size: int, workdir: Path) -> Path:
    # ultralytics writes beside its source; a copy keeps the shipped weights folder untouched.
    source = workdir / weights.name
    shutil.copyfile(weights, source)
    model = ultralytics_module().YOLO(str(source), task="detect")
    options: dict[str, Any] = {"dynamic": True, "simplify": True} if fmt == "onnx" else {}
    try:
        with keep_torch_threads():
            written = model.export(format=fmt, imgsz=image_size, device="cpu", **options)
    except Exception as exc:  # a missing exporter package, an unsupported layer
        hint = " (install the onnx extra: pip install 'argus-imaging[onnx]')" if fmt == "onnx" else ""
        raise ExportError(f"cannot export {weights} to {fmt}: {exc}{hint}") from exc
    return Path(written)


def export_detector(
    weights: Path,
    fmt: str,
    output: Path,
    *,
    domain: str,
    check_images: int = 24,
    confidence: float = 0.25,
) -> ModelCard:
    """Export YOLO ``weights`` of ``domain`` to ``fmt`` at ``output``, with a card next to it.

    The exported model must reproduce the original's detections (at ``confidence``) on
    ``check_images`` held-out synthetic images, else ``ExportError`` and nothing is written.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {list(EXPORT_FORMATS)}")
    if output.suffix != EXPORT_FORMATS[fmt]:
        raise ValueError(f"a {fmt} export must be named *{EXPORT_FORMATS[fmt]}, not {output.name}")
    domain_spec(domain)  # an unknown domain fails before any work
    source_sha = sha256_file(weights)
    original = load_detector(weights, source_sha, "cpu")  # at the size it was trained at
    source_card = read_card(weights)
    version = source_card.generator_version if source_card else LATEST_GENERATOR
    images = [s.image for s in samples_for(domain, HELD_OUT_OFFSET, check_images, version=version)]
    with tempfile.TemporaryDirectory(prefix="argus-export-") as tmp:
        written = _export_file(weights, fmt, original.image_size, Path(tmp))
        # Uncached: the file is moved away below, and a cached model would hold a slot (and memory).
        exported = load_detector.__wrapped__(written, sha256_file(written), "cpu")
        check = compare_detections(
            original.detect(images, confidence=confidence), exported.detect(images, confidence=confidence)
        )
        if not check.faithful:
            raise ExportError(f"the {fmt} export of {weights} does not reproduce its detections: {check}")
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(written, output)
    record = asdict(check) | {"confidence": confidence, "generator_version": version}
    card = _export_card(source_card, weights, source_sha, domain, original, fmt, output, record)
    write_card(card, output)
    return card


def _export_card(
    source_card: ModelCard | None,
    weights: Path,
    source_sha: str,
    domain: str,
    original: Detector,
    fmt: str,
    output: Path,
    check: dict[str, Any],
) -> ModelCard:
    """The source's card (or a minimal one for user weights) describing the exported file."""
    base = source_card or ModelCard(
        name=weights.stem,
        version="user",
        task="detection",
        architecture="ultralytics YOLO (user weights)",
        domain=domain,
        class_names=list(original.class_names),
        weights_file=weights.name,
        sha256=source_sha,
        size_bytes=weights.stat().st_size,
    )
    return base.model_copy(
        update={
            "version": f"{base.version}+{fmt}",
            "architecture": f"{base.architecture}; exported to {fmt} by ultralytics",
            "weights_file": output.name,
            "sha256": sha256_file(output),
            "size_bytes": output.stat().st_size,
            "input": {**base.input, "imgsz": original.image_size, "format": fmt},
            "training": {**base.training, "exported_from": weights.name, "exported_from_sha256": source_sha},
            "metrics": {**base.metrics, "export_check": check},
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
    )
