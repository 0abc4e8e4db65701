"""Repository functions: round trip, idempotent runs, stage upserts, cascades."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from storage.audit import record_event, verify_chain
from storage.audit_query import list_events
from storage.database import session_scope
from storage.repository import (
    RunNotFoundError,
    finish_run,
    get_run,
    list_runs,
    record_stage,
    run_artifacts,
    run_findings,
    run_report,
    save_results,
    upsert_study,
)
from storage.schema import MAX_KEY_LENGTH, Artifact, Finding, Report, Run, StageResult, utcnow

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _counts(session: Session) -> dict[str, int]:
    return {
        model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
        for model in (Run, StageResult, Finding, Report, Artifact)
    }


def _run_to_completion(engine: Engine, make_run: Any, results: dict[str, Any], **kwargs: Any) -> str:
    with session_scope(engine) as session:
        _, run, created = make_run(session, **kwargs)
        assert created
        record_stage(
            session,
            run_id=run.id,
            attempt=run.attempt,
            stage="detect",
            status="completed",
            started_at=T0,
            finished_at=T0 + timedelta(seconds=3),
            details={"boxes": 2},
        )
        save_results(session, run_id=run.id, attempt=run.attempt, **results)
        finish_run(session, run_id=run.id, attempt=run.attempt, status="completed", summary={"findings": 2})
        return run.id


def test_round_trip(engine: Engine, make_run: Any, sample_results: dict[str, Any]) -> None:
    run_id = _run_to_completion(engine, make_run, sample_results)

    with session_scope(engine) as session:
        run = get_run(session, run_id=run_id)
        assert run is not None
        assert run.status == "completed"
        assert run.study.study_uid == "1.2.840.113619.2.55.3.1"
        assert run.models == [
            {"kind": "detector", "name": "yolo-nodule", "version": "1.2.0", "sha256": "ab" * 32}
        ]
        assert run.parameters == {"score_threshold": 0.25, "slices": [1, 2, 3]}
        assert (run.code_version, run.flow_run_id, run.error) == ("0.1.0+g1234abc", "flow-0001", None)
        assert run.summary == {"findings": 2}
        assert run.started_at.tzinfo == UTC
        assert run.finished_at is not None and run.finished_at >= run.started_at

        [stage] = run.stage_results
        assert (stage.stage, stage.status, stage.details) == ("detect", "completed", {"boxes": 2})
        assert (stage.started_at, stage.finished_at) == (T0, T0 + timedelta(seconds=3))

        findings = run_findings(session, run_id=run_id)
        assert [(f.index, f.label, f.score) for f in findings] == [(0, "nodule", 0.875), (1, "mass", 0.865)]
        assert (findings[0].x1, findings[0].y2, findings[0].slice_index) == (10.5, 60.75, 12)
        assert (findings[0].area_mm2, findings[1].area_mm2, findings[1].mask_key) == (53.5, None, None)

        report = run_report(session, run_id=run_id)
        assert report is not None
        assert report.impression == "Nodule in the right upper lobe."
        assert report.structured == {"findings": 2, "birads": None}

        artifacts = run_artifacts(session, run_id=run_id)
        assert [(a.kind, a.key, a.size) for a in artifacts] == [
            ("input", "studies/s/input.dcm", 5_000_000_000),  # needs a 64-bit column
            ("overlay", "runs/r/overlay.png", 1234),
        ]

    # list_runs: newest first, study usable after the session closed.
    later_id = _run_to_completion(engine, make_run, sample_results, study_uid="2.25.99", key="key-2")
    with session_scope(engine) as session:
        runs = list_runs(session)
        only_first_study = list_runs(session, study_uid="1.2.840.113619.2.55.3.1")
    assert [r.id for r in runs] == [later_id, run_id]
    assert [r.study.study_uid for r in runs] == ["2.25.99", "1.2.840.113619.2.55.3.1"]
    assert [r.id for r in only_first_study] == [run_id]


def test_upsert_study_updates_known_fields_and_keeps_the_rest(engine: Engine) -> None:
    common: dict[str, Any] = {"study_uid": "1.2.3", "kind": "dicom", "domain": "medical"}
    with session_scope(engine) as session:
        first = upsert_study(
            session, **common, modality="MR", patient_id="P1", accession_number="A1", description="brain"
        )
    with session_scope(engine) as session:
        second = upsert_study(
            session, **common, modality=None, patient_id=None, accession_number="A2", description=None
        )
    assert second.id == first.id
    assert (second.modality, second.patient_id, second.accession_number, second.description) == (
        "MR",
        "P1",
        "A2",
        "brain",
    )
    with pytest.raises(ValueError, match="study kind"), session_scope(engine) as session:
        upsert_study(
            session,
            **{**common, "kind": "video"},
            modality=None,
            patient_id=None,
            accession_number=None,
            description=None,
        )


def test_completed_run_is_not_run_again(
    engine: Engine, make_run: Any, sample_results: dict[str, Any], age_heartbeat: Any
) -> None:
    run_id = _run_to_completion(engine, make_run, sample_results)
    age_heartbeat(run_id, seconds=10_000)  # a completed run's heartbeat does not matter

    with session_scope(engine) as session:
        _, run, should_execute = make_run(session, flow_run_id="flow-0002")
        assert (run.id, should_execute, run.status, run.attempt) == (run_id, False, "completed", 1)
        assert run.flow_run_id == "flow-0001"  # untouched
        assert _counts(session) == {
            "runs": 1,
            "stage_results": 1,
            "findings": 2,
            "reports": 1,
            "artifacts": 2,
        }


@pytest.mark.parametrize("crash", ["failed", "stale heartbeat"])
def test_failed_or_crashed_run_is_reset_without_duplicates(
    engine: Engine, make_run: Any, sample_results: dict[str, Any], age_heartbeat: Any, crash: str
) -> None:
    with session_scope(engine) as session:
        _, run, _ = make_run(session)
        run_id = run.id
        assert run.attempt == 1
        record_stage(
            session,
            run_id=run_id,
            attempt=1,
            stage="detect",
            status="completed",
            started_at=T0,
            finished_at=T0,
            details={},
        )
        save_results(session, run_id=run_id, attempt=1, **sample_results)
        if crash == "failed":
            finish_run(session, run_id=run_id, attempt=1, status="failed", error="CUDA out of memory")
    if crash == "stale heartbeat":
        # The worker died before finish_run: the run stays "running" but its heartbeat gets old.
        age_heartbeat(run_id, seconds=901)

    with session_scope(engine) as session:
        _, run, should_execute = make_run(
            session, flow_run_id="flow-0002", parameters={"score_threshold": 0.5}
        )
        assert (run.id, should_execute, run.attempt) == (run_id, True, 2)
        assert (run.status, run.error, run.finished_at) == ("running", None, None)
        assert run.heartbeat_at == run.started_at
        assert utcnow() - timedelta(seconds=60) < run.heartbeat_at <= utcnow()
        assert (run.flow_run_id, run.parameters) == ("flow-0002", {"score_threshold": 0.5})
        assert run.findings == [] and run.artifacts == [] and run.report is None and run.stage_results == []
        assert _counts(session) == {
            "runs": 1,
            "stage_results": 0,
            "findings": 0,
            "reports": 0,
            "artifacts": 0,
        }
        save_results(session, run_id=run_id, attempt=2, **sample_results)
        # A retried save replaces, never duplicates.
        save_results(session, run_id=run_id, attempt=2, **sample_results)
        finish_run(session, run_id=run_id, attempt=2, status="completed")

    with session_scope(engine) as session:
        assert _counts(session) == {
            "runs": 1,
            "stage_results": 0,
            "findings": 2,
            "reports": 1,
            "artifacts": 2,
        }
        assert [f.index for f in run_findings(session, run_id=run_id)] == [0, 1]


def test_record_stage_upserts_per_run_and_stage(engine: Engine, make_run: Any) -> None:
    with session_scope(engine) as session:
        _, run, _ = make_run(session)
        record_stage(
            session,
            run_id=run.id,
            attempt=1,
            stage="segment",
            status="running",
            started_at=T0,
            finished_at=None,
            details=None,
        )
    with session_scope(engine) as session:
        record_stage(
            session,
            run_id=run.id,
            attempt=1,
            stage="segment",
            status="completed",
            started_at=T0,
            finished_at=T0 + timedelta(minutes=2),
            details={"masks": 3},
        )
        rows = session.scalars(select(StageResult).where(StageResult.run_id == run.id)).all()
        assert [(r.stage, r.status, r.finished_at, r.details) for r in rows] == [
            ("segment", "completed", T0 + timedelta(minutes=2), {"masks": 3})
        ]
        with pytest.raises(RunNotFoundError, match="no run with id 'nope'"):
            record_stage(
                session,
                run_id="nope",
                attempt=1,
                stage="x",
                status="running",
                started_at=T0,
                finished_at=None,
                details={},
            )


def test_invalid_results_and_statuses_are_rejected(
    engine: Engine, make_run: Any, sample_results: dict[str, Any]
) -> None:
    with session_scope(engine) as session:
        _, run, _ = make_run(session)
        with pytest.raises(ValueError, match="'colour' is an invalid keyword argument for Finding"):
            save_results(
                session, run_id=run.id, attempt=1, findings=[{"colour": "red"}], report=None, artifacts=[]
            )
        with pytest.raises(ValueError, match="finishes as one of"):
            finish_run(session, run_id=run.id, attempt=1, status="done")
    # Naive datetimes are ambiguous (local time? UTC?) and are refused instead of being stored wrongly.
    with pytest.raises(StatementError, match="naive datetime"), session_scope(engine) as session:
        record_stage(
            session,
            run_id=run.id,
            attempt=1,
            stage="detect",
            status="running",
            started_at=datetime(2025, 1, 1),
            finished_at=None,
            details={},
        )


def test_deleting_a_run_deletes_its_rows(
    engine: Engine, make_run: Any, sample_results: dict[str, Any]
) -> None:
    run_id = _run_to_completion(engine, make_run, sample_results)
    with session_scope(engine) as session:
        session.delete(session.get(Run, run_id))
    with session_scope(engine) as session:
        assert _counts(session) == {
            "runs": 0,
            "stage_results": 0,
            "findings": 0,
            "reports": 0,
            "artifacts": 0,
        }


def test_long_keys_and_paths_are_stored_on_both_backends(engine: Engine, make_run: Any) -> None:
    # Real keys: studies/<64-char UID>/runs/<uuid>/overlays/..., quarantine/<sha256>/<file name>, and
    # absolute paths of rejected inputs; PostgreSQL used to reject them (VARCHAR(128) / VARCHAR(512)).
    object_id = "/data/incoming/" + "d" * 279 + "/x.dcm"
    key = "studies/" + "1." * 32 + "/runs/" + "k" * 800 + "/overlay-frame-001.png"
    assert (len(object_id), len(key)) == (300, 900)
    with session_scope(engine) as session:
        _, run, _ = make_run(session)
        record_event(session, actor="pipeline", action="rejected", object_type="input", object_id=object_id)
        artifact = {
            "kind": "overlay",
            "key": key,
            "sha256": "ef" * 32,
            "size": 1,
            "content_type": "image/png",
        }
        finding = {
            "label": "x",
            "score": 1.0,
            "x1": 0,
            "y1": 0,
            "x2": 1,
            "y2": 1,
            "area_px": 1.0,
            "mask_key": key,
        }
        save_results(session, run_id=run.id, attempt=1, findings=[finding], report=None, artifacts=[artifact])
    with session_scope(engine) as session:
        [event] = list_events(session)
        assert event.object_id == object_id
        assert [a.key for a in run_artifacts(session, run_id=run.id)] == [key]
        assert [f.mask_key for f in run_findings(session, run_id=run.id)] == [key]
        assert verify_chain(session) == []

    # Longer than the columns: refused alike on both backends (SQLite would silently store them).
    too_long = "k" * (MAX_KEY_LENGTH + 1)
    with session_scope(engine) as session:
        with pytest.raises(ValueError, match="audit object_id is 1025 characters long, the limit is 1024"):
            record_event(
                session, actor="pipeline", action="rejected", object_type="input", object_id=too_long
            )
        with pytest.raises(ValueError, match="artifact key is 1025 characters long"):
            save_results(
                session,
                run_id=run.id,
                attempt=1,
                findings=[],
                report=None,
                artifacts=[{**artifact, "key": too_long}],
            )
        with pytest.raises(ValueError, match="finding mask_key is 1025 characters long"):
            save_results(
                session,
                run_id=run.id,
                attempt=1,
                findings=[{**finding, "mask_key": too_long}],
                report=None,
                artifacts=[],
            )
