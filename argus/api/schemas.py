"""Typed query parameters and responses of the HTTP API (they also make the OpenAPI document at /docs)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from storage.audit_query import AuditFilter

__all__ = [
    "AuditEventOut",
    "AuditPageOut",
    "AuditQuery",
    "StudyDetailOut",
    "StudyOut",
    "StudyPageOut",
    "StudyQuery",
]


class _Page(BaseModel):
    # Unknown parameters are refused (422) rather than ignored: a misspelt filter must not widen a query.
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=100, ge=1, le=1000, description="Page size.")
    offset: int = Field(default=0, ge=0, description="How many matches to skip.")


class StudyQuery(_Page):
    """Filters of ``GET /api/studies``."""

    patient: str | None = Field(default=None, max_length=64, description="Patient ID.")
    accession: str | None = Field(default=None, max_length=64, description="Accession number.")


class AuditQuery(_Page):
    """Filters of ``GET /api/audit`` (the same as ``argus audit``); all given filters must match."""

    study: str | None = Field(default=None, max_length=64, description="Study Instance UID.")
    patient: str | None = Field(default=None, max_length=64, description="Patient ID (via the study).")
    accession: str | None = Field(default=None, max_length=64, description="Accession number (via study).")
    since: datetime | None = Field(default=None, description="ISO-8601; from this time on (no offset: UTC).")
    until: datetime | None = Field(default=None, description="ISO-8601; before this time (no offset: UTC).")
    action: str | None = Field(default=None, max_length=32, description="e.g. ingested, analyzed, viewed.")
    actor: str | None = Field(default=None, max_length=128, description="e.g. argus:alice, token:ci.")
    model_version: str | None = Field(default=None, max_length=64, description="A run's model version.")
    label: str | None = Field(default=None, max_length=128, description="Label of a finding of the run.")
    newest: bool = Field(default=False, description="Newest first (default: oldest first, chain order).")

    @model_validator(mode="after")
    def _check_range(self) -> AuditQuery:
        self.to_filter()  # raises ValueError (422) for since >= until
        return self

    def to_filter(self) -> AuditFilter:
        """The storage-level filter."""
        return AuditFilter(
            patient_id=self.patient,
            study_uid=self.study,
            accession_number=self.accession,
            since=self.since,
            until=self.until,
            action=self.action,
            actor=self.actor,
            model_version=self.model_version,
            label=self.label,
        )


class AuditEventOut(BaseModel):
    """One audit event."""

    id: int
    time: str
    actor: str
    host: str
    action: str
    object_type: str
    object_id: str
    study_uid: str | None
    run_id: str | None
    outcome: str
    details: dict[str, Any]


class AuditPageOut(BaseModel):
    """A page of audit events and how many match in all."""

    total: int
    offset: int
    limit: int
    events: list[AuditEventOut]


class StudyOut(BaseModel):
    """A study's own fields."""

    study_uid: str
    kind: str
    domain: str
    modality: str | None
    patient_id: str | None
    accession_number: str | None
    description: str | None
    created_at: str | None


class StudyPageOut(BaseModel):
    """A page of studies, newest first."""

    total: int
    offset: int
    limit: int
    studies: list[StudyOut]


class StudyDetailOut(StudyOut):
    """A study with every run's findings, report and artifacts (as ``argus analyze --json``)."""

    runs: list[dict[str, Any]]
