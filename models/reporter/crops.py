"""Region-of-interest crops: what a language model sees of a study (never the whole study)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from models.reporter.config import CropSettings


@dataclass(frozen=True)
class CropRegion:
    """Where to crop for one finding: its frame in the study and its box in source pixels."""

    finding_index: int
    frame: int
    box: tuple[float, float, float, float]
    score: float


@dataclass(frozen=True)
class RoiCrop:
    """One finding's crop as a PNG, with the window it covers in source pixels."""

    finding_index: int
    window: tuple[int, int, int, int]  # x1, y1, x2, y2 in source pixels
    png: bytes
    sha256: str


def crop_window(
    box: tuple[float, float, float, float], width: int, height: int, margin: float
) -> tuple[int, int, int, int]:
    """The box grown by ``margin`` of its size on each side (at least 8 px), clipped to the image."""
    x1, y1, x2, y2 = box
    pad_x = max(8.0, (x2 - x1) * margin)
    pad_y = max(8.0, (y2 - y1) * margin)
    left, top = max(0, int(np.floor(x1 - pad_x))), max(0, int(np.floor(y1 - pad_y)))
    right, bottom = min(width, int(np.ceil(x2 + pad_x))), min(height, int(np.ceil(y2 + pad_y)))
    if right <= left or bottom <= top:
        raise ValueError(f"box {box} lies outside the {width}x{height} image")
    return left, top, right, bottom


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    # Frames are model-ready uint8 already; anything else is scaled so a crop never silently saturates.
    lo, hi = float(pixels.min()), float(pixels.max())
    scaled = (pixels.astype(np.float32) - lo) / (hi - lo or 1.0) * 255.0
    return scaled.astype(np.uint8)


def roi_crops(
    frames: Sequence[np.ndarray], regions: Sequence[CropRegion], settings: CropSettings
) -> list[RoiCrop]:
    """PNG crops of the highest-scoring regions (at most ``max_crops``), in finding order.

    Each crop is downscaled so its longest side is at most ``max_side`` pixels, which caps the image
    tokens a study costs whatever the source resolution.
    """
    chosen = sorted(regions, key=lambda r: (-r.score, r.finding_index))[: settings.max_crops]
    crops = []
    for region in sorted(chosen, key=lambda r: r.finding_index):
        if not 0 <= region.frame < len(frames):
            raise ValueError(
                f"finding #{region.finding_index} refers to frame {region.frame}, "
                f"but the study has {len(frames)} frames"
            )
        image = frames[region.frame]
        height, width = image.shape[:2]
        x1, y1, x2, y2 = crop_window(region.box, width, height, settings.margin)
        crop = _to_uint8(image[y1:y2, x1:x2])
        scale = settings.max_side / max(crop.shape[:2])
        if scale < 1:
            size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
            crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".png", crop)
        if not ok:
            raise ValueError(f"cannot encode the crop of finding #{region.finding_index} as PNG")
        png = buf.tobytes()
        crops.append(RoiCrop(region.finding_index, (x1, y1, x2, y2), png, hashlib.sha256(png).hexdigest()))
    return crops
