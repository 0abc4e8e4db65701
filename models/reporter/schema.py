"""What a reporter receives and returns; every backend speaks these types."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class FindingInput(BaseModel):
    """One detected and segmented finding, as the reporter sees it."""

    index: int
    label: str
    score: float = Field(ge=0.0, le=1.0)
    box: tuple[float, float, float, float]
    series_uid: str | None = None
    slice_number: int | None = None  # 1-based position in its series
    image_name: str | None = None
    # Patient side at the image's left edge and top, from ImageOrientationPatient; None if unknown.
    patient_directions: tuple[str, str] | None = None  # file name, for image sets where "slice" means nothing
    image_width: int
    image_height: int
    area_px: float
    area_mm2: float | None = None
    width_mm: float | None = None
    height_mm: float | None = None
    # A lesion in a CT/MR volume: the slice numbers it spans (slice_number is its largest section),
    # depth and volume from the slice positions; geometry_note says why they are missing, if they are.
    slice_range: tuple[int, int] | None = None
    slice_count: int | None = None
    depth_mm: float | None = None
    volume_mm3: float | None = None
    geometry_note: str | None = None


class ReportRequest(BaseModel):
    """Everything a reporter may ground its text in; image crops come as object-store keys."""

    domain: Literal["medical", "industrial"]
    study_uid: str
    modality: str | None = None
    description: str | None = None
    images_examined: int
    image_names: list[str] = Field(default_factory=list)  # every image examined, findings or not
    findings: list[FindingInput]
    roi_keys: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)  # limitations: inputs received but not analyzed


class ReportFinding(BaseModel):
    """A finding as stated in the report."""

    index: int
    label: str
    score: float
    location: str
    size: str
    area_mm2: float | None = None
    area_px: float
    slice_range: tuple[int, int] | None = None  # first and last slice of a lesion in a volume
    depth_mm: float | None = None
    volume_mm3: float | None = None
    description: str | None = None  # the language model's words on this finding; None from the template


class ReportProvenance(BaseModel):
    """How a model-written report was produced: enough to reproduce it or explain its fallback."""

    backend: str  # the configured backend ("transformers", "openai"), also when the template stood in
    model: str
    weights_sha256: str | None = None  # None for an endpoint: its weights are not visible from here
    prompt_version: str
    generation: dict[str, float | int | bool] = Field(default_factory=dict)
    cache_key: str
    cached: bool = False
    attempts: int = 0  # model calls made for this report (0 on a cache hit)
    deidentified: bool = False  # texts were scrubbed of identifiers before leaving the process
    fallback_reason: str | None = None  # why the template wrote the report instead, if it did


class Report(BaseModel):
    """A structured report plus its rendered text; always AI-generated and for review."""

    title: str
    domain: Literal["medical", "industrial"]
    findings: list[ReportFinding]
    impression: str
    limitations: list[str] = Field(default_factory=list)
    text: str
    reporter: str
    model: str
    ai_generated: bool = True
    provenance: ReportProvenance | None = None  # None for the template backend run on its own
    disclaimer: str = "AI-generated from synthetic-data models; for review, not for clinical or release use."
