"""Value types produced by the input loader: frames, series, studies and rejections."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

# DICOM Image Orientation (Patient): direction cosines of the row (x, y, z) then the column (x, y, z),
# in the patient LPS system (+x patient left, +y posterior, +z superior).
Orientation = tuple[float, float, float, float, float, float]


# What Frame.pixels holds when the pixels were not kept: empty, and read-only so that the one
# shared instance cannot be changed through any frame.
NO_PIXELS = np.empty((0, 0), dtype=np.uint8)
NO_PIXELS.flags.writeable = False


@dataclass(frozen=True)
class Frame:
    """One 2-D image ready for a model, with where it came from and its geometry."""

    # uint8 (H, W), model-ready (windowed / normalized, MONOCHROME2 sense, gray). When the frame was
    # loaded without its pixels (scan_inputs(..., keep_pixels=False)) this is NO_PIXELS, an empty
    # read-only uint8 array of shape (0, 0); `shape` still gives the frame's size.
    pixels: np.ndarray
    shape: tuple[int, int]  # (rows, columns) of the model-ready frame, whether or not pixels were kept
    source_path: Path
    frame_index: int  # 0 for single-frame files; k for frame k of a multi-frame file
    sop_instance_uid: str | None
    instance_number: int | None
    pixel_spacing_mm: tuple[float, float] | None  # (row, column) spacing
    slice_location_mm: float | None  # position along the slice normal
    # ImageOrientationPatient (per-frame / shared functional group for enhanced multi-frame), as stored;
    # None when absent (plain images). See patient_directions().
    orientation: Orientation | None = None

    def __post_init__(self) -> None:
        if self.pixels.shape not in ((0, 0), self.shape):
            raise ValueError(f"Frame pixels of shape {self.pixels.shape} do not match shape {self.shape}")


# Patient direction each LPS axis points to when followed positively / negatively.
_LPS_NAMES = (("left", "right"), ("posterior", "anterior"), ("superior", "inferior"))
# A direction counts as along an axis when that component of the unit vector is at least this large.
_MIN_AXIS_COSINE = 0.8


def patient_directions(orientation: Sequence[float] | None) -> tuple[str, str] | None:
    """Which patient direction the image's left edge and top edge face: ``(image_left_is, image_top_is)``.

    Standard axial (row +x, column +y) gives ``("right", "anterior")``. None when there is no
    orientation, when it is not six finite numbers, or when the row or column is oblique (no
    component reaches 0.8 of the unit vector) or both run along the same patient axis.
    """
    if orientation is None or len(orientation) != 6:
        return None
    row = _edge_direction(orientation[:3])
    column = _edge_direction(orientation[3:])
    if row is None or column is None or row[0] == column[0]:
        return None
    return row[1], column[1]


def _edge_direction(cosines: Sequence[float]) -> tuple[int, str] | None:
    """(axis, patient direction) of the image edge a row/column vector points away from."""
    try:
        values = [float(v) for v in cosines]
    except (TypeError, ValueError):
        return None
    length = math.hypot(*values)
    if not math.isfinite(length) or length == 0.0:
        return None
    axis = max(range(3), key=lambda i: abs(values[i]))
    unit = values[axis] / length
    if abs(unit) < _MIN_AXIS_COSINE:
        return None
    # Moving along +vector leads toward the positive-side name, so the edge we start from faces the other.
    positive, negative = _LPS_NAMES[axis]
    return axis, negative if unit > 0 else positive


@dataclass(frozen=True)
class ImageSeries:
    """Frames of one DICOM series (or of one plain-image set), in display order."""

    series_uid: str
    modality: str | None  # DICOM Modality; None for plain images
    description: str | None
    frames: tuple[Frame, ...]
    image_type: tuple[str, ...] = ()  # DICOM ImageType of the series' first file, upper case


@dataclass(frozen=True)
class StudyInput:
    """Everything loaded for one study (DICOM) or one folder of plain images."""

    kind: Literal["dicom", "image"]
    study_uid: str
    patient_id: str | None
    accession_number: str | None
    description: str | None
    series: tuple[ImageSeries, ...]
    source_paths: tuple[Path, ...]  # every file that contributed, sorted


@dataclass(frozen=True)
class Rejection:
    """A file or folder that was not loaded, with a reason meant for the person who supplied it.

    `study_uid` / `series_uid` are the DICOM Study / Series Instance UIDs when the file's header
    could be read and held them (a slice with truncated pixel data, an image too small, a
    non-image object such as a structured report), so that a study analysed without some of its
    files can be recognised as incomplete. None for anything else: files that are not DICOM or
    cannot be parsed, headers without those UIDs, plain images, folders.
    """

    path: Path
    reason: str
    study_uid: str | None = None
    series_uid: str | None = None


@dataclass(frozen=True)
class LoadLimits:
    """Size limits applied to every frame."""

    min_side: int = 16  # smaller images rejected
    max_pixels: int = 64_000_000  # larger (rows*cols per frame) rejected

    def size_problem(self, rows: int, columns: int) -> str | None:
        """Return why a rows x columns frame is refused, or None when its size is acceptable."""
        if min(rows, columns) < self.min_side:
            return f"image too small ({columns}x{rows}); the minimum side is {self.min_side} px"
        if rows * columns > self.max_pixels:
            return (
                f"image too large ({columns}x{rows} = {rows * columns:,} pixels); "
                f"the maximum is {self.max_pixels:,} pixels per frame"
            )
        return None


# Shared default: LoadLimits is frozen, so one instance can safely serve as every default argument.
DEFAULT_LIMITS = LoadLimits()


@dataclass(frozen=True)
class ScanResult:
    """What :func:`argus.loading.scan_inputs` loaded and what it refused."""

    studies: list[StudyInput]
    rejected: list[Rejection]


class InputRejected(Exception):
    """Raised by the single-file readers when a file cannot be used; str() is ``"<path>: <reason>"``.

    `study_uid` / `series_uid` are set when the file is DICOM and its header gave them (see Rejection).
    """

    def __init__(
        self, path: Path, reason: str, study_uid: str | None = None, series_uid: str | None = None
    ) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.study_uid = study_uid
        self.series_uid = series_uid

    def __reduce__(self) -> tuple[type[InputRejected], tuple[Path, str, str | None, str | None]]:
        # The default pickling would call __init__ with the formatted message only; keep every field
        # so the exception survives being sent between worker processes.
        return (InputRejected, (self.path, self.reason, self.study_uid, self.series_uid))
