"""Engines, migrations and sessions on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from storage.audit import record_event
from storage.database import DatabaseError, get_engine, migrate, normalize_url, session_scope
from storage.repository import upsert_study
from storage.schema import AuditEvent, Base, Finding, Run, Study

TABLES = {
    "studies",
    "runs",
    "run_models",
    "stage_results",
    "findings",
    "reports",
    "artifacts",
    "audit_events",
    "api_tokens",
}


def _diffs(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))


def test_migrated_schema_matches_the_orm(db_url: str) -> None:
    migrate(db_url)
    migrate(db_url)  # a second run finds the schema at head and does nothing
    engine = get_engine(db_url)

    assert _diffs(engine) == []
    inspector = inspect(engine)
    assert set(inspector.get_table_names()) == TABLES | {"alembic_version"}
    # Alembic does not compare CHECK constraints; make sure they exist under their conventional names.
    assert {c["name"] for c in inspector.get_check_constraints("studies")} == {
        "ck_studies_kind",
        "ck_studies_domain",
    }
    assert {c["name"] for c in inspector.get_check_constraints("runs")} == {
        "ck_runs_status",
        "ck_runs_attempt",
    }
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0003"


def test_sqlite_connections_enforce_foreign_keys_and_use_wal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a' / 'b' / 'argus.db'}"
    migrate(url)
    engine = get_engine(url)
    try:
        assert (tmp_path / "a" / "b" / "argus.db").is_file()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 30000
        with pytest.raises(IntegrityError, match="FOREIGN KEY"), session_scope(engine) as session:
            session.add(
                Finding(
                    run_id="no-such-run", index=0, label="x", score=1.0, x1=0, y1=0, x2=1, y2=1, area_px=1.0
                )
            )
    finally:
        engine.dispose()


def test_postgres_search_path_option_puts_tables_in_that_schema(pg_database_url: str) -> None:
    schema = f"custom_{secrets.token_hex(4)}"
    url = f"{pg_database_url}?options=-csearch_path%3D{schema}"
    migrate(url)  # the schema does not exist yet: migrate creates it
    engine = get_engine(url)
    try:
        inspector = inspect(engine)
        assert inspector.default_schema_name == schema
        assert set(inspector.get_table_names(schema=schema)) == TABLES | {"alembic_version"}
        assert _diffs(engine) == []
    finally:
        engine.dispose()


def test_plain_postgresql_url_uses_psycopg(pg_database_url: str) -> None:
    plain = pg_database_url.replace("postgresql+psycopg://", "postgresql://")
    assert normalize_url(plain).drivername == "postgresql+psycopg"
    migrate(plain)
    engine = get_engine(plain)
    try:
        assert engine.dialect.driver == "psycopg"
        assert get_engine(plain) is engine  # one engine per URL
        assert _diffs(engine) == []
    finally:
        engine.dispose()


def test_unsupported_database_url_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"unsupported database URL 'mysql://u:\*\*\*@h/db'"):
        get_engine("mysql://u:secret@h/db")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_unreachable_database_fails_fast_with_a_clear_error(backend: str, tmp_path: Path) -> None:
    if backend == "sqlite":
        (tmp_path / "a-file").write_text("not a directory")
        url = f"sqlite:///{tmp_path / 'a-file' / 'argus.db'}"
        expected = r"cannot create the directory of database sqlite:///.*a-file/argus\.db"
    else:
        url = "postgresql+psycopg://postgres:s3cret@127.0.0.1:1/x"
        expected = r"cannot connect to database postgresql\+psycopg://postgres:\*\*\*@127\.0\.0\.1:1/x"

    start = time.monotonic()
    with pytest.raises(DatabaseError, match=expected) as info:
        migrate(url)
    assert "s3cret" not in str(info.value)
    if backend == "postgresql":
        with pytest.raises(DatabaseError, match=expected), session_scope(get_engine(url)):
            pass
    assert time.monotonic() - start < 10


def test_session_scope_rolls_back_the_whole_unit_of_work(engine: Engine, make_run) -> None:
    with pytest.raises(RuntimeError, match="stage crashed"), session_scope(engine) as session:
        _, run, _ = make_run(session)
        record_event(session, actor="pipeline", action="run_started", object_type="run", object_id=run.id)
        session.flush()
        assert session.scalar(select(func.count()).select_from(Run)) == 1  # written, not yet committed
        raise RuntimeError("stage crashed")

    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Study)) == 0
        assert session.scalar(select(func.count()).select_from(Run)) == 0
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 0


def test_session_scope_commits_and_objects_stay_readable(engine: Engine) -> None:
    with session_scope(engine) as session:
        study = upsert_study(
            session,
            study_uid="2.25.1",
            kind="image",
            domain="industrial",
            modality=None,
            patient_id=None,
            accession_number=None,
            description="weld seam batch 7",
        )
    # Readable after the session closed (expire_on_commit=False) and visible to a new session.
    assert study.description == "weld seam batch 7"
    assert study.created_at.tzinfo is not None
    with session_scope(engine) as session:
        again = session.scalars(select(Study).where(Study.study_uid == "2.25.1")).one()
        assert (again.id, again.kind, again.domain) == (study.id, "image", "industrial")
        assert again.created_at == study.created_at
