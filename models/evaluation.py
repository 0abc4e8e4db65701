"""Held-out evaluation: detector mAP50 (our own, testable implementation) and segmenter Dice.

The test split is ``samples_for(domain, seed + TEST_OFFSET, n)``: the same generator as training,
another seed, never trained on nor used to pick a detector's best epoch (that is the held-out split,
``seed + HELD_OUT_OFFSET``). AP is the all-point interpolated area under the precision/recall curve
at IoU 0.5 (VOC 2010+ / COCO style, one IoU threshold); ultralytics' ``val`` samples the same curve at
101 recall points, so the two agree to within a few thousandths.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from models.boxes import box_iou
from models.detector import Detector, suppress_nested
from models.registry import WeightsRef
from models.segmenter import Segmenter, SegmenterConfig, crop_roi, roi_window
from models.synthetic import LATEST_GENERATOR, TEST_OFFSET, Sample
from models.types import Detection

IOU_THRESHOLD = 0.5
# Instance size bands for sensitivity by size: longest box side in pixels of the 256 px images
# (about 12 mm and 25 mm at a 320 mm field of view).
SIZE_BAND_EDGES_PX = (10.0, 20.0)
# ultralytics' val settings: a low confidence keeps the whole precision/recall curve.
EVAL_CONFIDENCE = 0.001
EVAL_NMS_IOU = 0.7


@dataclass(frozen=True)
class Prediction:
    """One detection on one image of the evaluated set."""

    image: int
    class_id: int
    score: float
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class Truth:
    """One ground-truth instance on one image of the evaluated set."""

    image: int
    class_id: int
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class ClassAP:
    """AP at IoU 0.5 of one class with the counts behind it (``ap50`` None: no instance to find)."""

    ap50: float | None
    images: int  # images holding at least one instance of the class
    instances: int
    predictions: int
    true_positives: int


def average_precision(matched: Sequence[bool], n_truth: int) -> float:
    """All-point interpolated AP of predictions already sorted by descending score.

    ``matched[i]`` says whether prediction i is a true positive. Precision is made monotone
    (each point takes the best precision at any higher recall) and integrated over recall.
    """
    if n_truth == 0:
        raise ValueError("AP is undefined without ground-truth instances")
    tp = np.cumsum(np.asarray(matched, dtype=float))
    if len(tp) == 0:
        return 0.0
    recall = tp / n_truth
    precision = tp / np.arange(1, len(tp) + 1)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[1.0], precision, [0.0]])
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def match_class(
    predictions: Sequence[Prediction], truths: Sequence[Truth], iou_threshold: float = IOU_THRESHOLD
) -> list[bool]:
    """True-positive flags of one class's predictions in descending-score order.

    Greedy, COCO style: each prediction takes the unmatched instance of its image it overlaps most
    (IoU >= threshold); a second box on an already found instance is a false positive. Ties in score
    keep the input order (stable sort), so results are reproducible.
    """
    return [found >= 0 for found in _assign(predictions, truths, iou_threshold)]


def _assign(predictions: Sequence[Prediction], truths: Sequence[Truth], iou_threshold: float) -> list[int]:
    """``match_class``'s matching: per prediction in descending-score order, the index in ``truths``
    of the instance it finds, or -1."""
    by_image: dict[int, list[int]] = {}
    for j, t in enumerate(truths):
        by_image.setdefault(t.image, []).append(j)
    taken: set[int] = set()
    found = []
    for p in sorted(predictions, key=lambda p: -p.score):
        best, best_iou = -1, iou_threshold
        for j in by_image.get(p.image, []):
            iou = box_iou(p.box, truths[j].box)
            if j not in taken and iou >= best_iou:
                best, best_iou = j, iou
        if best >= 0:
            taken.add(best)
        found.append(best)
    return found


def size_band(box: tuple[float, float, float, float], edges: Sequence[float] = SIZE_BAND_EDGES_PX) -> str:
    """The size band of an instance: its box's longest side against ``edges`` (pixels)."""
    side = max(box[2] - box[0], box[3] - box[1])
    labels = _band_labels(edges)
    return labels[int(np.searchsorted(edges, side, side="right"))]


