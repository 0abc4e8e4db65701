"""Intensity conversions shared by training and inference (they must match exactly)."""

from __future__ import annotations

import numpy as np

# Soft-tissue window used for every CT slice, in training and at inference.
CT_WINDOW_CENTER = 40.0
CT_WINDOW_WIDTH = 400.0


def window_to_uint8(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """Map values in [center - width/2, center + width/2] linearly onto 0..255, clipping outside."""
    if width <= 0:
        raise ValueError(f"window width must be positive, got {width}")
    low = center - width / 2.0
    scaled = (values.astype(np.float32) - low) * (255.0 / width)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def ct_to_uint8(hounsfield: np.ndarray) -> np.ndarray:
    """CT Hounsfield units → uint8 through the fixed soft-tissue window."""
    return window_to_uint8(hounsfield, CT_WINDOW_CENTER, CT_WINDOW_WIDTH)


def normalize_to_uint8(values: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5) -> np.ndarray:
    """Percentile-stretch any-range data (MR, X-ray, 16-bit photos) onto 0..255."""
    data = values.astype(np.float32)
    low, high = np.percentile(data, [low_pct, high_pct])
    if high <= low:
        # Flat image: keep it flat rather than dividing by zero.
        return np.zeros(data.shape, dtype=np.uint8) if high <= 0 else np.full(data.shape, 128, np.uint8)
    return window_to_uint8(data, (low + high) / 2.0, high - low)


def to_gray(image: np.ndarray) -> np.ndarray:
    """RGB(A) or single-channel image → 2-D array (luminance for colour)."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] in (3, 4):
        rgb = image[:, :, :3].astype(np.float32)
        gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return gray.astype(image.dtype) if np.issubdtype(image.dtype, np.integer) else gray
    raise ValueError(f"unsupported image shape {image.shape}")
