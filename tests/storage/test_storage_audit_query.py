"""Audit queries (every filter, pages, totals), run_id in the hash chain, and migration 0002's backfill."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, insert, select, text

from storage.audit import GENESIS_HASH, compute_hash, record_event, verify_chain
from storage.audit_query import AuditFilter, count_events, find_events, list_events
from storage.database import MIGRATIONS_DIR, get_engine, migrate, session_scope
from storage.repository import finish_run, save_results
from storage.schema import AuditEvent, Run, RunModel, Study


@dataclass
class Trail:
    """Ids of the seeded events by what they are about."""

    run_a: str
    run_b: str
    a_events: list[int]
    b_events: list[int]
    other: int


def _finding(label: str) -> dict[str, Any]:
    return {"label": label, "score": 0.9, "x1": 1, "y1": 2, "x2": 3, "y2": 4, "area_px": 4.0}


@pytest.fixture
def trail(engine: Engine, make_run) -> Trail:
    """Study A (patient PAT-001, ACC-77, model 1.2.0, finding nodule) and study B (PAT-002, ACC-88,
    model 2.0.0, finding crack), three events each, plus one event about no study."""
    ids: dict[str, list[int]] = {"a": [], "b": []}
    runs = {}
    for name, uid, patient, accession, version, label in (
        ("a", "1.2.3.1", "PAT-001", "ACC-77", "1.2.0", "nodule"),
        ("b", "1.2.3.2", "PAT-002", "ACC-88", "2.0.0", "crack"),
    ):
        with session_scope(engine) as session:
            study, run, _ = make_run(
                session,
                study_uid=uid,
                key=f"key-{name}",
                models=[
                    {"kind": "detector", "name": "yolo", "version": version, "sha256": "ab" * 32},
                    {"kind": "segmenter", "name": "unet", "version": "seg-" + version, "sha256": "cd" * 32},
                ],
            )
            study.patient_id, study.accession_number = patient, accession
            save_results(
                session, run_id=run.id, attempt=1, findings=[_finding(label)], report=None, artifacts=[]
            )
            finish_run(session, run_id=run.id, attempt=1, status="completed")
            runs[name] = run.id
        for action, actor in (("ingested", "argus:alice"), ("analyzed", "pipeline"), ("viewed", "token:ci")):
            with session_scope(engine) as session:
                event = record_event(
                    session,
                    actor=actor,
                    action=action,
                    object_type="run",
                    object_id=runs[name],
                    study_uid=uid,
                    run_id=runs[name],
                )
                ids[name].append(event.id)
    with session_scope(engine) as session:
        other = record_event(
            session, actor="argus:alice", action="token_created", object_type="token", object_id="t"
        )
    return Trail(runs["a"], runs["b"], ids["a"], ids["b"], other.id)


def _ids(engine: Engine, **filters: Any) -> list[int]:
    with session_scope(engine) as session:
        found = [e.id for e in list_events(session, AuditFilter(**filters))]
        assert count_events(session, AuditFilter(**filters)) == len(found)
        return found


def test_each_filter_selects_exactly_its_events(engine: Engine, trail: Trail) -> None:
    a, b = trail.a_events, trail.b_events
    assert _ids(engine) == [*a, *b, trail.other]
    assert _ids(engine, study_uid="1.2.3.2") == b
    assert _ids(engine, patient_id="PAT-001") == a
    assert _ids(engine, accession_number="ACC-88") == b
    assert _ids(engine, action="viewed") == [a[2], b[2]]
    assert _ids(engine, actor="argus:alice") == [a[0], b[0], trail.other]
    assert _ids(engine, model_version="2.0.0") == b
    assert _ids(engine, model_version="seg-1.2.0") == a  # any model of the run
    assert _ids(engine, label="nodule") == a
    assert _ids(engine, label="crack", action="analyzed") == [b[1]]
    assert _ids(engine, patient_id="PAT-001", label="crack") == []
    assert _ids(engine, patient_id="NOBODY") == []
    assert _ids(engine, model_version="9.9") == []


def test_time_range_is_inclusive_exclusive(engine: Engine, trail: Trail) -> None:
    with session_scope(engine) as session:
        times = {e.id: e.time for e in list_events(session)}
    middle = times[trail.b_events[0]]
    assert _ids(engine, since=middle) == [*trail.b_events, trail.other]
    assert _ids(engine, until=middle) == trail.a_events
    assert _ids(engine, since=times[trail.a_events[1]], until=times[trail.a_events[2]]) == [trail.a_events[1]]
    # A time without an offset is UTC.
    naive = middle.astimezone(UTC).replace(tzinfo=None)
    assert _ids(engine, since=naive) == [*trail.b_events, trail.other]


def test_bad_time_range_is_refused() -> None:
    with pytest.raises(ValueError, match=r"since \(2026-01-02T00:00:00\+00:00\) must be before until"):
        AuditFilter(since=datetime(2026, 1, 2, tzinfo=UTC), until=datetime(2026, 1, 1, tzinfo=UTC))


def test_pages_and_totals(engine: Engine, trail: Trail) -> None:
    with session_scope(engine) as session:
        page = find_events(session, AuditFilter(actor="argus:alice"), limit=2, offset=1)
        assert ([e.id for e in page.events], page.total, page.offset) == (
            [trail.b_events[0], trail.other],
            3,
            1,
        )
        newest = find_events(session, AuditFilter(), limit=2, newest_first=True)
        assert [e.id for e in newest.events] == [trail.other, trail.b_events[2]]
        assert newest.total == 7


def test_described_filters_are_json_ready() -> None:
    since = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    assert AuditFilter(label="nodule", since=since).described() == {
        "since": "2026-11-25T08:00:00+00:00",
        "label": "nodule",
    }


def test_run_id_is_covered_by_the_hash(engine: Engine, trail: Trail) -> None:
    edited = trail.a_events[1]
    with session_scope(engine) as session:
        session.execute(
            text("UPDATE audit_events SET run_id = :r WHERE id = :id"), {"r": trail.run_b, "id": edited}
        )
    with session_scope(engine) as session:
        assert verify_chain(session) == [
            f"event {edited}: content was edited (stored hash does not match its content)"
        ]


def test_events_without_run_id_hash_as_before_0002(engine: Engine, trail: Trail) -> None:
    with session_scope(engine) as session:
        event = session.get(AuditEvent, trail.other)
        assert event is not None and event.run_id is None
        # The content of a pre-0002 event (no run_id key at all) gives the stored hash.
        content = {
            "prev_hash": event.prev_hash,
            "time": event.time,
            "actor": event.actor,
            "host": event.host,
            "action": event.action,
            "object_type": event.object_type,
            "object_id": event.object_id,
            "study_uid": event.study_uid,
            "outcome": event.outcome,
            "details": event.details,
        }
        assert compute_hash(**content) == event.hash
        assert compute_hash(**content, run_id="x") != event.hash


def test_migration_0002_backfills_run_models_and_keeps_the_chain(db_url: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    engine = get_engine(db_url)
    migrate(db_url)  # creates the PostgreSQL schema; then go back to the released 0001 and fill it
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "time": datetime(2026, 1, 1, tzinfo=UTC),
        "actor": "old",
        "host": "h",
        "action": "analyzed",
        "object_type": "run",
        "object_id": "run-old",
        "study_uid": "9.9",
        "outcome": "success",
        "details": {},
    }
    with engine.begin() as connection:
        # Core inserts naming only 0001's columns (the ORM classes would also write 0002's run_id).
        connection.execute(
            insert(Study.__table__).values(study_uid="9.9", kind="dicom", domain="medical", created_at=now)
        )
        connection.execute(
            insert(Run.__table__).values(
                id="run-old",
                study_id=connection.execute(select(Study.id)).scalar_one(),
                idempotency_key="k",
                status="completed",
                attempt=1,
                started_at=now,
                heartbeat_at=now,
                models=[{"kind": "detector", "name": "yolo", "version": "0.9", "sha256": "ab" * 32}],
                parameters={},
                code_version="v",
            )
        )
        digest = compute_hash(prev_hash=GENESIS_HASH, **fields)
        connection.execute(insert(AuditEvent.__table__).values(**fields, prev_hash=GENESIS_HASH, hash=digest))
    migrate(db_url)
    with session_scope(engine) as session:
        rows = session.execute(select(RunModel.run_id, RunModel.kind, RunModel.version)).all()
        assert [tuple(r) for r in rows] == [("run-old", "detector", "0.9")]
        assert verify_chain(session) == []
        assert [e.object_id for e in list_events(session, AuditFilter(study_uid="9.9"))] == ["run-old"]
        # Pre-0002 events have no run_id, so run-based filters do not find them (documented).
        assert list_events(session, AuditFilter(model_version="0.9")) == []
