"""Frozen references that cross task boundaries: object-store keys and small metadata, never arrays."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ObjectRef:
    """An object in the store, with the checksum it was written with."""

    key: str
    sha256: str
    size: int
    content_type: str


@dataclass(frozen=True)
class FrameRef:
    """One 2-D image of a study: where it came from and its geometry."""

    index: int  # position in the study's frames archive
    series_uid: str
    slice_number: int  # 1-based within its series
    source_file: str
    sop_instance_uid: str | None
    width: int
    height: int
    pixel_spacing_mm: tuple[float, float] | None
    # Patient side at the image's left edge and at its top (e.g. "right", "anterior"); None if unknown.
    patient_directions: tuple[str, str] | None = None


@dataclass(frozen=True)
class ModelRef:
    """Identity of the weights that produced a result (recorded with it)."""

    kind: str
    name: str
    version: str
    sha256: str


@dataclass(frozen=True)
class LoadedStudy:
    """A study staged in the object store: inputs kept, model-ready frames in one archive."""

    study_uid: str
    kind: str  # "dicom" or "image"
    domain: str
    modality: str | None
    patient_id: str | None
    accession_number: str | None
    description: str | None
    inputs: tuple[ObjectRef, ...]
    input_names: tuple[str, ...]
    frames_archive: ObjectRef
    frames: tuple[FrameRef, ...]
    notes: tuple[str, ...] = ()  # parts of the study received but not analyzed, and why


@dataclass(frozen=True)
class RunHandle:
    """A run row opened for a study; ``fresh`` is False when an identical completed run exists."""

    run_id: str
    study_uid: str
    idempotency_key: str
    fresh: bool
    attempt: int

    @property
    def run_prefix(self) -> str:
        """Object-store prefix of every attempt of this run."""
        return f"studies/{self.study_uid}/runs/{self.run_id}"

    @property
    def prefix(self) -> str:
        """Object-store prefix of what this attempt writes: attempts never share an object."""
        return f"{self.run_prefix}/attempt-{self.attempt}"


@dataclass(frozen=True)
class Localization:
    """A detector hit on one frame, box in source pixels."""

    frame: int
    label: str
    class_id: int
    score: float
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class SegmentedFinding:
    """A localization with its mask (PNG in the store) and measurements."""

    index: int
    frame: int
    label: str
    score: float
    box: tuple[float, float, float, float]
    mask: ObjectRef
    area_px: float
    area_mm2: float | None
    width_mm: float | None
    height_mm: float | None
