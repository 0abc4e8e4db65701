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
    # Position along the slice normal (DICOM); None for plain images or when the file does not say.
    slice_position_mm: float | None = None


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
class SliceBox:
    """One slice of a finding to segment: the frame and the box to segment there."""

    frame: int
    box: tuple[float, float, float, float]
    detected: bool  # False: a slice inside a lesion the detector missed (box interpolated)


@dataclass(frozen=True)
class PlannedFinding:
    """What to segment as one finding: a 2-D detection, or a lesion linked across a series' slices."""

    label: str
    score: float
    slices: tuple[SliceBox, ...]  # in position order; one item for a 2-D finding
    volume: bool  # True when the finding belongs to a volume (a CT/MR series of several slices)
    slabs_mm: tuple[float, ...] | None = None  # slab each slice stands for (models.volumes.order_slices)
    geometry_note: str | None = None  # why slabs_mm is None for a lesion in a volume


@dataclass(frozen=True)
class SliceMask:
    """A finding's mask on one slice (PNG in the store) and its area."""

    frame: int
    box: tuple[float, float, float, float]
    detected: bool
    mask: ObjectRef
    area_px: float
    area_mm2: float | None


@dataclass(frozen=True)
class SegmentedFinding:
    """A finding with its masks (PNG in the store) and measurements.

    For a 2-D finding ``slices`` holds its one mask. For a lesion in a volume it holds one mask per
    slice spanned; ``frame``, ``mask``, ``area_px`` and ``area_mm2`` are those of its key slice (the
    largest section), ``box`` encloses every slice's box, width/height are the in-plane extent of all
    its masks, and depth/volume come from the slice positions (None, with ``geometry_note``, when the
    series does not give them).
    """

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
    slices: tuple[SliceMask, ...]  # every slice's mask, in position order (one for a 2-D finding)
    volume: bool = False
    slice_range: tuple[int, int] | None = None  # lowest and highest slice number a lesion spans
    depth_mm: float | None = None
    volume_mm3: float | None = None
    geometry_note: str | None = None
