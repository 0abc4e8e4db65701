"""Hash-chained audit trail: linking, tamper detection, concurrent appends, queries."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.orm import Session

from storage.audit import GENESIS_HASH, compute_hash, record_event, verify_chain
from storage.audit_query import AuditFilter, count_events, list_events
from storage.database import get_engine, migrate, session_scope
from storage.schema import AuditEvent


def _record(engine: Engine, count: int, *, study_uid: str | None = "1.2.3") -> list[int]:
    ids = []
    for number in range(count):
        with session_scope(engine) as session:
            event = record_event(
                session,
                actor="alice" if number % 2 == 0 else "pipeline",
                action="viewed" if number % 2 == 0 else "analyzed",
                object_type="study",
                object_id=f"obj-{number}",
                study_uid=study_uid,
                details={"n": number, "boxes": (1, 2), "note": "Ünïcode ✓"},
            )
            ids.append(event.id)
    return ids


def test_events_are_chained_and_verify(engine: Engine) -> None:
    before = datetime.now(UTC)
    ids = _record(engine, 5)

    with session_scope(engine) as session:
        events = list_events(session)
        assert [e.id for e in events] == ids
        assert events[0].prev_hash == GENESIS_HASH
        assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
        first = events[0]
        assert (first.host, first.outcome, first.details) == (
            socket.gethostname(),
            "success",
            {"n": 0, "boxes": [1, 2], "note": "Ünïcode ✓"},  # stored as JSON gives it back
        )
        assert first.time.tzinfo == UTC
        assert before - timedelta(seconds=1) <= first.time <= datetime.now(UTC)
        assert first.hash == compute_hash(
            prev_hash=GENESIS_HASH,
            time=first.time,
            actor="alice",
            host=socket.gethostname(),
            action="viewed",
            object_type="study",
            object_id="obj-0",
            study_uid="1.2.3",
            outcome="success",
            details={"n": 0, "boxes": [1, 2], "note": "Ünïcode ✓"},
        )
        assert verify_chain(session) == []


def test_edited_row_is_named(engine: Engine) -> None:
    ids = _record(engine, 4)
    with session_scope(engine) as session:
        session.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE id = :id"), {"id": ids[2]})
    with session_scope(engine) as session:
        assert verify_chain(session) == [
            f"event {ids[2]}: content was edited (stored hash does not match its content)"
        ]


def test_edit_with_recomputed_hash_breaks_the_next_link(engine: Engine) -> None:
    ids = _record(engine, 4)
    with session_scope(engine) as session:
        event = session.get(AuditEvent, ids[1])
        assert event is not None
        forged = compute_hash(
            prev_hash=event.prev_hash,
            time=event.time,
            actor="mallory",
            host=event.host,
            action=event.action,
            object_type=event.object_type,
            object_id=event.object_id,
            study_uid=event.study_uid,
            outcome=event.outcome,
            details=event.details,
        )
        session.execute(
            text("UPDATE audit_events SET actor = 'mallory', hash = :h WHERE id = :id"),
            {"h": forged, "id": ids[1]},
        )
    with session_scope(engine) as session:
        assert verify_chain(session) == [
            f"event {ids[2]}: previous hash does not match event {ids[1]} — a row was deleted or reordered"
        ]


def test_deleted_rows_are_named(engine: Engine) -> None:
    ids = _record(engine, 5)
    with session_scope(engine) as session:
        session.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": ids[2]})
    with session_scope(engine) as session:
        assert verify_chain(session) == [
            f"event {ids[3]}: previous hash does not match event {ids[1]} — a row was deleted or reordered"
        ]
        session.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": ids[0]})
        assert verify_chain(session) == [
            f"event {ids[1]}: previous hash does not match the start of the chain"
            " — an earlier row was deleted",
            f"event {ids[3]}: previous hash does not match event {ids[1]} — a row was deleted or reordered",
        ]


def _append_concurrently(engine: Engine, threads_count: int, per_thread: int) -> None:
    start = threading.Barrier(threads_count)
    errors: list[BaseException] = []

    def append(worker: int) -> None:
        try:
            start.wait()
            for number in range(per_thread):
                with Session(engine) as session:
                    session.scalar(select(func.count()).select_from(AuditEvent))  # unrelated read first
                    record_event(
                        session,
                        actor=f"worker-{worker}",
                        action="stored",
                        object_type="artifact",
                        object_id=f"{worker}-{number}",
                    )
                    session.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(w,)) for w in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []


def _assert_linear_chain(engine: Engine, total: int) -> None:
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == total
        # A fork would show as two events sharing one predecessor.
        assert session.scalar(select(func.count(AuditEvent.prev_hash.distinct()))) == total
        assert verify_chain(session) == []


def test_concurrent_appends_never_fork_the_chain(engine: Engine) -> None:
    _append_concurrently(engine, threads_count=4, per_thread=15)
    _assert_linear_chain(engine, total=60)
    with session_scope(engine) as session:
        assert {e.actor for e in list_events(session)} == {f"worker-{w}" for w in range(4)}


def test_concurrent_appends_on_a_plain_sqlite_engine(tmp_path: Path) -> None:
    # An engine not made by storage.database (sqlite3's default deferred transactions, no BEGIN IMMEDIATE):
    # record_event must still take the write lock before reading the chain head.
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    migrate(url)
    get_engine(url).dispose()
    plain = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
    try:
        _append_concurrently(plain, threads_count=4, per_thread=10)
        _assert_linear_chain(plain, total=40)
    finally:
        plain.dispose()


def _append(session: Session, object_id: str) -> AuditEvent:
    return record_event(
        session, actor="pipeline", action="stored", object_type="artifact", object_id=object_id
    )


def test_appends_in_one_transaction_and_savepoints_stay_linear(engine: Engine) -> None:
    # Within a transaction the head is taken from the session's last append, not re-read: savepoints that
    # are released or rolled back, and a rolled-back transaction, must not make it point at a lost event.
    with session_scope(engine) as session:
        first = _append(session, "a")
        with session.begin_nested():
            inner = _append(session, "b")
        nested = session.begin_nested()
        _append(session, "lost-1")
        nested.rollback()
        after = _append(session, "c")
        assert inner.prev_hash == first.hash
        assert after.prev_hash == inner.hash
    session = Session(engine)
    try:
        _append(session, "lost-2")
        session.rollback()
        again = _append(session, "d")
        session.commit()
        assert again.prev_hash == after.hash
    finally:
        session.close()
    _assert_linear_chain(engine, total=4)


def test_list_events_filters_and_pages(engine: Engine) -> None:
    _record(engine, 6, study_uid="1.2.3")
    with session_scope(engine) as session:
        record_event(
            session,
            actor="bob",
            action="rejected",
            object_type="input",
            object_id="upload-9",
            outcome="failure",
            study_uid="9.9.9",
            details={"reason": "not DICOM"},
        )

    with session_scope(engine) as session:
        assert [e.object_id for e in list_events(session, AuditFilter(study_uid="9.9.9"))] == ["upload-9"]
        assert [
            e.object_id for e in list_events(session, AuditFilter(action="viewed", study_uid="1.2.3"))
        ] == [
            "obj-0",
            "obj-2",
            "obj-4",
        ]
        assert [
            e.object_id for e in list_events(session, AuditFilter(actor="pipeline"), limit=2, offset=1)
        ] == [
            "obj-3",
            "obj-5",
        ]
        [rejected] = list_events(session, AuditFilter(actor="bob"))
        assert (rejected.outcome, rejected.details) == ("failure", {"reason": "not DICOM"})
        assert verify_chain(session) == []

        # Newest first, with the same filters and paging; counts give the total behind the pages.
        assert [e.object_id for e in list_events(session, newest_first=True, limit=3)] == [
            "upload-9",
            "obj-5",
            "obj-4",
        ]
        assert [
            e.object_id
            for e in list_events(session, AuditFilter(actor="pipeline"), newest_first=True, offset=1)
        ] == [
            "obj-3",
            "obj-1",
        ]
        assert count_events(session) == 7
        assert count_events(session, AuditFilter(study_uid="1.2.3")) == 6
        assert count_events(session, AuditFilter(study_uid="1.2.3", action="viewed", actor="alice")) == 3
        assert count_events(session, AuditFilter(action="viewed", actor="bob")) == 0
