"""Append-only, hash-chained audit trail (who did what to which study, when, from where).

Every event stores the hash of the event before it, and its own hash covers that link and all of its
content. Editing an event, or deleting or reordering events anywhere but at the very end, therefore
breaks the chain, and ``verify_chain`` names the event where it breaks. Removing the newest events
cannot be detected from the table alone; export the latest hash elsewhere if that matters.
"""

from __future__ import annotations

import hashlib
import json
import socket
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from storage.schema import MAX_KEY_LENGTH, OUTCOMES, AuditEvent, utcnow

__all__ = ["GENESIS_HASH", "compute_hash", "record_event", "verify_chain"]

GENESIS_HASH = "0" * 64
# Arbitrary constant ("ArgusAud") naming the PostgreSQL advisory lock that serializes appends.
_PG_AUDIT_LOCK = 0x4172677573417564
# session.info entry: (transaction scope, hash of the event this session appended last in it).
_HEAD_KEY = "argus.audit.head"


def _canonical_details(details: dict[str, Any] | None) -> dict[str, Any]:
    # Round-trip through JSON so the hashed value is exactly what the JSON column gives back later
    # (tuples become lists, int keys become strings); NaN is refused because PostgreSQL's JSON refuses it.
    normalized: dict[str, Any] = json.loads(json.dumps(details or {}, allow_nan=False))
    return normalized


def compute_hash(
    *,
    prev_hash: str,
    time: datetime,
    actor: str,
    host: str,
    action: str,
    object_type: str,
    object_id: str,
    study_uid: str | None,
    outcome: str,
    details: dict[str, Any],
    run_id: str | None = None,
) -> str:
    """sha256 (hex) over a canonical JSON encoding of an event's content and the previous hash."""
    content = {
        "prev_hash": prev_hash,
        "time": time.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "host": host,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "study_uid": study_uid,
        "outcome": outcome,
        "details": details,
    }
    if run_id is not None:
        # Only when set: events written before run_id existed (migration 0002) keep their original hashes.
        content["run_id"] = run_id
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _lock_chain(session: Session) -> None:
    """Hold the chain's append lock until the caller's transaction ends, so appends never fork."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        # Under READ COMMITTED (the default) the next SELECT then sees the head committed by the
        # previous holder. Keep audit-writing transactions short: appends wait for each other.
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_AUDIT_LOCK})
    elif dialect == "sqlite":
        # Engines from storage.database already BEGIN IMMEDIATE. For any other engine, a write statement
        # (this one changes nothing) takes SQLite's single write lock before the head is read.
        session.execute(text("UPDATE audit_events SET id = id WHERE 0 = 1"))
    else:
        raise NotImplementedError(f"audit chain locking is not implemented for {dialect}")


def _transaction_scope(session: Session) -> tuple[object, object]:
    return session.get_transaction(), session.get_nested_transaction()


def _chain_head(session: Session) -> str:
    """Hash of the newest event, read under the chain lock once per transaction.

    Later appends in the same (sub)transaction already hold the lock, so the head is the event this
    session appended last: reusing it saves two round trips per event. Any other scope (a new
    transaction, a savepoint begun, released or rolled back since) reads the head again.
    """
    cached = session.info.get(_HEAD_KEY)
    scope = _transaction_scope(session)
    if cached is not None and cached[0] == scope:
        return str(cached[1])
    _lock_chain(session)
    head = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    return head or GENESIS_HASH


def record_event(
    session: Session,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    outcome: str = "success",
    study_uid: str | None = None,
    run_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain in the caller's transaction and return it (flushed, with its id).

    ``details`` must be JSON-serializable and ``object_id`` (a key, path or id) at most
    ``storage.schema.MAX_KEY_LENGTH`` characters. ``run_id`` names the run the event is about, so queries by
    model version or finding label find it. The event is only durable once the caller commits; rolling
    back removes it without damaging the chain.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    object_id = str(object_id)
    if len(object_id) > MAX_KEY_LENGTH:
        # SQLite would store it, PostgreSQL would fail the whole transaction: refuse it alike on both.
        raise ValueError(
            f"audit object_id is {len(object_id)} characters long, the limit is {MAX_KEY_LENGTH}: "
            f"{object_id[:80]}..."
        )
    clean_details = _canonical_details(details)
    host = socket.gethostname()
    prev_hash = _chain_head(session)
    fields: dict[str, Any] = {
        "time": utcnow(),
        "actor": actor,
        "host": host,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "study_uid": study_uid,
        "run_id": run_id,
        "outcome": outcome,
        "details": clean_details,
        "prev_hash": prev_hash,
    }
    event = AuditEvent(**fields, hash=compute_hash(**fields))
    session.add(event)
    session.flush()
    session.info[_HEAD_KEY] = (_transaction_scope(session), event.hash)
    return event


def verify_chain(session: Session) -> list[str]:
    """Check every event's hash and link; return one message per problem (empty list: chain intact)."""
    # Plain column rows, not ORM objects: objects cached in this session's identity map could hide an edit
    # made by someone else.
    rows = session.execute(
        select(
            AuditEvent.id,
            AuditEvent.time,
            AuditEvent.actor,
            AuditEvent.host,
            AuditEvent.action,
            AuditEvent.object_type,
            AuditEvent.object_id,
            AuditEvent.study_uid,
            AuditEvent.run_id,
            AuditEvent.outcome,
            AuditEvent.details,
            AuditEvent.prev_hash,
            AuditEvent.hash,
        )
        .order_by(AuditEvent.id)
        .execution_options(yield_per=1000)
    )
    problems: list[str] = []
    expected_prev = GENESIS_HASH
    previous_id: int | None = None
    for row in rows:
        actual = compute_hash(
            prev_hash=row.prev_hash,
            time=row.time,
            actor=row.actor,
            host=row.host,
            action=row.action,
            object_type=row.object_type,
            object_id=row.object_id,
            study_uid=row.study_uid,
            run_id=row.run_id,
            outcome=row.outcome,
            details=row.details,
        )
        if actual != row.hash:
            problems.append(f"event {row.id}: content was edited (stored hash does not match its content)")
        if row.prev_hash != expected_prev:
            if previous_id is None:
                problems.append(
                    f"event {row.id}: previous hash does not match the start of the chain "
                    "— an earlier row was deleted"
                )
            else:
                problems.append(
                    f"event {row.id}: previous hash does not match event {previous_id} "
                    "— a row was deleted or reordered"
                )
        expected_prev = row.hash
        previous_id = row.id
    return problems
