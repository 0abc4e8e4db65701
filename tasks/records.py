"""Small helpers tasks use to write stage rows and audit events in one transaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect.cache_policies import NO_CACHE
from sqlalchemy.orm import Session

from argus.db import db_session
from storage.audit import record_event
from storage.repository import RunInProgressError, StaleAttemptError, record_stage, touch_run
from storage.schema import utcnow
from tasks.resources import actor
from tasks.types import RunHandle


def audit_run(
    session: Session, run: RunHandle, action: str, details: dict[str, Any], outcome: str = "success"
) -> None:
    """One audit event about a run, in the caller's transaction."""
    record_event(
        session,
        actor=actor(),
        action=action,
        object_type="run",
        object_id=run.run_id,
        study_uid=run.study_uid,
        run_id=run.run_id,
        outcome=outcome,
        details=details,
    )


def retryable(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: not when another attempt owns the run (retrying cannot help)."""
    return not isinstance(state.result(raise_on_failure=False), StaleAttemptError | RunInProgressError)


# Decorator options shared by the model tasks (detect, segment, report): tagged for the GPU, one
# retry for a transient device error, none once another attempt owns the run.
MODEL_TASK_OPTIONS: dict[str, Any] = {
    "tags": ["gpu"],
    "retries": 1,
    "retry_delay_seconds": 2,
    "retry_condition_fn": retryable,
    "cache_policy": NO_CACHE,
}


def renew_lease(run: RunHandle) -> None:
    """Tell other workers this attempt is alive (before long model work); fails if it lost the run."""
    with db_session() as session:
        touch_run(session, run_id=run.run_id, attempt=run.attempt)


def record_stage_done(
    run: RunHandle, stage: str, started: dt.datetime, details: dict[str, Any], action: str = "analyzed"
) -> None:
    """Stage row + its audit event, committed together; also renews this attempt's lease on the run."""
    with db_session() as session:
        touch_run(session, run_id=run.run_id, attempt=run.attempt)
        record_stage(
            session,
            run_id=run.run_id,
            attempt=run.attempt,
            stage=stage,
            status="completed",
            started_at=started,
            finished_at=utcnow(),
            details=details,
        )
        audit_run(session, run, action, {"stage": stage, **details})
