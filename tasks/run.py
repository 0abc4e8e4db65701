"""Run bookkeeping tasks: open a run idempotently, and fail it cleanly."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from argus.db import db_session
from argus.fingerprint import code_version
from argus.settings import get_settings
from storage.audit import record_event
from storage.repository import StaleAttemptError, begin_run, finish_run, upsert_study
from tasks.records import audit_run, retryable
from tasks.resources import actor, device, model_refs, object_store
from tasks.types import LoadedStudy, RunHandle

log = logging.getLogger(__name__)


def idempotency_key(study: LoadedStudy, parameters: dict[str, Any]) -> str:
    """Same inputs + same models + same parameters + same code → same key (and the same run)."""
    material = {
        "inputs": sorted(i.sha256 for i in study.inputs),
        "domain": study.domain,
        "models": [asdict(m) for m in model_refs(study.domain)],
        "parameters": parameters,
        "notes": sorted(study.notes),  # the same files with other unreadable company: another report
        "code": code_version(),
        "device": device(),  # CUDA runs in half precision: not the same numbers as the CPU
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


@task(
    name="open-run",
    retries=2,
    retry_delay_seconds=1,
    retry_condition_fn=retryable,
    cache_policy=NO_CACHE,
)
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
            code_version=code_version(),
            flow_run_id=str(flow_run.id) if flow_run.id else None,
            lease_seconds=get_settings().run_lease_seconds,
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
                    run_id=run.id,
                    details={"file": name, "sha256": ref.sha256, "size": ref.size},
                )
        handle = RunHandle(
            run_id=run.id, study_uid=study.study_uid, idempotency_key=key, fresh=fresh, attempt=run.attempt
        )
        if fresh:
            details = {"idempotency_key": key, "domain": study.domain, "parameters": parameters}
            audit_run(session, handle, "run_started", {**details, "attempt": run.attempt})
        else:
            audit_run(session, handle, "run_reused", {"idempotency_key": key, "requested_by": me})
    if fresh and handle.attempt > 1:
        # Resuming after a crash or failure: objects of earlier attempts are stale. Best effort: they
        # live under other attempt prefixes, so a leftover never mixes with this attempt's results.
        try:
            _remove_objects(handle.run_prefix + "/", keep=handle.prefix + "/")
        except Exception as exc:
            log.warning("could not remove earlier attempts' objects of run %s: %s", handle.run_id, exc)
    return handle


def _remove_objects(prefix: str, keep: str | None = None) -> int:
    store = object_store()
    keys = [k for k in store.list(prefix) if keep is None or not k.startswith(keep)]
    for key in keys:
        store.delete(key)
    return len(keys)


@task(name="fail-run", retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def fail_run(run: RunHandle, error: str) -> None:
    """Mark this attempt failed (its result rows go), then remove its objects; audit both.

    If another attempt owns the run by now, nothing is touched: its data is not ours to remove.
    """
    try:
        with db_session() as session:
            finish_run(session, run_id=run.run_id, attempt=run.attempt, status="failed", error=error)
            audit_run(session, run, "run_failed", {"error": error, "attempt": run.attempt}, "failure")
    except StaleAttemptError as exc:
        # Already failed by this attempt (a retry after the cleanup broke): finish the cleanup.
        if not (exc.current_attempt == run.attempt and exc.current_status == "failed"):
            log.warning("not failing run %s: %s", run.run_id, exc)
            return
    _remove_objects(run.prefix + "/")
