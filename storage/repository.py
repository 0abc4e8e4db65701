"""Database operations used by the pipeline: studies, idempotent runs, stage results and run results.

Every function works inside the caller's session and transaction (see ``storage.database.session_scope``)
and never commits, so a unit of work either happens completely or not at all.

Runs are executed by attempts holding a lease: ``begin_run`` starts attempt 1, or a new attempt of a run
whose previous attempt failed or stopped sending heartbeats, and refuses (``RunInProgressError``) while a
live attempt holds the run. Every write names its attempt and is refused (``StaleAttemptError``) once the
run has moved on, so a slow or crashed-and-revived worker can never overwrite a newer or finished attempt.
On PostgreSQL these functions lock the run's row until the transaction ends: keep such transactions short,
and in a transaction call them before ``storage.audit.record_event`` (run row first, then the audit
chain's lock), the same order in every caller, so that two transactions never wait for each other.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from storage.schema import (
    MAX_KEY_LENGTH,
    STUDY_DOMAINS,
    STUDY_KINDS,
    Artifact,
    Finding,
    Report,
    Run,
    RunModel,
    StageResult,
    Study,
    utcnow,
)

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "RunInProgressError",
    "RunNotFoundError",
    "StaleAttemptError",
    "begin_run",
    "finish_run",
    "get_run",
    "get_study",
    "list_runs",
    "list_studies",
    "record_stage",
    "run_artifacts",
    "run_findings",
    "run_report",
    "save_results",
    "touch_run",
    "upsert_study",
]

_FINAL_STATUSES = ("completed", "failed")
# How long a running attempt may stay silent (no begin_run / touch_run) before another worker may take the
# run over, assuming the silent worker crashed.
DEFAULT_LEASE_SECONDS = 900.0


class RunNotFoundError(LookupError):
    """No run has the given id."""


class RunInProgressError(RuntimeError):
    """Another attempt is executing the run and its lease has not expired; try again later."""

    def __init__(self, run_id: str, attempt: int, heartbeat_at: datetime) -> None:
        super().__init__(
            f"run {run_id} is already being analyzed (attempt {attempt}, "
            f"last heartbeat {heartbeat_at.isoformat()}); retry later"
        )
        self.run_id = run_id
        self.attempt = attempt
        self.heartbeat_at = heartbeat_at


class StaleAttemptError(RuntimeError):
    """An attempt tried to write to a run it no longer owns (superseded by a newer attempt, or finished)."""

    def __init__(self, run_id: str, attempt: int, current_attempt: int, current_status: str) -> None:
        if current_attempt != attempt:
            state = f"the run is now at attempt {current_attempt} (status {current_status})"
        else:
            state = f"the run is already {current_status}"
        super().__init__(f"run {run_id}: attempt {attempt} may no longer write: {state}")
        self.run_id = run_id
        self.attempt = attempt
        self.current_attempt = current_attempt
        self.current_status = current_status


def _locked_run_query(*conditions: ColumnElement[bool]) -> Select[Run]:
    # FOR UPDATE (PostgreSQL; SQLite's BEGIN IMMEDIATE already serializes writers) holds the row until the
    # transaction ends. populate_existing: a Run already in this session's identity map would otherwise
    # keep the attribute values it was loaded with, and the decision would be taken on stale data.
    return select(Run).where(*conditions).with_for_update().execution_options(populate_existing=True)


def _lock_run(session: Session, run_id: str) -> Run:
    run = session.scalars(_locked_run_query(Run.id == run_id)).one_or_none()
    if run is None:
        raise RunNotFoundError(f"no run with id {run_id!r}")
    return run


def _lock_attempt(session: Session, run_id: str, attempt: int) -> Run:
    """The run, locked, if ``attempt`` is its current attempt and it is running; else StaleAttemptError."""
    run = _lock_run(session, run_id)
    if run.attempt != attempt or run.status != "running":
        raise StaleAttemptError(run_id, attempt, run.attempt, run.status)
    return run


def _check_key_length(what: str, value: Any) -> None:
    # SQLite ignores VARCHAR lengths, PostgreSQL rejects longer values: check here so both behave alike.
    if isinstance(value, str) and len(value) > MAX_KEY_LENGTH:
        raise ValueError(
            f"{what} is {len(value)} characters long, the limit is {MAX_KEY_LENGTH}: {value[:80]}..."
        )


def upsert_study(
    session: Session,
    *,
    study_uid: str,
    kind: str,
    domain: str,
    modality: str | None,
    patient_id: str | None,
    accession_number: str | None,
    description: str | None,
) -> Study:
    """Create the study or update it; ``None`` fields keep what is already known about an existing study."""
    if kind not in STUDY_KINDS:
        raise ValueError(f"study kind must be one of {STUDY_KINDS}, got {kind!r}")
    if domain not in STUDY_DOMAINS:
        raise ValueError(f"study domain must be one of {STUDY_DOMAINS}, got {domain!r}")
    optional = {
        "modality": modality,
        "patient_id": patient_id,
        "accession_number": accession_number,
        "description": description,
    }
    study = session.scalars(select(Study).where(Study.study_uid == study_uid)).one_or_none()
    if study is None:
        study = Study(study_uid=study_uid, kind=kind, domain=domain, **optional)
        try:
            # A savepoint, so losing an insert race with another worker does not abort the whole transaction.
            with session.begin_nested():
                session.add(study)
        except IntegrityError:
            study = session.scalars(select(Study).where(Study.study_uid == study_uid)).one()
        else:
            return study
    study.kind = kind
    study.domain = domain
    for name, value in optional.items():
        if value is not None:
            setattr(study, name, value)
    session.flush()
    return study


def begin_run(
    session: Session,
    *,
    study: Study,
    idempotency_key: str,
    models: list[dict[str, Any]],
    parameters: dict[str, Any],
    code_version: str,
    flow_run_id: str | None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> tuple[Run, bool]:
    """Start a new attempt of the run identified by ``idempotency_key``; return ``(run, should_execute)``.

    - no such run: created with attempt 1 and returned with ``True``;
    - completed: returned unchanged with ``False``, there is nothing to do;
    - running, last heartbeat less than ``lease_seconds`` ago: another worker is executing it, raises
      ``RunInProgressError``;
    - running with an older heartbeat (its worker crashed) or failed: reset to a new attempt (``attempt``
      + 1, heartbeat now, stage results, findings, report and artifacts deleted, models / parameters /
      code version / flow run id of this attempt recorded) and returned with ``True``.

    The caller then passes ``run.attempt`` to every write (``record_stage``, ``save_results``,
    ``finish_run``, ``touch_run``), which refuse to write once a newer attempt has taken over. Heartbeats
    use the workers' clocks: keep them synchronised well within the lease.
    """
    if not (math.isfinite(lease_seconds) and lease_seconds > 0):
        raise ValueError(f"lease_seconds must be a positive number of seconds, got {lease_seconds!r}")
    run = session.scalars(_locked_run_query(Run.idempotency_key == idempotency_key)).one_or_none()
    if run is None:
        now = utcnow()
        run = Run(
            idempotency_key=idempotency_key,
            status="running",
            attempt=1,
            started_at=now,
            heartbeat_at=now,
            models=models,
            parameters=parameters,
            code_version=code_version,
            flow_run_id=flow_run_id,
        )
        try:
            # A concurrent begin_run with the same new key inserts too; on PostgreSQL the second INSERT
            # waits for the first transaction and then violates the unique key. The savepoint keeps the
            # caller's transaction usable, and the winner's row is then judged like any existing run.
            with session.begin_nested():
                # Added before linking to the study: begin_nested() flushes first, and a study whose runs
                # collection holds a run outside the session makes SQLAlchemy warn and skip it.
                session.add(run)
                run.study = study
        except IntegrityError:
            run = session.scalars(_locked_run_query(Run.idempotency_key == idempotency_key)).one_or_none()
            if run is None:  # not a lost race (e.g. the study does not exist)
                raise
        else:
            _set_run_models(session, run, models)
            return run, True
    if run.study_id != study.id:
        raise ValueError(
            f"idempotency key {idempotency_key!r} already belongs to run {run.id} of another study"
        )
    if run.status == "completed":
        return run, False
    now = utcnow()
    if run.status == "running" and run.heartbeat_at > now - timedelta(seconds=lease_seconds):
        raise RunInProgressError(run.id, run.attempt, run.heartbeat_at)
    _delete_results(session, run.id, stages=True)
    run.attempt += 1
    run.status = "running"
    run.started_at = now
    run.heartbeat_at = now
    run.finished_at = None
    run.error = None
    run.summary = None
    # Record what this attempt actually runs with, not what the crashed attempt used.
    run.models = models
    run.parameters = parameters
    run.code_version = code_version
    run.flow_run_id = flow_run_id
    _set_run_models(session, run, models)
    # The bulk deletes bypassed the relationship collections; reload them on next access.
    session.expire(run, ["stage_results", "findings", "report", "artifacts"])
    return run, True


def _set_run_models(session: Session, run: Run, models: list[dict[str, Any]]) -> None:
    """Mirror ``run.models`` into ``run_models`` rows (what audit queries filter by model version on)."""
    # Delete then insert, flushed in that order: reassigning the collection would insert the new rows
    # before deleting the old ones and trip the (run_id, kind) unique constraint.
    session.execute(delete(RunModel).where(RunModel.run_id == run.id))
    session.add_all(
        RunModel(run_id=run.id, kind=m["kind"], name=m["name"], version=m["version"], sha256=m["sha256"])
        for m in models
    )
    session.flush()
    session.expire(run, ["model_rows"])


def touch_run(session: Session, *, run_id: str, attempt: int) -> None:
    """Renew the lease of ``attempt``: its heartbeat becomes now.

    Raises ``StaleAttemptError`` if a newer attempt took the run over or the run is no longer running.
    Call it at least once per lease period, ideally in the same transaction as a stage's writes.
    """
    run = _lock_attempt(session, run_id, attempt)
    run.heartbeat_at = utcnow()
    session.flush()


def _delete_results(session: Session, run_id: str, *, stages: bool) -> None:
    models: list[type[Finding | Report | Artifact | StageResult]] = [Finding, Report, Artifact]
    if stages:
        models.append(StageResult)
    for model in models:
        session.execute(delete(model).where(model.run_id == run_id))


def record_stage(
    session: Session,
    *,
    run_id: str,
    attempt: int,
    stage: str,
    status: str,
    started_at: datetime,
    finished_at: datetime | None,
    details: dict[str, Any] | None,
) -> StageResult:
    """Insert or update the result of ``stage`` for the run (one row per run and stage).

    Raises ``StaleAttemptError`` unless the run is running at ``attempt``.
    """
    _lock_attempt(session, run_id, attempt)
    result = session.scalars(
        select(StageResult).where(StageResult.run_id == run_id, StageResult.stage == stage)
    ).one_or_none()
    if result is None:
        result = StageResult(run_id=run_id, stage=stage)
        session.add(result)
    result.status = status
    result.started_at = started_at
    result.finished_at = finished_at
    result.details = details or {}
    session.flush()
    return result


def save_results(
    session: Session,
    *,
    run_id: str,
    attempt: int,
    findings: list[dict[str, Any]],
    report: dict[str, Any] | None,
    artifacts: list[dict[str, Any]],
) -> None:
    """Store the run's findings, report and artifacts, replacing any saved before for this run.

    Dict keys are the column names of ``Finding`` / ``Report`` / ``Artifact`` (without ``id`` and
    ``run_id``); a finding without ``index`` gets its position in the list. Replacing instead of adding
    makes a retried save produce no duplicates. Raises ``StaleAttemptError`` unless the run is running at
    ``attempt``.
    """
    for finding in findings:
        _check_key_length("finding mask_key", finding.get("mask_key"))
    for artifact in artifacts:
        _check_key_length("artifact key", artifact.get("key"))
    run = _lock_attempt(session, run_id, attempt)
    _delete_results(session, run_id, stages=False)
    session.expire(run, ["findings", "report", "artifacts"])
    try:
        session.add_all(
            Finding(run_id=run_id, **{"index": position, **finding})
            for position, finding in enumerate(findings)
        )
        if report is not None:
            session.add(Report(run_id=run_id, **report))
        session.add_all(Artifact(run_id=run_id, **artifact) for artifact in artifacts)
    except TypeError as exc:  # unknown key in one of the dicts
        raise ValueError(f"cannot save results of run {run_id}: {exc}") from exc
    session.flush()


def finish_run(
    session: Session,
    *,
    run_id: str,
    attempt: int,
    status: str,
    error: str | None = None,
    summary: dict[str, Any] | None = None,
) -> Run:
    """Mark the run completed or failed, with the time, the error message and a small result summary.

    A failed run keeps its stage results (for diagnosis) but loses its findings, report and artifact rows
    in the same transaction: a failed run shows no results. Raises ``StaleAttemptError`` unless the run is
    running at ``attempt``, so a stale attempt can never overwrite a finished or newer one.
    """
    if status not in _FINAL_STATUSES:
        raise ValueError(f"a run finishes as one of {_FINAL_STATUSES}, got {status!r}")
    run = _lock_attempt(session, run_id, attempt)
    if status == "failed":
        _delete_results(session, run_id, stages=False)
        session.expire(run, ["findings", "report", "artifacts"])
    run.status = status
    run.finished_at = utcnow()
    run.error = error
    run.summary = summary
    session.flush()
    return run


def get_run(session: Session, *, run_id: str) -> Run | None:
    """The run with this id, or ``None``."""
    return session.get(Run, run_id)


def list_runs(session: Session, *, study_uid: str | None = None, limit: int = 100) -> list[Run]:
    """Newest runs first, optionally of one study; ``run.study`` is loaded with them."""
    query = select(Run).options(selectinload(Run.study)).order_by(Run.started_at.desc(), Run.id).limit(limit)
    if study_uid is not None:
        query = query.join(Run.study).where(Study.study_uid == study_uid)
    return list(session.scalars(query))


def get_study(session: Session, *, study_uid: str) -> Study | None:
    """The study with this Study Instance UID, or ``None``."""
    return session.scalars(select(Study).where(Study.study_uid == study_uid)).one_or_none()


def list_studies(
    session: Session,
    *,
    patient_id: str | None = None,
    accession_number: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Study], int]:
    """A page of studies, newest first, optionally of one patient or accession; and how many match."""
    conditions = []
    if patient_id is not None:
        conditions.append(Study.patient_id == patient_id)
    if accession_number is not None:
        conditions.append(Study.accession_number == accession_number)
    query = select(Study).where(*conditions).order_by(Study.id.desc()).limit(limit).offset(offset)
    total = session.scalar(select(func.count()).select_from(Study).where(*conditions)) or 0
    return list(session.scalars(query)), total


def run_findings(session: Session, *, run_id: str) -> list[Finding]:
    """The run's findings in ``index`` order."""
    return list(session.scalars(select(Finding).where(Finding.run_id == run_id).order_by(Finding.index)))


def run_artifacts(session: Session, *, run_id: str) -> list[Artifact]:
    """The run's artifacts in the order they were saved."""
    return list(session.scalars(select(Artifact).where(Artifact.run_id == run_id).order_by(Artifact.id)))


def run_report(session: Session, *, run_id: str) -> Report | None:
    """The run's report, or ``None`` if it has none."""
    return session.scalars(select(Report).where(Report.run_id == run_id)).one_or_none()
