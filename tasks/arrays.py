"""Encoding of arrays to object-store bytes (frame archives, mask PNGs) and back."""

from __future__ import annotations

import io

import cv2
import numpy as np

from tasks.resources import object_store
from tasks.types import ObjectRef


def encode_frames(frames: list[np.ndarray]) -> bytes:
    """Frames (possibly of different sizes) as one compressed ``.npz``."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{f"f{i}": f for i, f in enumerate(frames)})  # type: ignore[arg-type]
    return buffer.getvalue()


def decode_frames(data: bytes) -> list[np.ndarray]:
    """Inverse of :func:`encode_frames`."""
    with np.load(io.BytesIO(data)) as archive:
        return [archive[f"f{i}"] for i in range(len(archive.files))]


def fetch_frames(ref: ObjectRef) -> list[np.ndarray]:
    """A study's model-ready frames, checksum-verified."""
    return decode_frames(object_store().get_bytes(ref.key, expected_sha256=ref.sha256))


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 gray/BGR image or a boolean mask (0/255)."""
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"cannot encode image of shape {image.shape} as PNG")
    return buf.tobytes()


def decode_png(data: bytes) -> np.ndarray:
    """Array from PNG bytes (unchanged depth and channels)."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError("not a decodable PNG")
    return image
