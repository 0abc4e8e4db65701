"""Retention: remove one study's objects and rows on request, keeping the audit trail (append-only).

Order, chosen so that a crash at any point loses nothing and a re-run finishes the job:

1. one transaction checks that no live attempt is running on the study, collects the object keys its rows
   name, and appends a ``purge_started`` event (who, which study, what is planned);
2. objects are deleted: everything under ``studies/<uid>/`` plus every key the study's rows name (except keys
   another study's rows also name). The rows still exist meanwhile, so a re-run finds every key again;
3. one transaction deletes the study's runs (with their stage results, findings, reports, artifacts and
   model rows, by ON DELETE CASCADE) and the study, and appends a ``deleted`` event with the counts.

Deleting rows first would lose the keys of objects outside the study prefix if the process died before the
objects went. A ``purge_started`` without a later ``deleted`` in the trail shows an interrupted purge.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from storage.audit import record_event
from storage.database import session_scope
from storage.object_store import ObjectStore
from storage.schema import Artifact, Finding, Report, Run, RunModel, StageResult, Study, utcnow

__all__ = ["PurgeError", "PurgeResult", "plan_purge", "purge_study", "study_prefix"]

_IN_CHUNK = 500  # keys per IN (...) list: well under SQLite's and PostgreSQL's parameter limits


class PurgeError(RuntimeError):
    """A study cannot be purged (unknown, being analyzed) or its purge stopped midway."""


@dataclass(frozen=True)
class PurgeResult:
    """What a purge removed (or, from ``plan_purge``, would remove); ``objects`` counts keys deleted,
    including keys the rows name whose objects were already gone."""

    study_uid: str
    objects: int
    runs: int
    stage_results: int
    findings: int
    reports: int
    artifacts: int


def study_prefix(study_uid: str) -> str:
    """The object-store prefix every object of a study is written under."""
    return f"studies/{study_uid}/"


def _row_counts(session: Session, study_id: int) -> dict[str, int]:
    """How many rows of each kind belong to the study's runs (the row fields of ``PurgeResult``)."""
    counts = {
        "runs": session.scalar(select(func.count()).select_from(Run).where(Run.study_id == study_id)) or 0
    }
    children: dict[str, type[StageResult | Finding | Report | Artifact]] = {
        "stage_results": StageResult,
        "findings": Finding,
        "reports": Report,
        "artifacts": Artifact,
    }
    for name, model in children.items():
        query = select(func.count()).select_from(model).join(Run, Run.id == model.run_id)
        counts[name] = session.scalar(query.where(Run.study_id == study_id)) or 0
    return counts


def _audit(
    session: Session, actor: str, study_uid: str, action: str, details: dict[str, Any], ok: bool
) -> None:
    record_event(
        session,
        actor=actor,
        action=action,
        object_type="study",
        object_id=study_uid,
        study_uid=study_uid,
        outcome="success" if ok else "failure",
        details=details,
    )


def _row_keys(session: Session, study_id: int) -> set[str]:
    runs = select(Run.id).where(Run.study_id == study_id)
    keys = set(session.scalars(select(Artifact.key).where(Artifact.run_id.in_(runs))))
    masks = session.scalars(
        select(Finding.mask_key).where(Finding.run_id.in_(runs), Finding.mask_key.is_not(None))
    )
    keys.update(k for k in masks if k)
    return keys


def _shared_keys(session: Session, study_id: int, keys: Iterable[str]) -> set[str]:
    """Keys that rows of other studies also name (content-addressed stores may share objects)."""
    pending = sorted(keys)
    shared: set[str] = set()
    for start in range(0, len(pending), _IN_CHUNK):
        chunk = pending[start : start + _IN_CHUNK]
        query = (
            select(Artifact.key)
            .join(Run, Run.id == Artifact.run_id)
            .where(Run.study_id != study_id, Artifact.key.in_(chunk))
        )
        shared.update(session.scalars(query))
    return shared


