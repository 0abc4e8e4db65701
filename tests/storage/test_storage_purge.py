"""Purging a study: objects then rows, audited; interrupted purges lose nothing and re-runs finish them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

import storage.purge
from storage.audit import verify_chain
from storage.audit_query import AuditFilter, list_events
from storage.database import session_scope
from storage.object_store import FilesystemObjectStore, ObjectStore
from storage.purge import PurgeError, PurgeResult, plan_purge, purge_study
from storage.repository import finish_run, save_results
from storage.schema import Artifact, Finding, Run, RunModel, StageResult, Study

UID_A, UID_B = "1.2.826.0.1.1", "1.2.826.0.1.2"
LEASE = 3600.0


class FailingDeletes:
    """The real store, except that delete fails after ``allowed`` successful calls (fault injection)."""

    def __init__(self, store: ObjectStore, allowed: int) -> None:
        self._store, self._allowed = store, allowed
        self.url = store.url

    def list(self, prefix: str = "") -> list[str]:
        return self._store.list(prefix)

    def delete(self, key: str) -> None:
        if self._allowed == 0:
            raise OSError(f"connection reset while deleting {key}")
        self._allowed -= 1
        self._store.delete(key)


def _artifact(key: str) -> dict[str, Any]:
    return {"kind": "overlay", "key": key, "sha256": "ab" * 32, "size": 3, "content_type": "image/png"}


@pytest.fixture
def store(tmp_path: Path) -> FilesystemObjectStore:
    return FilesystemObjectStore(tmp_path / "objects")


@pytest.fixture
def two_studies(engine: Engine, make_run, store: FilesystemObjectStore) -> None:
    """Study A: a completed run with rows and objects (one outside its prefix, one shared with B); study B."""
    for uid, key, extra in ((UID_A, "a", ["elsewhere/a-only.png"]), (UID_B, "b", [])):
        with session_scope(engine) as session:
            _, run, _ = make_run(session, study_uid=uid, key=key)
            keys = [f"studies/{uid}/runs/{run.id}/attempt-1/overlay.png", "shared/common.png", *extra]
            save_results(
                session,
                run_id=run.id,
                attempt=1,
                findings=[
                    {"label": "nodule", "score": 0.9, "x1": 1, "y1": 1, "x2": 2, "y2": 2, "area_px": 1.0}
                ],
                report={"reporter": "t", "model": "m", "text": "x", "impression": "y"},
                artifacts=[_artifact(k) for k in keys],
            )
            finish_run(session, run_id=run.id, attempt=1, status="completed")
        for k in [*keys, f"studies/{uid}/inputs/abc/slice-001.dcm"]:
            store.put_bytes(k, b"img", "image/png")


def _rows(engine: Engine, uid: str) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(Study).where(Study.study_uid == uid)) or 0


def _purge(engine: Engine, store: Any) -> PurgeResult:
    return purge_study(engine, store, study_uid=UID_A, actor="argus:dpo", lease_seconds=LEASE)


def test_purge_removes_the_study_and_keeps_the_trail(
    engine: Engine, store: FilesystemObjectStore, two_studies: None
) -> None:
    planned = plan_purge(engine, store, study_uid=UID_A, lease_seconds=LEASE)
    assert planned == PurgeResult(
        UID_A, objects=3, runs=1, stage_results=0, findings=1, reports=1, artifacts=3
    )
    assert _purge(engine, store) == planned

    assert store.list(f"studies/{UID_A}/") == [] and not store.exists("elsewhere/a-only.png")
    assert store.exists("shared/common.png")  # B still names it
    assert len(store.list(f"studies/{UID_B}/")) == 2
    assert (_rows(engine, UID_A), _rows(engine, UID_B)) == (0, 1)
    with session_scope(engine) as session:
        remaining = {
            m: session.scalar(select(func.count()).select_from(m)) for m in (Run, Finding, Artifact, RunModel)
        }
        assert remaining == {Run: 1, Finding: 1, Artifact: 2, RunModel: 1}  # study B's
        assert session.scalar(select(func.count()).select_from(StageResult)) == 0
        events = list_events(session, AuditFilter(study_uid=UID_A))
        assert [e.action for e in events][-2:] == ["purge_started", "deleted"]
        assert events[-1].actor == "argus:dpo"
        assert events[-1].details["purged"]["artifacts"] == 3
        assert verify_chain(session) == []
    with pytest.raises(PurgeError, match=f"nothing to purge: no study {UID_A}"):
        _purge(engine, store)


def test_objects_failing_midway_keep_the_rows_and_a_rerun_finishes(
    engine: Engine, store: FilesystemObjectStore, two_studies: None
) -> None:
    with pytest.raises(
        PurgeError, match=r"stopped after deleting 1 of 3 objects: connection reset.*run the purge"
    ):
        _purge(engine, FailingDeletes(store, allowed=1))
    assert _rows(engine, UID_A) == 1  # the rows still name every object
    with session_scope(engine) as session:
        failed = list_events(session, AuditFilter(study_uid=UID_A, action="deleted"))
        assert [(e.outcome, e.details["objects_deleted"]) for e in failed] == [("failure", 1)]

    result = _purge(engine, store)
    assert (result.objects, result.runs) == (3, 1)  # keys named by rows are deleted again: a no-op
    assert store.list(f"studies/{UID_A}/") == [] and not store.exists("elsewhere/a-only.png")
    assert _rows(engine, UID_A) == 0


def test_rows_failing_after_the_objects_are_gone_are_removed_by_a_rerun(
    engine: Engine, store: FilesystemObjectStore, two_studies: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def lost_connection(*args: Any) -> PurgeResult:
        raise ConnectionError("server closed the connection unexpectedly")

    real = storage.purge._delete_rows
    monkeypatch.setattr(storage.purge, "_delete_rows", lost_connection)
    with pytest.raises(ConnectionError):
        _purge(engine, store)
    assert store.list(f"studies/{UID_A}/") == [] and _rows(engine, UID_A) == 1

    monkeypatch.setattr(storage.purge, "_delete_rows", real)
    assert _purge(engine, store).runs == 1
    assert _rows(engine, UID_A) == 0
    with session_scope(engine) as session:
        actions = [e.action for e in list_events(session, AuditFilter(study_uid=UID_A))]
        assert actions[-3:] == ["purge_started", "purge_started", "deleted"]


def test_a_study_with_a_live_run_is_not_purged(
    engine: Engine, store: FilesystemObjectStore, make_run
) -> None:
    with session_scope(engine) as session:
        _, run, _ = make_run(session, study_uid=UID_A)
    store.put_bytes(f"studies/{UID_A}/inputs/x/a.dcm", b"x", "application/dicom")
    with pytest.raises(PurgeError, match=f"study {UID_A} is being analyzed \\(run {run.id}, attempt 1"):
        _purge(engine, store)
    assert store.exists(f"studies/{UID_A}/inputs/x/a.dcm") and _rows(engine, UID_A) == 1
    # A crashed run (no heartbeat within the lease) does not block the purge.
    assert purge_study(engine, store, study_uid=UID_A, actor="a", lease_seconds=1e-6).runs == 1


def test_objects_without_rows_are_purged(engine: Engine, store: FilesystemObjectStore) -> None:
    # Loading stores inputs before the run opens: a crash in between leaves objects but no study row.
    store.put_bytes(f"studies/{UID_A}/inputs/x/a.dcm", b"x", "application/dicom")
    assert _purge(engine, store) == PurgeResult(UID_A, 1, 0, 0, 0, 0, 0)
    assert store.list("studies/") == []
