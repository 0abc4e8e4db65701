"""The shipped models on the CPU: detector batch scaling, ROI vs whole-image segmentation, peak memory.

Everything runs on seeded synthetic 256x256 images of one domain (the held-out generator seeds), with
the shipped weights, in this process except the memory figures, which each come from a fresh
subprocess so that one model's allocations do not hide another's.
"""

from __future__ import annotations

import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

DOMAIN = "medical"
IMAGES = 32
REPEATS = 3
BATCH_SIZES = (1, 4, 8, 16)
ARCHS = ("unet", "deeplabv3plus")


def _images(count: int = IMAGES) -> tuple[list[np.ndarray], list[list[tuple[int, int, int, int]]]]:
    from models.synthetic import HELD_OUT_OFFSET, samples_for

    samples = samples_for(DOMAIN, HELD_OUT_OFFSET + 500, count)
    return [s.image for s in samples], [s.boxes for s in samples]


def median_seconds(fn: Callable[[], object]) -> float:
    """Median wall time of ``REPEATS`` calls of ``fn`` after one warm-up call."""
    fn()  # warm-up: first calls pay allocator and kernel selection costs
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _detector() -> Any:
    from models.detector import load_detector
    from models.registry import resolve_weights

    ref = resolve_weights("detector", DOMAIN)
    return load_detector(ref.path, ref.sha256, "cpu")  # at the input size it was trained at


def _segmenter(arch: str) -> Any:
    from models.registry import resolve_weights
    from models.segmenter import load_segmenter

    ref = resolve_weights("segmenter", DOMAIN, arch=arch)
    return load_segmenter(ref.path, ref.sha256, "cpu", arch)


def detector_scaling(
    detector: Any, images: list[np.ndarray], batch_sizes: tuple[int, ...] = BATCH_SIZES
) -> dict[int, float]:
    """Images per second through ``detector.detect`` at each batch size."""
    rates = {}
    for size in batch_sizes:
        seconds = median_seconds(lambda: detector.detect(images, batch_size=size))  # noqa: B023 (run now)
        rates[size] = len(images) / seconds
    return rates


def roi_vs_whole(
    images: list[np.ndarray], boxes: list[list[tuple[int, int, int, int]]], arch: str
) -> tuple[float, float, int]:
    """ms per image: masks for the true boxes from ROI crops, vs. one pass over the whole image."""
    import torch

    segmenter = _segmenter(arch)
    with_boxes = [(img, b) for img, b in zip(images, boxes, strict=True) if b]

    def rois() -> None:
        for image, image_boxes in with_boxes:
            segmenter.segment(image, image_boxes)

    whole = torch.stack([torch.from_numpy(img.astype(np.float32) / 255.0)[None] for img, _ in with_boxes])
    channels = segmenter.config.in_channels
    whole = whole.repeat(1, channels, 1, 1) if channels > 1 else whole

    def full() -> None:
        for start in range(len(whole)):  # one image at a time, as the ROI path works per image
            segmenter.predict(whole[start : start + 1])

    n = len(with_boxes)
    rois_ms = median_seconds(rois) / n * 1000
    full_ms = median_seconds(full) / n * 1000
    return rois_ms, full_ms, sum(len(b) for _, b in with_boxes)


def _peak_rss_mb(job: str) -> tuple[float, float]:
    """(process peak RSS, extra RSS of one inference pass) in MB, from a fresh process for one model."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        peak, extra = pool.apply(_run_job, (job,))
    return peak, extra


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"{field} not in /proc/self/status")


def _run_job(job: str) -> tuple[float, float]:
    images, boxes = _images(8)
    if job == "detector":
        detector = _detector()

        def run() -> None:
            detector.detect(images, batch_size=8)
    else:
        segmenter = _segmenter(job)

        def run() -> None:
            for image, image_boxes in zip(images, boxes, strict=True):
                segmenter.segment(image, image_boxes)

    run()  # imports, weights and first-call allocations: the process peak
    peak = _status_mb("VmHWM")
    # Writing 5 resets the kernel's peak-RSS mark, so the next peak is that of one inference pass.
    Path("/proc/self/clear_refs").write_text("5")
    steady = _status_mb("VmRSS")
    run()
    return peak, _status_mb("VmHWM") - steady


def section() -> list[str]:
    """Run the model benchmarks; the BENCHMARKS.md section as markdown lines."""
    import torch

    from models.offline import configure_offline_ml

    configure_offline_ml(Path(tempfile.mkdtemp(prefix="argus-bench-")) / "ultralytics")
    images, boxes = _images()
    detector = _detector()
    scaling = detector_scaling(detector, images)
    segmentation = {arch: roi_vs_whole(images, boxes, arch) for arch in ARCHS}
    memory = {job: _peak_rss_mb(job) for job in ("detector", *ARCHS)}
    base = scaling[1]
    lines = [
        "## Models on the CPU",
        "",
        f"Shipped {DOMAIN} models, {IMAGES} held-out synthetic 256x256 images, torch "
        f"{torch.__version__} with {torch.get_num_threads()} threads, medians of {REPEATS} runs.",
        "",
        f"Detector (YOLO, letterboxed to its {detector.image_size} px input) through `Detector.detect`, "
        "by batch size:",
        "",
        "| batch | images / s | vs batch 1 |",
        "|---|---|---|",
        *[f"| {size} | {rate:.1f} | {rate / base:.2f}x |" for size, rate in scaling.items()],
        "",
        "Segmentation of the true findings: ROI crops around each box (what Argus runs) vs one pass "
        "of the same network over the whole image (network forward only, no thresholding or pasting):",
        "",
        "| segmenter | ROIs, ms / image | whole image, ms / image | ROI share |",
        "|---|---|---|---|",
    ]
    for arch, (rois_ms, full_ms, findings) in segmentation.items():
        share = rois_ms / full_ms
        lines.append(f"| {arch} ({findings} findings) | {rois_ms:.1f} | {full_ms:.1f} | {share:.0%} |")
    lines += [
        "",
        "Resident memory of a fresh process that loads one model and runs it on 8 images (detector at "
        "batch 8): its peak (torch's CUDA build alone is most of it), and what one more pass adds:",
        "",
        "| model | process peak RSS, MB | one inference pass, MB |",
        "|---|---|---|",
        *[f"| {job} | {peak:.0f} | {model:.0f} |" for job, (peak, model) in memory.items()],
    ]
    return lines
