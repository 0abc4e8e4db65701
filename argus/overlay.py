"""Overlay rendering: boxes, mask contours and labels drawn on a frame for human review."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

# BGR colours per class id, distinguishable on gray images.
PALETTE = [(0, 0, 255), (0, 200, 0), (255, 128, 0), (0, 220, 220), (255, 0, 255)]


def render_overlay(
    image: np.ndarray,
    boxes: Sequence[Sequence[float]],
    masks: Sequence[np.ndarray],
    captions: Sequence[str],
    class_ids: Sequence[int],
) -> np.ndarray:
    """A BGR copy of a gray uint8 image with each finding's box, mask contour and caption.

    Small images are enlarged (nearest neighbour, whole factors) so captions stay legible.
    """
    zoom = max(1, 768 // max(image.shape))
    canvas = cv2.cvtColor(np.kron(image, np.ones((zoom, zoom), np.uint8)), cv2.COLOR_GRAY2BGR)
    scale = max(1, round(max(canvas.shape) / 768))
    for box, mask, caption, cls in zip(boxes, masks, captions, class_ids, strict=True):
        colour = PALETTE[cls % len(PALETTE)]
        big_mask = np.kron(mask.astype(np.uint8), np.ones((zoom, zoom), np.uint8)).astype(np.uint8)
        contours, _ = cv2.findContours(big_mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(canvas, contours, -1, colour, scale)
        x1, y1, x2, y2 = (round(v * zoom) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, scale)
        text_y = y1 - 5 if y1 > 18 else y2 + 16
        cv2.putText(canvas, caption, (x1, text_y), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale, colour, scale)
    return canvas
