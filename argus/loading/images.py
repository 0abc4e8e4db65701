"""Read one plain image file (PNG, JPEG, TIFF, BMP) into a model-ready uint8 gray frame."""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from argus.loading.types import DEFAULT_LIMITS, NO_PIXELS, Frame, InputRejected, LoadLimits
from models.preprocess import normalize_to_uint8, to_gray

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})

_EXIF_ORIENTATION = 0x0112
# PIL modes that numpy cannot represent directly (palette, CMYK, 1-bit, ...) are converted to these.
_PIL_KEEP_MODES = frozenset({"L", "RGB", "RGBA", "I", "I;16", "I;16B", "I;16L", "F"})


def is_image_path(path: Path) -> bool:
    """True when the file extension is one of the plain image formats this module reads."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def read_image(path: Path, limits: LoadLimits = DEFAULT_LIMITS, *, keep_pixels: bool = True) -> Frame:
    """Read a plain image as a uint8 gray frame; raise InputRejected when it is unusable.

    With ``keep_pixels=False`` the image is still fully decoded and checked, but the returned frame
    carries only its shape (``Frame.pixels`` is the empty NO_PIXELS array).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputRejected(path, f"cannot read image: {exc.strerror or exc}") from exc
    size, orientation = _header(path, data)
    # The header size is checked before decoding so a decompression bomb is never allocated.
    if size is not None and (problem := limits.size_problem(size[1], size[0])):
        raise InputRejected(path, problem)
    array = _decode(path, data)
    array = _apply_orientation(array, orientation)
    pixels = _to_uint8_gray(array)
    if problem := limits.size_problem(*pixels.shape):
        raise InputRejected(path, problem)
    rows, columns = pixels.shape
    return Frame(
        pixels=pixels if keep_pixels else NO_PIXELS,
        shape=(rows, columns),
        source_path=path,
        frame_index=0,
        sop_instance_uid=None,
        instance_number=None,
        pixel_spacing_mm=None,
        slice_location_mm=None,
        orientation=None,
    )


def _header(path: Path, data: bytes) -> tuple[tuple[int, int] | None, int]:
    """(width, height) and EXIF orientation from the header alone, or (None, 1) if PIL cannot parse it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
                return image.size, int(orientation) if orientation in range(1, 9) else 1
    except Image.DecompressionBombError as exc:
        raise InputRejected(path, f"image too large: {exc}") from exc
    except Exception:  # cv2 may still read what PIL cannot parse
        return None, 1


def _decode(path: Path, data: bytes) -> np.ndarray:
    array = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if array is not None:
        # cv2 stores colour as BGR(A); to_gray expects RGB(A).
        if array.ndim == 3 and array.shape[2] == 3:
            return array[:, :, ::-1]
        if array.ndim == 3 and array.shape[2] == 4:
            return array[:, :, [2, 1, 0, 3]]
        return array
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            image: Image.Image = opened
            if image.mode == "LA":
                image = image.getchannel("L")
            elif image.mode not in _PIL_KEEP_MODES:
                image = image.convert("RGBA" if image.has_transparency_data else "RGB")
            return np.asarray(image)
    except Exception as exc:
        # PIL names the in-memory buffer with its address; keep reasons identical across runs.
        message = re.sub(r" ?<_io\.BytesIO object at 0x[0-9a-f]+>", "", str(exc))
        raise InputRejected(path, f"cannot read image: {message}") from exc


def _apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    # cv2's IMREAD_UNCHANGED ignores the EXIF orientation that cameras and phones rely on.
    if orientation in (2, 4, 5, 7):
        array = array[:, ::-1]
    rotations = {3: 2, 4: 2, 5: 1, 6: 3, 7: 3, 8: 1}  # counter-clockwise quarter turns, after the flip
    turns = rotations.get(orientation, 0)
    return np.ascontiguousarray(np.rot90(array, turns)) if turns else array


def _to_uint8_gray(array: np.ndarray) -> np.ndarray:
    gray = to_gray(array)
    if gray.dtype == np.uint8:
        return gray  # 8-bit images are already what the models were trained on
    if gray.dtype == np.bool_:
        return gray.astype(np.uint8) * 255
    values = gray.astype(np.float32)
    finite = np.isfinite(values)
    if not finite.all():
        # NaN / inf in float TIFFs would poison the percentiles.
        values = np.where(finite, values, values[finite].min() if finite.any() else 0.0)
    return normalize_to_uint8(values)
