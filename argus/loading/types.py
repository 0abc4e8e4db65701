"""Value types produced by the input loader: frames, series, studies and rejections."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One 2-D image ready for a model, with where it came from and its geometry."""

    pixels: np.ndarray  # uint8 (H, W), model-ready (windowed / normalized, MONOCHROME2 sense, gray)
    source_path: Path
    frame_index: int  # 0 for single-frame files; k for frame k of a multi-frame file
    sop_instance_uid: str | None
    instance_number: int | None
    pixel_spacing_mm: tuple[float, float] | None  # (row, column) spacing
    slice_location_mm: float | None  # position along the slice normal


@dataclass(frozen=True)
class ImageSeries:
    """Frames of one DICOM series (or of one plain-image set), in display order."""

    series_uid: str
    modality: str | None  # DICOM Modality; None for plain images
    description: str | None
    frames: tuple[Frame, ...]


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
    """A file or folder that was not loaded, with a reason meant for the person who supplied it."""

    path: Path
    reason: str


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
    """Raised by the single-file readers when a file cannot be used; str() is ``"<path>: <reason>"``."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[type[InputRejected], tuple[Path, str]]:
        # The default pickling would call __init__ with the formatted message only; keep both fields
        # so the exception survives being sent between worker processes.
        return (InputRejected, (self.path, self.reason))
