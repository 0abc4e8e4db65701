"""Geometry of axis-aligned (x1, y1, x2, y2) boxes in pixels, shared by suppression and evaluation."""

from __future__ import annotations

from collections.abc import Sequence

BoxLike = Sequence[float]


def box_intersection(a: BoxLike, b: BoxLike) -> float:
    """Area two boxes share; 0 when they do not overlap."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy


def box_iou(a: BoxLike, b: BoxLike) -> float:
    """Intersection over union of two boxes; 0 for degenerate boxes."""
    inter = box_intersection(a, b)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
