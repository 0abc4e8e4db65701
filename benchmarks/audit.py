"""Audit trail on PostgreSQL: append rate and query latency with a million events.

A fresh database is created on the server of ``ARGUS_BENCH_POSTGRES_URL`` (default: the local
``postgresql://postgres@127.0.0.1:5432/test`` admin connection) and dropped afterwards. It is filled
with studies, runs, their models and findings, and a valid hash chain of events spread over a year,
then timed through the same functions the CLI and the HTTP API use.
"""

from __future__ import annotations

import os
import random
import secrets
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, insert, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from storage.audit import GENESIS_HASH, compute_hash, record_event, verify_chain
from storage.audit_query import AuditFilter, find_events, list_events
from storage.database import get_engine, migrate, session_scope
from storage.schema import AuditEvent, Finding, Run, RunModel, Study

ADMIN_URL = os.environ.get("ARGUS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
EVENTS = int(os.environ.get("ARGUS_BENCH_AUDIT_EVENTS", "1000000"))
EVENTS_PER_STUDY = 50
PATIENTS_PER_STUDY = 0.5  # two studies per patient on average
MODEL_VERSIONS = ("2026.01.10", "2026.04.02", "2026.07.15", "2026.11.25")
LABELS = ("lesion", "scratch", "dent", "crack")
ACTORS = ("argus:worker-1", "argus:worker-2", "api:pacs-viewer", "api:qa-auditor", "argus:root")
START = datetime(2025, 11, 25, tzinfo=UTC)
BATCH = 5000


@contextmanager
def _fresh_database() -> Iterator[str]:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"argus_bench_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        get_engine(url).dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _studies(n: int, rng: random.Random) -> list[dict[str, Any]]:
    patients = max(1, int(n * PATIENTS_PER_STUDY))
    return [
        {
            "study_uid": f"2.25.{1000 + i}",
            "kind": "dicom",
            "domain": "medical",
            "modality": "CT",
            "patient_id": f"PAT-{rng.randrange(patients):06d}",
            "accession_number": f"ACC-{i:07d}",
            "description": "CT chest",
            "created_at": START,
        }
        for i in range(n)
    ]


def _fill(url: str, n_events: int, rng: random.Random) -> tuple[int, float]:
    """Studies, runs, models, findings and ``n_events`` chained events; returns (studies, seconds)."""
    n_studies = max(1, n_events // EVENTS_PER_STUDY)
    engine = get_engine(url)
    started = time.perf_counter()
    with session_scope(engine) as session:
        session.execute(insert(Study), _studies(n_studies, rng))
        study_ids = {uid: sid for uid, sid in session.execute(select(Study.study_uid, Study.id))}
        runs, models, findings = [], [], []
        run_of: list[tuple[str, str]] = []  # (study UID, run id) of every study
        for uid, study_id in study_ids.items():
            run_id = str(uuid.UUID(int=rng.getrandbits(128)))
            runs.append(
                {
                    "id": run_id,
                    "study_id": study_id,
                    "idempotency_key": run_id.replace("-", "") + "0" * 32,
                    "status": "completed",
                    "attempt": 1,
                    "started_at": START,
                    "heartbeat_at": START,
                    "code_version": "0.1.0+bench",
                    "models": [],
                    "parameters": {},
                }
            )
            for kind in ("detector", "segmenter"):
                version = rng.choice(MODEL_VERSIONS)
                models.append(
                    {"run_id": run_id, "kind": kind, "name": kind, "version": version, "sha256": "0" * 64}
                )
            for index in range(rng.randrange(4)):
                findings.append(
                    {
                        "run_id": run_id,
                        "index": index + 1,
                        "label": rng.choice(LABELS),
                        "score": 0.9,
                        "x1": 1.0,
                        "y1": 1.0,
                        "x2": 9.0,
                        "y2": 9.0,
                        "area_px": 64.0,
                    }
                )
            run_of.append((uid, run_id))
        for table, rows in ((Run, runs), (RunModel, models), (Finding, findings)):
            for i in range(0, len(rows), BATCH):
                session.execute(insert(table), rows[i : i + BATCH])
    prev = GENESIS_HASH
    step = timedelta(days=365) / n_events
    pending: list[dict[str, Any]] = []
    actions = ("ingested", "analyzed", "stored", "stored", "stored", "viewed", "exported")
    for i in range(n_events):
        uid, run_id = run_of[rng.randrange(len(run_of))]
        fields: dict[str, Any] = {
            "time": START + step * i,
            "actor": rng.choice(ACTORS),
            "host": "bench-host",
            "action": rng.choice(actions),
            "object_type": "run",
            "object_id": str(run_id),
            "study_uid": uid,
            "run_id": str(run_id),
            "outcome": "success",
            "details": {"stage": "detect", "frames": 8},
            "prev_hash": prev,
        }
        prev = fields["hash"] = compute_hash(**fields)
        pending.append(fields)
        if len(pending) == BATCH or i == n_events - 1:
            with session_scope(engine) as session:
                session.execute(insert(AuditEvent), pending)
            pending = []
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    return n_studies, time.perf_counter() - started


def _append_rate(url: str, n: int, per_transaction: int) -> float:
    """Events/s through ``record_event``, committing every ``per_transaction`` events."""
    engine = get_engine(url)
    started = time.perf_counter()
    for _ in range(n // per_transaction):
        with session_scope(engine) as session:
            for _ in range(per_transaction):
                record_event(
                    session,
                    actor="argus:bench",
                    action="viewed",
                    object_type="study",
                    object_id="2.25.1000",
                    study_uid="2.25.1000",
                )
    return n / (time.perf_counter() - started)


def _latency_ms(
    url: str, make_filter: Callable[[random.Random], AuditFilter], rng: random.Random
) -> tuple[float, float]:
    """Median ms for the newest page of 100 alone and with the total count, over 15 filter values."""
    engine = get_engine(url)
    page, with_total = [], []
    for _ in range(15):
        filters = make_filter(rng)
        with Session(engine) as session:
            started = time.perf_counter()
            list_events(session, filters, limit=100, newest_first=True)
            page.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            find_events(session, filters, limit=100, newest_first=True)
            with_total.append((time.perf_counter() - started) * 1000)
    return statistics.median(page), statistics.median(with_total)


def _queries(n_studies: int) -> dict[str, Callable[[random.Random], AuditFilter]]:
    def day(rng: random.Random) -> datetime:
        return START + timedelta(days=rng.randrange(364))

    patients = max(1, int(n_studies * PATIENTS_PER_STUDY))
    return {
        "no filter (newest page)": lambda rng: AuditFilter(),
        "patient id": lambda rng: AuditFilter(patient_id=f"PAT-{rng.randrange(patients):06d}"),
        "study UID": lambda rng: AuditFilter(study_uid=f"2.25.{1000 + rng.randrange(n_studies)}"),
        "accession": lambda rng: AuditFilter(accession_number=f"ACC-{rng.randrange(n_studies):07d}"),
        "time range (one day)": lambda rng: AuditFilter(since=(d := day(rng)), until=d + timedelta(days=1)),
        "action": lambda rng: AuditFilter(action=rng.choice(("ingested", "viewed", "exported"))),
        "actor + one day": lambda rng: AuditFilter(
            actor=rng.choice(ACTORS), since=(d := day(rng)), until=d + timedelta(days=1)
        ),
        "model version": lambda rng: AuditFilter(model_version=rng.choice(MODEL_VERSIONS)),
        "finding label + one day": lambda rng: AuditFilter(
            label=rng.choice(LABELS), since=(d := day(rng)), until=d + timedelta(days=1)
        ),
        "patient + action": lambda rng: AuditFilter(
            patient_id=f"PAT-{rng.randrange(patients):06d}", action="viewed"
        ),
    }


def section(n_events: int = EVENTS) -> list[str]:
    """Fill, time appends, queries and verification; the BENCHMARKS.md section as markdown lines."""
    rng = random.Random(7)
    with _fresh_database() as url:
        migrate(url)
        n_studies, fill_s = _fill(url, n_events, rng)
        single = _append_rate(url, 500, 1)
        batched = _append_rate(url, 2000, 100)
        queries = _queries(n_studies)
        latencies = {name: _latency_ms(url, make, rng) for name, make in queries.items()}
        started = time.perf_counter()
        with Session(get_engine(url)) as session:
            problems = verify_chain(session)
        verify_s = time.perf_counter() - started
    if problems:
        raise RuntimeError(f"benchmark chain does not verify: {problems[:3]}")
    total = n_events + 2500
    return [
        f"## Audit trail on PostgreSQL ({total:,} events)",
        "",
        f"PostgreSQL 15 on this machine; {n_studies:,} studies of ~{n_events // n_studies} events each, "
        f"one run per study with detector + segmenter model rows and 0-3 findings; events spread over "
        f"a year. Loading the rows and the valid hash chain in bulk took {fill_s:.0f} s "
        f"({n_events / fill_s:,.0f} events/s).",
        "",
        "| append path (`storage.audit.record_event`, chain lock + head read + insert) | events / s |",
        "|---|---|",
        f"| one event per transaction (commit each) | {single:,.0f} |",
        f"| 100 events per transaction | {batched:,.0f} |",
        "",
        "Query latency: the newest page of 100 events alone, and with the exact total count "
        "(`storage.audit_query.find_events`, what `argus audit` and `GET /api/audit` run), median of "
        "15 different values per filter:",
        "",
        "| filter | page, ms | page + total, ms |",
        "|---|---|---|",
        *[f"| {name} | {page:.1f} | {total:.1f} |" for name, (page, total) in latencies.items()],
        "",
        f"`argus audit verify` over the whole chain (every hash recomputed): {verify_s:.1f} s "
        f"({total / verify_s:,.0f} events/s), chain intact.",
    ]
