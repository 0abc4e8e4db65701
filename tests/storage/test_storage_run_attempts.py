"""Run attempts and leases: one live attempt per run, stale attempts can never overwrite a newer one."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from storage.database import session_scope
from storage.repository import (
    RunInProgressError,
    StaleAttemptError,
    begin_run,
    finish_run,
    get_run,
    record_stage,
    run_artifacts,
    run_findings,
    run_report,
    save_results,
    touch_run,
    upsert_study,
)
from storage.schema import Artifact, Finding, Report, Run, StageResult, Study, utcnow

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
RUN_ARGUMENTS: dict[str, Any] = {
    "models": [{"kind": "detector", "name": "yolo-nodule", "version": "1.2.0", "sha256": "ab" * 32}],
    "parameters": {"score_threshold": 0.25},
    "code_version": "0.1.0+g1234abc",
    "flow_run_id": None,
}


def _counts(session: Session) -> dict[str, int]:
    return {
        model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
        for model in (Run, StageResult, Finding, Report, Artifact)
    }


def _stage(session: Session, run_id: str, attempt: int, stage: str, **details: Any) -> StageResult:
    return record_stage(
        session,
        run_id=run_id,
        attempt=attempt,
        stage=stage,
        status="completed",
        started_at=T0,
        finished_at=T0 + timedelta(seconds=1),
        details=details,
    )


def _create_study(engine: Engine, study_uid: str = "1.2.840.99") -> int:
    with session_scope(engine) as session:
        study = upsert_study(
            session,
            study_uid=study_uid,
            kind="dicom",
            domain="medical",
            modality="CT",
            patient_id=None,
            accession_number=None,
            description=None,
        )
        return study.id


def test_run_in_progress_within_its_lease_is_refused(engine: Engine, make_run: Any) -> None:
    with session_scope(engine) as session:
        _, run, fresh = make_run(session)
        assert (fresh, run.attempt, run.status) == (True, 1, "running")
        assert run.heartbeat_at == run.started_at
        heartbeat = run.heartbeat_at

    with pytest.raises(RunInProgressError) as info, session_scope(engine) as session:
        make_run(session, flow_run_id="flow-0002")
    assert (info.value.run_id, info.value.attempt, info.value.heartbeat_at) == (run.id, 1, heartbeat)
    assert str(info.value) == (
        f"run {run.id} is already being analyzed (attempt 1, last heartbeat {heartbeat.isoformat()}); "
        "retry later"
    )
    assert isinstance(info.value, RuntimeError)

    with session_scope(engine) as session:
        unchanged = get_run(session, run_id=run.id)
        assert unchanged is not None
        assert (unchanged.attempt, unchanged.flow_run_id, unchanged.heartbeat_at) == (
            1,
            "flow-0001",
            heartbeat,
        )


def test_lease_length_decides_when_a_silent_attempt_counts_as_crashed(
    engine: Engine, make_run: Any, age_heartbeat: Callable[..., None]
) -> None:
    with session_scope(engine) as session:
        _, run, _ = make_run(session)
    age_heartbeat(run.id, seconds=120)

    with pytest.raises(RunInProgressError), session_scope(engine) as session:
        make_run(session)  # default lease: 900 s
    with session_scope(engine) as session:
        _, taken_over, fresh = make_run(session, lease_seconds=60)
        assert (taken_over.id, fresh, taken_over.attempt) == (run.id, True, 2)

    with (
        pytest.raises(ValueError, match="lease_seconds must be a positive"),
        session_scope(engine) as session,
    ):
        make_run(session, lease_seconds=0)
    with (
        pytest.raises(ValueError, match="lease_seconds must be a positive"),
        session_scope(engine) as session,
    ):
        make_run(session, lease_seconds=float("nan"))


def test_touch_run_renews_the_lease(
    engine: Engine, make_run: Any, age_heartbeat: Callable[..., None]
) -> None:
    with session_scope(engine) as session:
        _, run, _ = make_run(session)
    age_heartbeat(run.id, seconds=3600)

    before = utcnow()
    with session_scope(engine) as session:
        _stage(session, run.id, 1, "detect")
        touch_run(session, run_id=run.id, attempt=1)  # in the same transaction as the stage write
    with session_scope(engine) as session:
        touched = get_run(session, run_id=run.id)
        assert touched is not None
        assert before <= touched.heartbeat_at <= utcnow()
        assert touched.started_at < touched.heartbeat_at
    # Alive again: no takeover.
    with pytest.raises(RunInProgressError), session_scope(engine) as session:
        make_run(session)


def test_stale_attempt_cannot_write_after_a_takeover(
    engine: Engine, make_run: Any, sample_results: dict[str, Any], age_heartbeat: Callable[..., None]
) -> None:
    with session_scope(engine) as session:
        _, run, _ = make_run(session)
        _stage(session, run.id, 1, "detect", boxes=1)
    run_id = run.id
    age_heartbeat(run_id, seconds=1000)  # attempt 1 looks crashed (but is merely slow)

    with session_scope(engine) as session:
        _, second, fresh = make_run(session, flow_run_id="flow-0002")
        assert (second.id, fresh, second.attempt) == (run_id, True, 2)
        _stage(session, run_id, 2, "detect", boxes=2)
        save_results(session, run_id=run_id, attempt=2, **sample_results)

    message = re.escape(
        f"run {run_id}: attempt 1 may no longer write: the run is now at attempt 2 (status running)"
    )
    with session_scope(engine) as session:
        with pytest.raises(StaleAttemptError, match=message) as info:
            _stage(session, run_id, 1, "detect", boxes=1)
        assert (info.value.run_id, info.value.attempt) == (run_id, 1)
        assert (info.value.current_attempt, info.value.current_status) == (2, "running")
        with pytest.raises(StaleAttemptError, match=message):
            save_results(session, run_id=run_id, attempt=1, findings=[], report=None, artifacts=[])
        with pytest.raises(StaleAttemptError, match=message):
            touch_run(session, run_id=run_id, attempt=1)
        with pytest.raises(StaleAttemptError, match=message):
            finish_run(session, run_id=run_id, attempt=1, status="failed", error="late failure")
        with pytest.raises(StaleAttemptError, match=message):
            finish_run(session, run_id=run_id, attempt=1, status="completed")

    with session_scope(engine) as session:
        current = get_run(session, run_id=run_id)
        assert current is not None
        assert (current.attempt, current.status, current.error, current.flow_run_id) == (
            2,
            "running",
            None,
            "flow-0002",
        )
        assert [(s.stage, s.details) for s in current.stage_results] == [("detect", {"boxes": 2})]
        assert _counts(session) == {
            "runs": 1,
            "stage_results": 1,
            "findings": 2,
            "reports": 1,
            "artifacts": 2,
        }
        finish_run(session, run_id=run_id, attempt=2, status="completed")


def test_stale_attempt_is_detected_even_with_the_run_cached_in_its_session(
    engine: Engine, make_run: Any, age_heartbeat: Callable[..., None]
) -> None:
    # A long-lived session keeps the Run it loaded (expire_on_commit=False): the attempt check must read
    # the row again rather than trust the cached attempt number.
    worker = Session(engine, expire_on_commit=False)
    try:
        _, run, _ = make_run(worker)
        worker.commit()
        assert run.attempt == 1
        age_heartbeat(run.id, seconds=1000)
        with session_scope(engine) as session:
            _, second, _ = make_run(session)
            assert second.attempt == 2
        with pytest.raises(StaleAttemptError, match="now at attempt 2"):
            _stage(worker, run.id, 1, "detect")
        assert run.attempt == 2  # the cached object was refreshed by the locked read
        worker.rollback()
    finally:
        worker.close()


def test_failed_run_keeps_its_stages_but_shows_no_results(
    engine: Engine, make_run: Any, sample_results: dict[str, Any]
) -> None:
    with session_scope(engine) as session:
        _, run, _ = make_run(session)
        _stage(session, run.id, 1, "detect")
        save_results(session, run_id=run.id, attempt=1, **sample_results)
        assert len(run.findings) == 2  # loaded before the failure removes them
        failed = finish_run(session, run_id=run.id, attempt=1, status="failed", error="disk full")
        assert failed.findings == [] and failed.report is None and failed.artifacts == []

    with session_scope(engine) as session:
        assert _counts(session) == {
            "runs": 1,
            "stage_results": 1,
            "findings": 0,
            "reports": 0,
            "artifacts": 0,
        }
        assert run_findings(session, run_id=run.id) == []
        assert run_report(session, run_id=run.id) is None
        assert run_artifacts(session, run_id=run.id) == []
        failed_run = get_run(session, run_id=run.id)
        assert failed_run is not None
        assert (failed_run.status, failed_run.error) == ("failed", "disk full")
        assert failed_run.finished_at is not None

    # A failed run is retried right away (no lease to wait for) as attempt 2.
    with session_scope(engine) as session:
        _, retried, fresh = make_run(session)
        assert (fresh, retried.attempt, retried.status) == (True, 2, "running")


def test_completed_run_cannot_be_failed_or_overwritten(
    engine: Engine, make_run: Any, sample_results: dict[str, Any], age_heartbeat: Callable[..., None]
) -> None:
    with session_scope(engine) as session:
        _, run, _ = make_run(session)
        save_results(session, run_id=run.id, attempt=1, **sample_results)
        finish_run(session, run_id=run.id, attempt=1, status="completed", summary={"findings": 2})
    age_heartbeat(run.id, seconds=10_000)

    message = re.escape(f"run {run.id}: attempt 1 may no longer write: the run is already completed")
    with session_scope(engine) as session:
        with pytest.raises(StaleAttemptError, match=message):
            finish_run(session, run_id=run.id, attempt=1, status="failed", error="late crash")
        with pytest.raises(StaleAttemptError, match=message):
            save_results(session, run_id=run.id, attempt=1, findings=[], report=None, artifacts=[])
        with pytest.raises(StaleAttemptError, match=message):
            _stage(session, run.id, 1, "detect")
        with pytest.raises(StaleAttemptError, match=message):
            touch_run(session, run_id=run.id, attempt=1)
        with pytest.raises(StaleAttemptError, match="now at attempt 1"):
            finish_run(session, run_id=run.id, attempt=2, status="failed")
        _, again, fresh = make_run(session)
        assert (again.id, fresh, again.attempt) == (run.id, False, 1)

    with session_scope(engine) as session:
        done = get_run(session, run_id=run.id)
        assert done is not None
        assert (done.status, done.error, done.summary, done.attempt) == (
            "completed",
            None,
            {"findings": 2},
            1,
        )
        assert _counts(session) == {
            "runs": 1,
            "stage_results": 0,
            "findings": 2,
            "reports": 1,
            "artifacts": 2,
        }


def _begin_in_thread(
    engine: Engine, study_id: int, key: str, start: threading.Barrier | None, outcomes: list[Any]
) -> None:
    try:
        if start is not None:
            start.wait(timeout=30)  # before the session: on SQLite, BEGIN IMMEDIATE already takes turns
        with session_scope(engine) as session:
            study = session.get(Study, study_id)
            assert study is not None
            try:
                run, fresh = begin_run(session, study=study, idempotency_key=key, **RUN_ARGUMENTS)
            except RunInProgressError as exc:
                # The transaction must still be usable after losing the race (the savepoint's job).
                assert session.scalar(select(func.count()).select_from(Run).where(Run.idempotency_key == key))
                outcomes.append(exc)
            else:
                outcomes.append((run.id, fresh, run.attempt))
    except BaseException as exc:  # reported by the test, not lost in the thread
        outcomes.append(exc)


def test_concurrent_begin_run_for_a_new_key_executes_once(engine: Engine) -> None:
    study_id = _create_study(engine)
    for round_number in range(3):
        key = f"race-{round_number}"
        start = threading.Barrier(2)
        outcomes: list[Any] = []
        threads = [
            threading.Thread(target=_begin_in_thread, args=(engine, study_id, key, start, outcomes))
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        winners = [o for o in outcomes if isinstance(o, tuple)]
        losers = [o for o in outcomes if isinstance(o, RunInProgressError)]
        assert len(outcomes) == 2, outcomes
        assert len(winners) == 1 and len(losers) == 1, outcomes
        run_id, fresh, attempt = winners[0]
        assert (fresh, attempt) == (True, 1)
        assert (losers[0].run_id, losers[0].attempt) == (run_id, 1)
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 3


# PostgreSQL only: SQLite's BEGIN IMMEDIATE lets one transaction write at a time, so there is no race.
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_losing_the_insert_race_raises_run_in_progress_not_integrity_error(engine: Engine) -> None:
    study_id = _create_study(engine)
    winner = Session(engine, expire_on_commit=False)
    outcomes: list[Any] = []
    try:
        study = winner.get(Study, study_id)
        assert study is not None
        won, fresh = begin_run(winner, study=study, idempotency_key="race", **RUN_ARGUMENTS)
        assert fresh
        # The loser cannot see the uncommitted row, so it inserts too and waits on the unique index.
        loser = threading.Thread(target=_begin_in_thread, args=(engine, study_id, "race", None, outcomes))
        loser.start()
        deadline = time.monotonic() + 20
        while True:
            with engine.connect() as monitor:
                waiting = monitor.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                ).scalar_one()
            if waiting or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert waiting == 1, "the second begin_run never waited for the first one's INSERT"
        winner.commit()
    finally:
        winner.close()
    loser.join(timeout=30)
    assert len(outcomes) == 1 and isinstance(outcomes[0], RunInProgressError), outcomes
    assert (outcomes[0].run_id, outcomes[0].attempt) == (won.id, 1)
