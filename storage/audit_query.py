"""Audit trail queries: filters on indexed columns and joins (never JSON scans), pages and totals.

Patient id and accession number come from the ``studies`` row of the event's study; model version and
finding label from the ``run_models`` and ``findings`` rows of the event's run (``audit_events.run_id``).
Those filters therefore find only events whose study or run still exists: after ``argus purge`` the
events stay and remain findable by study UID, action, actor and time.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from storage.schema import AuditEvent, Finding, RunModel, Study

__all__ = ["AuditFilter", "AuditPage", "count_events", "find_events", "list_events"]


def _as_utc(value: datetime | None) -> datetime | None:
    # Times without an offset are taken as UTC, the zone every stored time is in.
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class AuditFilter:
    """Which events to select; every given field must match. ``since`` is inclusive, ``until`` exclusive."""

    patient_id: str | None = None
    study_uid: str | None = None
    accession_number: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    action: str | None = None
    actor: str | None = None
    model_version: str | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "since", _as_utc(self.since))
        object.__setattr__(self, "until", _as_utc(self.until))
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError(
                f"since ({self.since.isoformat()}) must be before until ({self.until.isoformat()})"
            )

    def described(self) -> dict[str, str]:
        """The filters that are set, as JSON-ready text (what an audit event of the query records)."""
        described: dict[str, str] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None:
                described[field.name] = value.isoformat() if isinstance(value, datetime) else str(value)
        return described

    def conditions(self) -> list[ColumnElement[bool]]:
        """SQL conditions on ``audit_events`` for the filters that are set."""
        conditions: list[ColumnElement[bool]] = []
        if self.study_uid is not None:
            conditions.append(AuditEvent.study_uid == self.study_uid)
        if self.patient_id is not None:
            by_patient = select(Study.study_uid).where(Study.patient_id == self.patient_id)
            conditions.append(AuditEvent.study_uid.in_(by_patient))
        if self.accession_number is not None:
            by_accession = select(Study.study_uid).where(Study.accession_number == self.accession_number)
            conditions.append(AuditEvent.study_uid.in_(by_accession))
        if self.since is not None:
            conditions.append(AuditEvent.time >= self.since)
        if self.until is not None:
            conditions.append(AuditEvent.time < self.until)
        if self.action is not None:
            conditions.append(AuditEvent.action == self.action)
        if self.actor is not None:
            conditions.append(AuditEvent.actor == self.actor)
        if self.model_version is not None:
            by_model = select(RunModel.run_id).where(RunModel.version == self.model_version)
            conditions.append(AuditEvent.run_id.in_(by_model))
        if self.label is not None:
            conditions.append(
                AuditEvent.run_id.in_(select(Finding.run_id).where(Finding.label == self.label))
            )
        return conditions


@dataclass(frozen=True)
class AuditPage:
    """One page of matching events and how many match in all."""

    events: list[AuditEvent]
    total: int
    offset: int


def list_events(
    session: Session,
    filters: AuditFilter | None = None,
    *,
    limit: int = 1000,
    offset: int = 0,
    newest_first: bool = False,
) -> list[AuditEvent]:
    """Events matching ``filters``, oldest first (by id, i.e. chain order) or newest first."""
    order = AuditEvent.id.desc() if newest_first else AuditEvent.id.asc()
    conditions = (filters or AuditFilter()).conditions()
    query = select(AuditEvent).where(*conditions).order_by(order).limit(limit).offset(offset)
    return list(session.scalars(query))


def count_events(session: Session, filters: AuditFilter | None = None) -> int:
    """How many events match ``filters`` (the total behind ``list_events``' pages)."""
    conditions = (filters or AuditFilter()).conditions()
    return session.scalar(select(func.count()).select_from(AuditEvent).where(*conditions)) or 0


def find_events(
    session: Session, filters: AuditFilter, *, limit: int, offset: int = 0, newest_first: bool = False
) -> AuditPage:
    """A page of matching events with the total, as the CLI and the HTTP API show them."""
    events = list_events(session, filters, limit=limit, offset=offset, newest_first=newest_first)
    return AuditPage(events=events, total=count_events(session, filters), offset=offset)
