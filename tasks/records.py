"""Small helpers tasks use to write stage rows and audit events in one transaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from argus.db import db_session
from storage.audit import record_event
from storage.repository import record_stage
from tasks.resources import actor
from tasks.types import RunHandle


def utcnow() -> dt.datetime:
    """Current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


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
        outcome=outcome,
        details=details,
    )


def record_stage_done(
    run: RunHandle, stage: str, started: dt.datetime, details: dict[str, Any], action: str = "analyzed"
) -> None:
    """Stage row + its audit event, committed together."""
    with db_session() as session:
        record_stage(
            session,
            run_id=run.run_id,
            stage=stage,
            status="completed",
            started_at=started,
            finished_at=utcnow(),
            details=details,
        )
        audit_run(session, run, action, {"stage": stage, **details})
