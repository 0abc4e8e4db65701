"""The database connection dropped in the middle of a stage's transaction (PostgreSQL: the server ends the
backend, as on a restart or failover): a clear error, nothing half-written, and the retried stage works."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from storage.audit import record_event, verify_chain
from storage.database import DatabaseError, get_engine, migrate, session_scope
from storage.repository import record_stage
from storage.schema import AuditEvent, StageResult, utcnow


def _write_stage(session: Session, run_id: str) -> None:
    """What tasks.records.record_stage_done writes: the stage row and its audit event."""
    record_stage(
        session,
        run_id=run_id,
        attempt=1,
        stage="detect",
        status="completed",
        started_at=utcnow(),
        finished_at=utcnow(),
        details={"boxes": 3},
    )
    record_event(
        session, actor="pipeline", action="analyzed", object_type="run", object_id=run_id, run_id=run_id
    )


@pytest.fixture
def pg_engine(pg_database_url: str) -> Iterator[Engine]:
    """A migrated engine on a schema of its own in the session's PostgreSQL database."""
    url = f"{pg_database_url}?options=-csearch_path%3Ddrop_{secrets.token_hex(6)}"
    migrate(url)
    yield get_engine(url)
    get_engine(url).dispose()


def test_connection_killed_mid_stage_write(pg_engine: Engine, make_run, pg_database_url: str) -> None:
    with session_scope(pg_engine) as session:
        _, run, _ = make_run(session)
    killer = get_engine(pg_database_url)

    with pytest.raises(DatabaseError) as info, session_scope(pg_engine) as session:
        _write_stage(session, run.id)  # written, locks held, not committed
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with killer.connect() as other:
            assert other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
        session.execute(select(func.count()).select_from(StageResult))  # the next statement finds it gone
    message = str(info.value)
    assert message.startswith("lost the connection to database postgresql+psycopg://")
    assert "terminating connection due to administrator command" in message
    assert "the transaction was rolled back, nothing of it was written" in message

    with session_scope(pg_engine) as session:  # the pool hands out a fresh connection
        assert session.scalar(select(func.count()).select_from(StageResult)) == 0
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 0
    with session_scope(pg_engine) as session:  # the retried stage
        _write_stage(session, run.id)
    with session_scope(pg_engine) as session:
        assert session.scalar(select(func.count()).select_from(StageResult)) == 1
        assert [e.action for e in session.scalars(select(AuditEvent))] == ["analyzed"]
        assert verify_chain(session) == []
