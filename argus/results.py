"""Results as users see them (CLI JSON, tables), read back from the database: one source of truth."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from storage.audit import record_event
from storage.audit_query import AuditPage
from storage.repository import get_run, list_runs, run_artifacts, run_findings, run_report
from storage.schema import Study


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _domain(run: Any) -> str:
    # The domain a run used is in its parameters; the study row shows only the latest one.
    return str((run.parameters or {}).get("domain") or run.study.domain)


def study_result(session: Session, run_id: str) -> dict[str, Any]:
    """One analyzed study: run, findings, report and artifacts, in the documented JSON shape."""
    run = get_run(session, run_id=run_id)
    if run is None:
        raise KeyError(f"no run {run_id}")
    findings = []
    for f in run_findings(session, run_id=run_id):
        item: dict[str, Any] = {
            "index": f.index,
            "label": f.label,
            "score": f.score,
            "box": [f.x1, f.y1, f.x2, f.y2],
            "image": f.source_file,
            "series_uid": f.series_uid,
            "mask_key": f.mask_key,
        }
        if f.slice_index is not None:
            item["slice"] = f.slice_index
        if f.slice_first is not None and f.slice_last is not None:
            # A lesion in a volume: its slices and its size in 3-D ("slice" is its largest section).
            item["slices"] = [f.slice_first, f.slice_last]
            item["slice_count"] = f.slice_count
            item["depth_mm"] = f.depth_mm
            item["volume_mm3"] = f.volume_mm3
        if f.width_mm is not None and f.height_mm is not None:
            item["width_mm"], item["height_mm"] = f.width_mm, f.height_mm
        if f.area_mm2 is not None:
            item["area_mm2"] = f.area_mm2
        else:
            item["area_px"] = f.area_px
        findings.append(item)
    report = run_report(session, run_id=run_id)
    return {
        "study_uid": run.study.study_uid,
        "run_id": run.id,
        "status": run.status,
        "domain": _domain(run),
        "modality": run.study.modality,
        "models": run.models,
        "findings": findings,
        "report": None
        if report is None
        else {"text": report.text, "impression": report.impression, **report.structured},
        "artifacts": [
            {"key": a.key, "kind": a.kind, "sha256": a.sha256, "size": a.size, "content_type": a.content_type}
            for a in run_artifacts(session, run_id=run_id)
        ],
    }


def runs_listing(session: Session, study_uid: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Runs, newest first, as JSON-ready dicts."""
    return [
        {
            "run_id": r.id,
            "study_uid": r.study.study_uid,
            "domain": _domain(r),
            "status": r.status,
            "started_at": _iso(r.started_at),
            "finished_at": _iso(r.finished_at),
            "error": r.error,
            "findings": (r.summary or {}).get("findings"),
        }
        for r in list_runs(session, study_uid=study_uid, limit=limit)
    ]


def audit_listing(events: list[Any]) -> list[dict[str, Any]]:
    """Audit events as JSON-ready dicts."""
    return [
        {
            "id": e.id,
            "time": _iso(e.time),
            "actor": e.actor,
            "host": e.host,
            "action": e.action,
            "object_type": e.object_type,
            "object_id": e.object_id,
            "study_uid": e.study_uid,
            "run_id": e.run_id,
            "outcome": e.outcome,
            "details": e.details,
        }
        for e in events
    ]


def audit_page(page: AuditPage, limit: int) -> dict[str, Any]:
    """A page of audit events as ``argus audit --json`` and ``GET /api/audit`` return it."""
    return {"total": page.total, "offset": page.offset, "limit": limit, "events": audit_listing(page.events)}


def study_summary(study: Study) -> dict[str, Any]:
    """A study's own fields as JSON-ready dict (no runs)."""
    return {
        "study_uid": study.study_uid,
        "kind": study.kind,
        "domain": study.domain,
        "modality": study.modality,
        "patient_id": study.patient_id,
        "accession_number": study.accession_number,
        "description": study.description,
        "created_at": _iso(study.created_at),
    }


def study_detail(session: Session, study: Study) -> dict[str, Any]:
    """A study with every run's results (findings, report, artifacts), newest run first."""
    runs = list_runs(session, study_uid=study.study_uid, limit=10_000)
    return {**study_summary(study), "runs": [study_result(session, run.id) for run in runs]}


def record_read(
    session: Session,
    *,
    actor: str,
    exported: bool,
    object_type: str,
    object_id: str,
    details: dict[str, Any],
    study_uid: str | None = None,
    run_id: str | None = None,
) -> None:
    """Audit a read of results or of the audit trail: ``exported`` (machine-readable) or ``viewed``."""
    record_event(
        session,
        actor=actor,
        action="exported" if exported else "viewed",
        object_type=object_type,
        object_id=object_id,
        study_uid=study_uid,
        run_id=run_id,
        details=details,
    )
