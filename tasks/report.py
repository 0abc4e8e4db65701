"""Report task: a structured report grounded in the detections and their measurements."""

from __future__ import annotations

from prefect import task

from argus.settings import get_settings
from models.reporter import FindingInput, Report, ReportRequest, get_reporter
from storage.schema import utcnow
from tasks.gpu import gpu_slot
from tasks.records import MODEL_TASK_OPTIONS, record_stage_done, renew_lease
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


@task(name="report", timeout_seconds=600, **MODEL_TASK_OPTIONS)
def report(study: LoadedStudy, run: RunHandle, findings: list[SegmentedFinding]) -> Report:
    """Write the study's report with the configured reporter backend."""
    started = utcnow()
    renew_lease(run)
    reporter = get_reporter(get_settings().reporter)
    with gpu_slot(gate=False if reporter.name == "template" else None):
        result = reporter.generate(report_request(study, findings))
    record_stage_done(run, "report", started, {"reporter": result.reporter, "model": result.model})
    return result
