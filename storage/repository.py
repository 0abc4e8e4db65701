"""Database operations used by the pipeline: studies, idempotent runs, stage results and run results.

Every function works inside the caller's session and transaction (see ``storage.database.session_scope``)
and never commits, so a unit of work either happens completely or not at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from storage.schema import (
    STUDY_DOMAINS,
    STUDY_KINDS,
    Artifact,
    Finding,
    Report,
    Run,
    StageResult,
    Study,
    utcnow,
)

__all__ = [
    "RunNotFoundError",
    "begin_run",
    "finish_run",
    "get_run",
    "list_runs",
    "record_stage",
    "run_artifacts",
    "run_findings",
    "run_report",
    "save_results",
    "upsert_study",
]

_FINAL_STATUSES = ("completed", "failed")


class RunNotFoundError(LookupError):
    """No run has the given id."""


def _require_run(session: Session, run_id: str) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise RunNotFoundError(f"no run with id {run_id!r}")
    return run


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
) -> tuple[Run, bool]:
    """Start (or restart) the run identified by ``idempotency_key``; return ``(run, should_execute)``.

    - completed run with this key: returned unchanged with ``False``, there is nothing to do;
    - failed or still "running" (the previous attempt crashed): reset to running, its stage results,
      findings, report and artifacts deleted, returned with ``True``;
    - no such run: created and returned with ``True``.
    """
    # FOR UPDATE (PostgreSQL) makes a concurrent begin_run with the same key wait for this transaction.
    run = session.scalars(
        select(Run).where(Run.idempotency_key == idempotency_key).with_for_update()
    ).one_or_none()
    if run is None:
        run = Run(
            study=study,
            idempotency_key=idempotency_key,
            status="running",
            started_at=utcnow(),
            models=models,
            parameters=parameters,
            code_version=code_version,
            flow_run_id=flow_run_id,
        )
        session.add(run)
        session.flush()
        return run, True
    if run.study_id != study.id:
        raise ValueError(
            f"idempotency key {idempotency_key!r} already belongs to run {run.id} of another study"
        )
    if run.status == "completed":
        return run, False
    _delete_results(session, run.id, stages=True)
    run.status = "running"
    run.started_at = utcnow()
    run.finished_at = None
    run.error = None
    run.summary = None
    # Record what this attempt actually runs with, not what the crashed attempt used.
    run.models = models
    run.parameters = parameters
    run.code_version = code_version
    run.flow_run_id = flow_run_id
    session.flush()
    # The bulk deletes bypassed the relationship collections; reload them on next access.
    session.expire(run, ["stage_results", "findings", "report", "artifacts"])
    return run, True


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
    stage: str,
    status: str,
    started_at: datetime,
    finished_at: datetime | None,
    details: dict[str, Any] | None,
) -> StageResult:
    """Insert or update the result of ``stage`` for the run (one row per run and stage)."""
    _require_run(session, run_id)
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
    findings: list[dict[str, Any]],
    report: dict[str, Any] | None,
    artifacts: list[dict[str, Any]],
) -> None:
    """Store the run's findings, report and artifacts, replacing any saved before for this run.

    Dict keys are the column names of ``Finding`` / ``Report`` / ``Artifact`` (without ``id`` and
    ``run_id``); a finding without ``index`` gets its position in the list. Replacing instead of adding
    makes a retried save produce no duplicates.
    """
    run = _require_run(session, run_id)
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
    status: str,
    error: str | None = None,
    summary: dict[str, Any] | None = None,
) -> Run:
    """Mark the run completed or failed, with the time, the error message and a small result summary."""
    if status not in _FINAL_STATUSES:
        raise ValueError(f"a run finishes as one of {_FINAL_STATUSES}, got {status!r}")
    run = _require_run(session, run_id)
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


def run_findings(session: Session, *, run_id: str) -> list[Finding]:
    """The run's findings in ``index`` order."""
    return list(session.scalars(select(Finding).where(Finding.run_id == run_id).order_by(Finding.index)))


def run_artifacts(session: Session, *, run_id: str) -> list[Artifact]:
    """The run's artifacts in the order they were saved."""
    return list(session.scalars(select(Artifact).where(Artifact.run_id == run_id).order_by(Artifact.id)))


def run_report(session: Session, *, run_id: str) -> Report | None:
    """The run's report, or ``None`` if it has none."""
    return session.scalars(select(Report).where(Report.run_id == run_id)).one_or_none()