def _band_labels(edges: Sequence[float]) -> list[str]:
    inner = [f"{a:g}-{b:g} px" for a, b in pairwise(edges)]
    return [f"<{edges[0]:g} px", *inner, f">={edges[-1]:g} px"]


def found_by_size(
    predictions: Sequence[Prediction],
    truths: Sequence[Truth],
    class_names: Sequence[str],
    edges: Sequence[float] = SIZE_BAND_EDGES_PX,
) -> dict[str, dict[str, dict[str, int]]]:
    """Per class and size band (``size_band``): its instances and how many ``predictions`` find
    (matched as for AP). Sensitivity by finding size is what a reader of a CAD result asks first:
    a detector's misses are rarely spread evenly over sizes."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for name, _, gts, found in _matched_per_class(predictions, truths, class_names):
        hits = {j for j in found if j >= 0}
        bands = {label: {"instances": 0, "found": 0} for label in _band_labels(edges)}
        for j, t in enumerate(gts):
            band = bands[size_band(t.box, edges)]
            band["instances"] += 1
            band["found"] += j in hits
        out[name] = bands
    return out


def _matched_per_class(
    predictions: Sequence[Prediction], truths: Sequence[Truth], class_names: Sequence[str]
) -> Iterator[tuple[str, list[Prediction], list[Truth], list[int]]]:
    """Per class: its predictions in descending-score order, its instances, and for each prediction
    the index among those instances of the one it finds, or -1 (``match_class``'s matching): the one
    split and match that AP, its interval and the size table are computed from (each caller runs it
    on its own predictions; milliseconds)."""
    for cls, name in enumerate(class_names):
        ordered = sorted((p for p in predictions if p.class_id == cls), key=lambda p: -p.score)
        gts = [t for t in truths if t.class_id == cls]
        yield name, ordered, gts, _assign(ordered, gts, IOU_THRESHOLD)


def detection_ap(
    predictions: Sequence[Prediction], truths: Sequence[Truth], class_names: Sequence[str]
) -> tuple[float | None, dict[str, ClassAP]]:
    """mAP50 over the classes that have instances, and per-class AP with counts.

    A class without instances has no AP (its predictions still show as false positives); mAP is
    None when no class has instances.
    """
    per_class: dict[str, ClassAP] = {}
    for name, preds, gts, found in _matched_per_class(predictions, truths, class_names):
        flags = [j >= 0 for j in found]
        per_class[name] = ClassAP(
            ap50=average_precision(flags, len(gts)) if gts else None,
            images=len({t.image for t in gts}),
            instances=len(gts),
            predictions=len(preds),
            true_positives=int(sum(flags)),
        )
    aps = [c.ap50 for c in per_class.values() if c.ap50 is not None]
    return (float(np.mean(aps)) if aps else None), per_class


def map50_interval(
    predictions: Sequence[Prediction],
    truths: Sequence[Truth],
    class_names: Sequence[str],
    n_images: int,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[list[float] | None, dict[str, list[float] | None]]:
    """Percentile bootstrap interval of mAP50 (and of each class's AP) over the evaluated images.

    How far the number could move on another split of the same size: images are drawn with
    replacement ``resamples`` times. A prediction's match depends only on its own image, so each
    is matched once and a resample repeats it as often as its image was drawn. A resample without
    instances of a class leaves that class out (as ``detection_ap`` does); None: no instance at all.
    """
    if n_images <= max([p.image for p in predictions] + [t.image for t in truths], default=-1):
        raise ValueError(f"an image index is outside the {n_images} evaluated images")
    rng = np.random.default_rng(seed)
    draws = np.stack(
        [np.bincount(rng.integers(0, n_images, n_images), minlength=n_images) for _ in range(resamples)]
    )
    per_class_aps: dict[str, np.ndarray] = {}
    for name, ordered, gts, found in _matched_per_class(predictions, truths, class_names):
        flags = np.asarray(found) >= 0
        images = np.asarray([p.image for p in ordered], dtype=int)
        truth_counts = np.bincount(np.asarray([t.image for t in gts], dtype=int), minlength=n_images)
        aps = np.full(resamples, np.nan)
        for r, drawn in enumerate(draws):
            n_truth = int(drawn @ truth_counts)
            if n_truth:
                aps[r] = average_precision(np.repeat(flags, drawn[images]).tolist(), n_truth)
        per_class_aps[name] = aps
    tail = (1 - level) / 2 * 100

    def bounds(values: np.ndarray) -> list[float] | None:  # a list: what a card's JSON reads back
        values = values[~np.isnan(values)]
        if not len(values):
            return None
        lo, hi = np.percentile(values, [tail, 100 - tail])
        return [round(float(lo), 4), round(float(hi), 4)]

    by_resample = np.stack(list(per_class_aps.values()))
    has_ap = ~np.isnan(by_resample)
    counts = has_ap.sum(axis=0)  # classes with instances in each resample
    sums = np.where(has_ap, by_resample, 0.0).sum(axis=0)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return bounds(means), {name: bounds(aps) for name, aps in per_class_aps.items()}


def truths_of(samples: Sequence[Sample]) -> list[Truth]:
    """Ground-truth instances of generated samples."""
    return [
        Truth(i, cls, tuple(float(v) for v in box))  # type: ignore[arg-type]
        for i, s in enumerate(samples)
        for box, cls in zip(s.boxes, s.class_ids, strict=True)
    ]


def predict_samples(
    detector: Detector, samples: Sequence[Sample], batch_size: int = 16
) -> list[list[Detection]]:
    """YOLO's raw detections (NMS, no nested-box suppression) on every sample, at the evaluation
    confidence: what ultralytics' ``val`` scores."""
    return detector.detect(
        [s.image for s in samples],
        confidence=EVAL_CONFIDENCE,
        iou=EVAL_NMS_IOU,
        batch_size=batch_size,
        nested=False,
    )


def _predictions(per_image: Sequence[Sequence[Detection]]) -> list[Prediction]:
    return [Prediction(i, d.class_id, d.score, d.box) for i, dets in enumerate(per_image) for d in dets]


def evaluate_detector(
    detector: Detector, samples: Sequence[Sample], operating_confidence: float = 0.25
) -> dict[str, Any]:
    """mAP50 overall and per class on ``samples``, with counts.

    ``map50`` scores the adapter as deployed (duplicate boxes nested in a better one suppressed:
    ``models.detector.suppress_nested``); ``map50_raw``
    scores YOLO's own output, the number ultralytics' ``val`` reports; ``map50_ci95`` (and each
    class's ``ap50_ci95``) is the deployed score's bootstrap interval over images. Per class, the predictions
    above the operating confidence and the instances they find show what a user would see; ``by_size``
    splits the instances and those found (at any and at the operating confidence) by size band.
    """
    raw = predict_samples(detector, samples)
    deployed = _predictions([suppress_nested(list(dets)) for dets in raw])
    truths = truths_of(samples)
    map50, per_class = detection_ap(deployed, truths, detector.class_names)
    map50_ci, class_ci = map50_interval(deployed, truths, detector.class_names, len(samples))
    map50_raw, _ = detection_ap(_predictions(raw), truths, detector.class_names)
    operating = [p for p in deployed if p.score >= operating_confidence]
    _, at_operating = detection_ap(operating, truths, detector.class_names)
    by_size = found_by_size(deployed, truths, detector.class_names)
    by_size_operating = found_by_size(operating, truths, detector.class_names)
    return {
        "map50": _round(map50),
        "map50_ci95": map50_ci,
        "map50_raw": _round(map50_raw),
        "images": len(samples),
        "instances": len(truths),
        "per_class": {
            name: {
                "ap50": _round(c.ap50),
                "ap50_ci95": class_ci[name],
                "images": c.images,
                "instances": c.instances,
                "predictions": c.predictions,
                "predictions_at_operating_confidence": at_operating[name].predictions,
                "found_at_operating_confidence": at_operating[name].true_positives,
                "by_size": {
                    band: {
                        "instances": counts["instances"],
                        "found": counts["found"],
                        "found_at_operating_confidence": by_size_operating[name][band]["found"],
                    }
                    for band, counts in by_size[name].items()
                },
            }
            for name, c in per_class.items()
        },
        "confidence": EVAL_CONFIDENCE,
        "operating_confidence": operating_confidence,
        "nms_iou": EVAL_NMS_IOU,
        "match_iou": IOU_THRESHOLD,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@dataclass(frozen=True)
class RoiSet:
    """ROI crops (N, 1, R, R) float32, their masks (N, 1, R, R) int64 and the class of each."""

    images: np.ndarray
    masks: np.ndarray
    class_ids: np.ndarray


def roi_pairs(
    samples: Sequence[Sample], config: SegmenterConfig, rng: np.random.Generator, jitter: float
) -> RoiSet:
    """ROI crops and their masks, boxes jittered the way a detector's boxes would be."""
    images, masks, classes = [], [], []
    for sample in samples:
        for mask, box, cls in zip(sample.masks, sample.boxes, sample.class_ids, strict=True):
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
            masks.append(crop_roi(mask.astype(np.uint8) * 255, window, config.roi_size) >= 0.5)
            classes.append(cls)
    if not images:
        raise ValueError("no findings in these samples to crop ROIs from")
    return RoiSet(
        images=np.stack(images)[:, None],
        masks=np.stack(masks)[:, None].astype(np.int64),
        class_ids=np.asarray(classes, dtype=np.int64),
    )


def dice_score(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice over a whole set of binary masks (1.0 when both are empty)."""
    inter = float(np.logical_and(pred, truth).sum())
    total = float(pred.sum() + truth.sum())
    return 1.0 if total == 0 else 2 * inter / total


def evaluate_segmenter(
    segmenter: Segmenter, rois: RoiSet, class_names: Sequence[str], threshold: float = 0.5
) -> dict[str, Any]:
    """Dice pooled over all ROIs and per finding class (``class_names`` of the detector's classes)."""
    import torch

    probs = segmenter.predict(torch.from_numpy(rois.images))
    pred, truth = probs >= threshold, rois.masks[:, 0] == 1
    per_class = {}
    for cls, name in enumerate(class_names):
        sel = rois.class_ids == cls
        if sel.any():
            per_class[name] = {"dice": round(dice_score(pred[sel], truth[sel]), 4), "rois": int(sel.sum())}
    return {"dice": round(dice_score(pred, truth), 4), "rois": len(truth), "per_class": per_class}


def evaluate_domain(
    domain: str,
    detector: tuple[Detector, WeightsRef],
    segmenters: dict[str, tuple[Segmenter, WeightsRef]],
    *,
    images: int = 1000,
    seed: int = 0,
    operating_confidence: float = 0.25,
    generator_version: int = LATEST_GENERATOR,
) -> dict[str, Any]:
    """Detector mAP50 and each segmenter's Dice on the domain's test split (``seed + 20 000``)
    drawn by ``models.synthetic`` generator ``generator_version``."""
    from models.synthetic import samples_for

    if images < 1:
        raise ValueError(f"need at least 1 test image, got {images}")
    held_out_seed = seed + TEST_OFFSET
    samples = samples_for(domain, held_out_seed, images, version=generator_version)
    det, det_ref = detector
    report_segmenters: dict[str, Any] = {}
    for key, (seg, ref) in segmenters.items():
        # The same jittered boxes for every segmenter: a fresh generator with the split's seed.
        rois = roi_pairs(samples, seg.config, np.random.default_rng(held_out_seed), jitter=0.08)
        report_segmenters[key] = {
            **evaluate_segmenter(seg, rois, det.class_names),
            "architecture": seg.config.arch,
            **_identity(ref),
        }
    return {
        "domain": domain,
        "held_out_seed": held_out_seed,
        "generator_version": generator_version,
        "detector": {**evaluate_detector(det, samples, operating_confidence), **_identity(det_ref)},
        "segmenters": report_segmenters,
    }


def _identity(ref: WeightsRef) -> dict[str, str]:
    return {"model": ref.name, "model_version": ref.version, "weights_sha256": ref.sha256}