def _check_not_running(session: Session, study: Study, lease_seconds: float) -> None:
    live_since = utcnow() - timedelta(seconds=lease_seconds)
    running = session.scalars(
        select(Run).where(Run.study_id == study.id, Run.status == "running", Run.heartbeat_at > live_since)
    ).first()
    if running is not None:
        raise PurgeError(
            f"study {study.study_uid} is being analyzed (run {running.id}, attempt {running.attempt}, "
            f"last heartbeat {running.heartbeat_at.isoformat()}); purge it when the run has finished"
        )


def _plan(
    session: Session, store: ObjectStore, study_uid: str, lease_seconds: float
) -> tuple[PurgeResult, set[str]]:
    """(counts, object keys to delete); ``PurgeError`` if there is nothing to purge or a run is live."""
    study = session.scalars(select(Study).where(Study.study_uid == study_uid)).one_or_none()
    keys = set(store.list(study_prefix(study_uid)))
    if study is None:
        if not keys:
            raise PurgeError(
                f"nothing to purge: no study {study_uid} in the database and no objects under "
                f"{study_prefix(study_uid)} in {store.url}"
            )
        return PurgeResult(study_uid, len(keys), 0, 0, 0, 0, 0), keys
    _check_not_running(session, study, lease_seconds)
    keys |= _row_keys(session, study.id)
    keys -= _shared_keys(session, study.id, keys)
    return PurgeResult(study_uid=study_uid, objects=len(keys), **_row_counts(session, study.id)), keys


def plan_purge(engine: Engine, store: ObjectStore, *, study_uid: str, lease_seconds: float) -> PurgeResult:
    """What ``purge_study`` would remove, without changing anything (for a confirmation prompt)."""
    with session_scope(engine) as session:
        return _plan(session, store, study_uid, lease_seconds)[0]


def purge_study(
    engine: Engine, store: ObjectStore, *, study_uid: str, actor: str, lease_seconds: float
) -> PurgeResult:
    """Delete the study's objects, then its rows, auditing both steps (see the module docstring).

    Raises ``PurgeError`` for an unknown study with no objects, a study with a live run, or when deleting
    objects fails (the message says how far it got; running it again finishes the job).
    """
    with session_scope(engine) as session:
        planned, keys = _plan(session, store, study_uid, lease_seconds)
        _audit(session, actor, study_uid, "purge_started", {"planned": asdict(planned)}, ok=True)
    deleted = 0
    try:
        for key in sorted(keys):
            store.delete(key)
            deleted += 1
    except Exception as exc:
        with session_scope(engine) as session:
            progress = {"objects_deleted": deleted, "objects_planned": len(keys), "error": str(exc)}
            _audit(session, actor, study_uid, "deleted", progress, ok=False)
        raise PurgeError(
            f"purge of study {study_uid} stopped after deleting {deleted} of {len(keys)} objects: {exc}; "
            "its rows are untouched, run the purge again to finish"
        ) from exc
    with session_scope(engine) as session:
        result = _delete_rows(session, study_uid, deleted, lease_seconds)
        _audit(session, actor, study_uid, "deleted", {"purged": asdict(result)}, ok=True)
    return result


def _delete_rows(session: Session, study_uid: str, objects: int, lease_seconds: float) -> PurgeResult:
    study = session.scalars(select(Study).where(Study.study_uid == study_uid).with_for_update()).one_or_none()
    if study is None:
        return PurgeResult(study_uid, objects, 0, 0, 0, 0, 0)
    # A run may have started since the plan: refuse rather than pull rows from under a live attempt.
    _check_not_running(session, study, lease_seconds)
    counts = _row_counts(session, study.id)
    runs = select(Run.id).where(Run.study_id == study.id)
    # Children explicitly, not only by ON DELETE CASCADE: SQLite enforces it only with foreign keys on.
    for model in (StageResult, Finding, Report, Artifact, RunModel):
        session.execute(delete(model).where(model.run_id.in_(runs)))
    session.execute(delete(Run).where(Run.study_id == study.id))
    session.execute(delete(Study).where(Study.id == study.id))
    return PurgeResult(study_uid=study_uid, objects=objects, **counts)
