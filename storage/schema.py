"""ORM models of the Argus database, portable between SQLite and PostgreSQL.

The migrations (``migrations/versions/``) create exactly these tables; a test compares the two, so any
change here needs a new migration.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "API_ROLES",
    "MAX_KEY_LENGTH",
    "NAMING_CONVENTION",
    "ApiToken",
    "Artifact",
    "AuditEvent",
    "Base",
    "Finding",
    "Report",
    "Run",
    "RunModel",
    "StageResult",
    "Study",
    "UTCDateTime",
    "utcnow",
]

# Explicit constraint names: SQLite cannot alter a constraint it cannot name, and batch migrations
# need stable names to drop or recreate constraints later.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

RUN_STATUSES = ("running", "completed", "failed")
STUDY_KINDS = ("dicom", "image")
STUDY_DOMAINS = ("medical", "industrial")
OUTCOMES = ("success", "failure")
# viewer: studies and results; auditor: also the audit trail; admin: everything.
API_ROLES = ("viewer", "auditor", "admin")
# Longest object-store key or file path a column takes (artifact keys, mask keys, audit object ids):
# keys like ``studies/<64-char UID>/runs/<uuid>/overlays/...`` and absolute paths of rejected inputs
# exceed 255 characters. PostgreSQL's btree indexes accept values up to about 2.7 kB, enough for this.
MAX_KEY_LENGTH = 1024


def utcnow() -> datetime:
    """The current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that always stores UTC and always returns aware UTC datetimes.

    SQLite has no time zone type (SQLAlchemy silently drops the offset), and PostgreSQL returns values
    in the session time zone; normalising both ways makes values, comparisons and audit hashes identical
    on both backends.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base sharing one ``MetaData`` with the naming convention above."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute as configuration
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[dict[str, Any]]: JSON(),
    }


class Study(Base):
    """One DICOM study or one batch of plain images analysed together."""

    __tablename__ = "studies"
    __table_args__ = (
        CheckConstraint(_in("kind", STUDY_KINDS), name="kind"),
        CheckConstraint(_in("domain", STUDY_DOMAINS), name="domain"),
        Index(None, "accession_number"),  # audit queries by accession number
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    domain: Mapped[str] = mapped_column(String(16))
    modality: Mapped[str | None] = mapped_column(String(16))
    patient_id: Mapped[str | None] = mapped_column(String(64), index=True)
    accession_number: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    runs: Mapped[list[Run]] = relationship(back_populates="study")


class Run(Base):
    """One analysis of a study; ``idempotency_key`` makes re-submitting the same analysis a no-op.

    A run is executed by numbered attempts: ``attempt`` is the one currently allowed to write, and
    ``heartbeat_at`` its last sign of life (see ``storage.repository.begin_run`` and ``touch_run``).
    """

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(_in("status", RUN_STATUSES), name="status"),
        CheckConstraint("attempt >= 1", name="attempt"),
        Index(None, "study_id", "started_at"),
        Index(None, "started_at"),
        Index(None, "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="running")
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    # [{"kind", "name", "version", "sha256"}, ...]: exactly which weights produced the results.
    models: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    code_version: Mapped[str] = mapped_column(String(64))
    summary: Mapped[dict[str, Any] | None]

    study: Mapped[Study] = relationship(back_populates="runs")
    # The children belong to the run: deleting (or resetting) a run takes them all with it. passive_deletes
    # lets the database's ON DELETE CASCADE do the work instead of loading every row first.
    stage_results: Mapped[list[StageResult]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True, order_by="StageResult.id"
    )
    findings: Mapped[list[Finding]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True, order_by="Finding.index"
    )
    report: Mapped[Report | None] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True
    )
    artifacts: Mapped[list[Artifact]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True, order_by="Artifact.id"
    )
    model_rows: Mapped[list[RunModel]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True, order_by="RunModel.kind"
    )


class RunModel(Base):
    """One model a run used: ``Run.models`` as indexed rows, so audit queries can filter by model version."""

    __tablename__ = "run_models"
    __table_args__ = (UniqueConstraint("run_id", "kind"), Index(None, "version"), Index(None, "name"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))

    run: Mapped[Run] = relationship(back_populates="model_rows")


class StageResult(Base):
    """Outcome and timing of one pipeline stage (ingest, detect, segment, report, ...) of a run."""

    __tablename__ = "stage_results"
    __table_args__ = (UniqueConstraint("run_id", "stage"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)

    run: Mapped[Run] = relationship(back_populates="stage_results")


class Finding(Base):
    """One detected object: box in pixel coordinates, optional DICOM location and mask.

    A lesion in a CT/MR volume is one row: the box encloses all its slices, which run from
    ``slice_first`` to ``slice_last`` (``slice_count`` slices of the series); ``slice_index``, the
    areas and ``mask_key`` are those of its largest section. Depth and volume are NULL where the
    series' geometry does not give them, and for 2-D findings.
    """

    __tablename__ = "findings"
    __table_args__ = (UniqueConstraint("run_id", "index"), Index(None, "label"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(128))
    score: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    series_uid: Mapped[str | None] = mapped_column(String(64))
    slice_index: Mapped[int | None] = mapped_column(Integer)
    sop_instance_uid: Mapped[str | None] = mapped_column(String(64))
    source_file: Mapped[str | None] = mapped_column(String(255))
    area_px: Mapped[float] = mapped_column(Float)
    area_mm2: Mapped[float | None] = mapped_column(Float)
    mask_key: Mapped[str | None] = mapped_column(String(MAX_KEY_LENGTH))
    width_mm: Mapped[float | None] = mapped_column(Float)
    height_mm: Mapped[float | None] = mapped_column(Float)
    slice_first: Mapped[int | None] = mapped_column(Integer)
    slice_last: Mapped[int | None] = mapped_column(Integer)
    slice_count: Mapped[int | None] = mapped_column(Integer)
    depth_mm: Mapped[float | None] = mapped_column(Float)
    volume_mm3: Mapped[float | None] = mapped_column(Float)

    run: Mapped[Run] = relationship(back_populates="findings")


class Report(Base):
    """The written report of a run (one per run)."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), unique=True)
    reporter: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    impression: Mapped[str] = mapped_column(Text)
    structured: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    run: Mapped[Run] = relationship(back_populates="report")


class Artifact(Base):
    """A file a run read or produced, stored in the object store under ``key``."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("run_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(128))

    run: Mapped[Run] = relationship(back_populates="artifacts")


class AuditEvent(Base):
    """One entry of the append-only, hash-chained audit trail (see ``storage.audit``)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        CheckConstraint(_in("outcome", OUTCOMES), name="outcome"),
        # (column, id): a filtered page in chain order is a range scan of one index, and a filter that
        # matches nothing reads only that column's entries instead of walking the whole table by id.
        Index(None, "study_uid", "id"),
        Index(None, "action", "id"),
        Index(None, "actor", "id"),
        Index(None, "run_id", "id"),
        Index(None, "object_type", "object_id"),
        Index(None, "time"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(128))
    host: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))
    study_uid: Mapped[str | None] = mapped_column(String(64))
    # The run an event is about (no foreign key: events outlive purged runs). Ties events to the run's
    # models and findings for audit queries; covered by the hash when set.
    run_id: Mapped[str | None] = mapped_column(String(36))
    outcome: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class ApiToken(Base):
    """An HTTP API token: only the sha256 of the secret is stored; ``name`` is the audit trail's actor."""

    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint(_in("role", API_ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Unique for ever (also after revocation), so an actor name in the audit trail means one token.
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    revoked_at: Mapped[datetime | None]
