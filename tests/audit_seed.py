"""One analyzed study written through storage/ (no flow run): what the audit, API and purge tests query."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from storage.audit import record_event
from storage.database import session_scope
from storage.repository import begin_run, finish_run, save_results, upsert_study

MODEL_VERSION = "2026.11.25"
LABEL = "lesion"


def seed_analyzed_study(
    engine: Engine,
    *,
    study_uid: str,
    patient_id: str,
    accession: str,
    artifacts: list[dict[str, Any]] | None = None,
) -> str:
    """A CT study with one completed run (model ``MODEL_VERSION``, one ``LABEL`` finding, the given artifact
    rows) and three audit events about the run by ``argus:alice``; returns the run id."""
    with session_scope(engine) as session:
        study = upsert_study(
            session,
            study_uid=study_uid,
            kind="dicom",
            domain="medical",
            modality="CT",
            patient_id=patient_id,
            accession_number=accession,
            description=None,
        )
        models = [{"kind": "detector", "name": "yolo", "version": MODEL_VERSION, "sha256": "ab" * 32}]
        run, _ = begin_run(
            session,
            study=study,
            idempotency_key="k",
            models=models,
            parameters={},
            code_version="v",
            flow_run_id=None,
        )
        finding = {"label": LABEL, "score": 0.8, "x1": 1, "y1": 2, "x2": 30, "y2": 40, "area_px": 99.0}
        save_results(
            session, run_id=run.id, attempt=1, findings=[finding], report=None, artifacts=artifacts or []
        )
        finish_run(session, run_id=run.id, attempt=1, status="completed")
        for action in ("ingested", "analyzed", "run_completed"):
            record_event(
                session,
                actor="argus:alice",
                action=action,
                object_type="run",
                object_id=run.id,
                study_uid=study_uid,
                run_id=run.id,
            )
        return run.id
