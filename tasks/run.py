"""Run bookkeeping tasks: open a run idempotently, and fail it cleanly."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

import argus
from argus.db import db_session
from storage.audit import record_event
from storage.repository import begin_run, finish_run, upsert_study
from tasks.records import audit_run
from tasks.resources import actor, model_refs, object_store
from tasks.types import LoadedStudy, RunHandle


def idempotency_key(study: LoadedStudy, parameters: dict[str, Any]) -> str:
    """Same inputs + same models + same parameters + same code → same key (and the same run)."""
    material = {
        "inputs": sorted(i.sha256 for i in study.inputs),
        "domain": study.domain,
        "models": [asdict(m) for m in model_refs(study.domain)],
        "parameters": parameters,
        "code": argus.__version__,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


@task(name="open-run", retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def open_run(study: LoadedStudy, parameters: dict[str, Any]) -> RunHandle:
    """Record the study and open (or find the completed) run for this exact input and configuration."""
    key = idempotency_key(study, parameters)
    me = actor()
    with db_session() as session:
        row = upsert_study(
            session,
            study_uid=study.study_uid,
            kind=study.kind,
            domain=study.domain,
            modality=study.modality,
            patient_id=study.patient_id,
            accession_number=study.accession_number,
            description=study.description,
        )
        run, fresh = begin_run(
            session,
            study=row,
            idempotency_key=key,
            models=[asdict(m) for m in model_refs(study.domain)],
            parameters=parameters,
            code_version=argus.__version__,
            flow_run_id=str(flow_run.id) if flow_run.id else None,
        )
        if fresh:
            for ref, name in zip(study.inputs, study.input_names, strict=True):
                record_event(
                    session,
                    actor=me,
                    action="ingested",
                    object_type="instance" if study.kind == "dicom" else "input",
                    object_id=ref.key,
                    study_uid=study.study_uid,
                    details={"file": name, "sha256": ref.sha256, "size": ref.size},
                )
        handle = RunHandle(run_id=run.id, study_uid=study.study_uid, idempotency_key=key, fresh=fresh)
        if fresh:
            details = {"idempotency_key": key, "domain": study.domain, "parameters": parameters}
            audit_run(session, handle, "run_started", details)
        return handle


@task(name="fail-run", retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def fail_run(run: RunHandle, error: str) -> None:
    """Mark a run failed, remove whatever it had written to the store, and audit both."""
    store = object_store()
    removed = store.list(run.prefix + "/")
    for key in removed:
        store.delete(key)
    with db_session() as session:
        finish_run(session, run_id=run.run_id, status="failed", error=error)
        audit_run(session, run, "run_failed", {"error": error, "objects_removed": len(removed)}, "failure")
