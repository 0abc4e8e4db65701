"""Load task: read a study's files, keep the originals in the store, stage model-ready frames."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from argus.loading import ImageSeries, LoadLimits, patient_directions, scan_inputs
from argus.settings import get_settings
from storage.object_store import put_content
from tasks.arrays import encode_frames
from tasks.resources import object_store
from tasks.types import FrameRef, LoadedStudy, ObjectRef

# The medical models were trained on windowed CT only; anything else would give meaningless findings.
MEDICAL_MODALITIES = ("CT",)


class StudyLoadError(ValueError):
    """The files handed to the load task are not one analyzable study."""


# Patient direction → the body axis it lies on; a pair of axes names the image plane.
AXIS = {"right": "LR", "left": "LR", "anterior": "AP", "posterior": "AP", "superior": "SI", "inferior": "SI"}
PLANES = {
    frozenset({"LR", "AP"}): "axial",
    frozenset({"LR", "SI"}): "coronal",
    frozenset({"AP", "SI"}): "sagittal",
}


def resolve_domain(kind: str, requested: str | None) -> str:
    """The domain to analyze with: as requested, else medical for DICOM and industrial for photos."""
    if requested is not None:
        return requested
    return "medical" if kind == "dicom" else "industrial"


def unsupported_reason(series: ImageSeries, kind: str, domain: str) -> str | None:
    """Why a series cannot go through a domain's models, or None when it can.

    The medical models were trained on axial CT slices: other modalities, localizer (scout) images
    and coronal or sagittal reformats would give findings that mean nothing.
    """
    if domain != "medical" or kind != "dicom":
        return None
    if (series.modality or "").upper() not in MEDICAL_MODALITIES:
        return (
            f"modality {series.modality or 'unknown'} of series {series.series_uid} is not supported "
            f"by the medical models (supported: {', '.join(MEDICAL_MODALITIES)})"
        )
    if "LOCALIZER" in series.image_type:
        return f"series {series.series_uid} is a localizer (scout); the medical models read axial slices"
    planes = {_plane(patient_directions(f.orientation)) for f in series.frames if f.orientation is not None}
    if planes - {"axial"}:
        plane = " / ".join(sorted(planes - {"axial"}))
        return f"series {series.series_uid} is {plane}, not axial; the medical models read axial slices"
    return None


def _plane(directions: tuple[str, str] | None) -> str:
    """axial / coronal / sagittal from the patient sides at an image's left edge and top."""
    if directions is None:
        return "oblique"
    return PLANES.get(frozenset(AXIS[d] for d in directions), "oblique")


def slice_numbers(series: ImageSeries) -> list[int]:
    """The scanner's InstanceNumber of each frame when they identify the frames, else 1-based positions.

    Instance numbers are what a PACS viewer shows, and they stay right when some files were rejected.
    """
    numbers = [f.instance_number for f in series.frames]
    if all(n is not None for n in numbers) and len(set(numbers)) == len(numbers):
        return [int(n) for n in numbers if n is not None]
    return list(range(1, len(series.frames) + 1))


def limits() -> LoadLimits:
    """Input size limits from settings."""
    settings = get_settings()
    return LoadLimits(min_side=settings.min_image_side, max_pixels=settings.max_image_pixels)


@task(name="load-study", cache_policy=NO_CACHE)  # no retries: a bad study stays bad
def load_study(paths: Sequence[str], domain: str | None = None, notes: Sequence[str] = ()) -> LoadedStudy:
    """Read one study's files, store the originals and its model-ready frames; return references."""
    scan = scan_inputs([Path(p) for p in paths], limits())
    if scan.rejected:
        raise StudyLoadError("; ".join(f"{r.path}: {r.reason}" for r in scan.rejected))
    if len(scan.studies) != 1:
        raise StudyLoadError(f"expected the files of exactly one study, found {len(scan.studies)}")
    study = scan.studies[0]
    chosen = resolve_domain(study.kind, domain)
    problems = [r for s in study.series if (r := unsupported_reason(s, study.kind, chosen))]
    if problems:
        raise StudyLoadError("; ".join(problems))
    store = object_store()
    inputs = []
    prefix = f"studies/{study.study_uid}"
    for path in study.source_paths:
        content_type = "application/dicom" if study.kind == "dicom" else _image_content_type(path)
        stored = put_content(store, f"{prefix}/inputs", path.name, path.read_bytes(), content_type)
        inputs.append(ObjectRef(stored.key, stored.sha256, stored.size, stored.content_type))
    frames: list[np.ndarray] = []
    refs: list[FrameRef] = []
    for series in study.series:
        for number, frame in zip(slice_numbers(series), series.frames, strict=True):
            refs.append(
                FrameRef(
                    index=len(frames),
                    series_uid=series.series_uid,
                    slice_number=number,
                    source_file=frame.source_path.name,
                    sop_instance_uid=frame.sop_instance_uid,
                    width=int(frame.pixels.shape[1]),
                    height=int(frame.pixels.shape[0]),
                    pixel_spacing_mm=frame.pixel_spacing_mm,
                    patient_directions=patient_directions(frame.orientation),
                    slice_position_mm=frame.slice_location_mm,
                )
            )
            frames.append(frame.pixels)
    archive = put_content(store, f"{prefix}/frames", "frames.npz", encode_frames(frames), "application/x-npz")
    return LoadedStudy(
        study_uid=study.study_uid,
        kind=study.kind,
        domain=chosen,
        modality=study.series[0].modality if study.series else None,
        patient_id=study.patient_id,
        accession_number=study.accession_number,
        description=study.description,
        inputs=tuple(inputs),
        input_names=tuple(p.name for p in study.source_paths),
        frames_archive=ObjectRef(archive.key, archive.sha256, archive.size, archive.content_type),
        frames=tuple(refs),
        notes=tuple(notes),
    )


def _image_content_type(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    return {"jpg": "image/jpeg", "jpeg": "image/jpeg", "tif": "image/tiff", "tiff": "image/tiff"}.get(
        suffix, f"image/{suffix or 'octet-stream'}"
    )
