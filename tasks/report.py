"""Report task: a structured report grounded in the detections and their measurements."""

from __future__ import annotations

from typing import Any

from prefect import task

from models.reporter import FindingInput, Report, ReportContext, ReportRequest
from models.reporter.crops import CropRegion, roi_crops
from storage.schema import utcnow
from tasks.arrays import fetch_frames
from tasks.gpu import gpu_slot
from tasks.records import MODEL_TASK_OPTIONS, record_stage_done, renew_lease
from tasks.resources import reporter, reporter_config
from tasks.types import LoadedStudy, RunHandle, SegmentedFinding


def report_request(study: LoadedStudy, findings: list[SegmentedFinding]) -> ReportRequest:
    """What the reporter may see: the findings with geometry and measurements, and their mask keys."""
    inputs = []
    for f in findings:
        frame = study.frames[f.frame]
        inputs.append(
            FindingInput(
                index=f.index,
                label=f.label,
                score=f.score,
                box=f.box,
                series_uid=frame.series_uid if study.kind == "dicom" else None,
                slice_number=frame.slice_number if study.kind == "dicom" else None,
                image_name=frame.source_file if study.kind != "dicom" else None,
                patient_directions=frame.patient_directions,
                image_width=frame.width,
                image_height=frame.height,
                area_px=f.area_px,
                area_mm2=f.area_mm2,
                width_mm=f.width_mm,
                height_mm=f.height_mm,
                **_volume_fields(f),
            )
        )
    return ReportRequest(
        domain=study.domain,
        study_uid=study.study_uid,
        modality=study.modality,
        description=study.description,
        images_examined=len(study.frames),
        image_names=[f.source_file for f in study.frames] if study.kind != "dicom" else [],
        findings=inputs,
        roi_keys=[f.mask.key for f in findings],
        notes=list(study.notes),
    )


def _volume_fields(finding: SegmentedFinding) -> dict[str, Any]:
    """Slice range, depth and volume of a lesion in a volume; nothing for a 2-D finding."""
    if not finding.volume:
        return {}
    return {
        "slice_range": finding.slice_range,
        "slice_count": len(finding.slices),
        "depth_mm": finding.depth_mm,
        "volume_mm3": finding.volume_mm3,
        "geometry_note": finding.geometry_note,
    }


def report_context(study: LoadedStudy, findings: list[SegmentedFinding]) -> ReportContext:
    """ROI crops of the findings (from the study's frames) and the identifiers that must not leave."""
    regions = [CropRegion(f.index, f.frame, f.box, f.score) for f in findings]
    crops = (
        roi_crops(fetch_frames(study.frames_archive), regions, reporter_config(study.domain).crops)
        if regions
        else []
    )
    uids = {uid for frame in study.frames for uid in (frame.series_uid, frame.sop_instance_uid) if uid}
    known = (study.patient_id, study.accession_number, study.study_uid, *sorted(uids))
    return ReportContext(crops=tuple(crops), identifiers=tuple(x for x in known if x))


@task(name="report", timeout_seconds=600, **MODEL_TASK_OPTIONS)
def report(study: LoadedStudy, run: RunHandle, findings: list[SegmentedFinding]) -> Report:
    """Write the study's report with the configured reporter backend."""
    started = utcnow()
    renew_lease(run)
    writer = reporter(study.domain)
    request = report_request(study, findings)
    if writer.name == "template":
        result = writer.generate(request)
    else:
        context = report_context(study, findings)
        # Only a local model uses this machine's GPU; an endpoint's GPU is the endpoint's business.
        with gpu_slot(gate=None if writer.name == "transformers" else False):
            result = writer.generate(request, context)
    details: dict[str, Any] = {"reporter": result.reporter, "model": result.model}
    if result.provenance is not None:
        details |= result.provenance.model_dump(include={"backend", "cached", "attempts", "fallback_reason"})
    record_stage_done(run, "report", started, details)
    return result
