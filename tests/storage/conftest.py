"""Fixtures for the storage tests: a migrated database on SQLite and on PostgreSQL for every DB test.

PostgreSQL: the session's fresh database (``pg_database_url`` in tests/conftest.py); each test gets its
own schema in it through ``?options=-csearch_path%3D<schema>``, which also exercises that URL form.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from storage.database import get_engine, migrate, session_scope
from storage.repository import begin_run, upsert_study
from storage.schema import Run, Study, utcnow


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """An empty (not yet migrated) database: a SQLite file in a not-yet-existing dir, or a new PG schema."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'data' / 'argus.db'}"
    else:
        base = request.getfixturevalue("pg_database_url")
        url = f"{base}?options=-csearch_path%3Dt_{secrets.token_hex(6)}"
    yield url
    # Return the pooled connections (PostgreSQL allows only ~100); the schema goes with the database.
    get_engine(url).dispose()


@pytest.fixture
def engine(db_url: str) -> Engine:
    """A migrated engine for ``db_url``."""
    migrate(db_url)
    return get_engine(db_url)


@pytest.fixture
def make_run() -> Callable[..., tuple[Study, Run, bool]]:
    """Create (or re-begin) a run of a study in the given session, with realistic values."""

    def _make_run(
        session: Session, *, study_uid: str = "1.2.840.113619.2.55.3.1", key: str = "key-1", **overrides: Any
    ) -> tuple[Study, Run, bool]:
        study = upsert_study(
            session,
            study_uid=study_uid,
            kind="dicom",
            domain="medical",
            modality="CT",
            patient_id="PAT-001",
            accession_number="ACC-77",
            description="CT chest",
        )
        arguments: dict[str, Any] = {
            "models": [{"kind": "detector", "name": "yolo-nodule", "version": "1.2.0", "sha256": "ab" * 32}],
            "parameters": {"score_threshold": 0.25, "slices": [1, 2, 3]},
            "code_version": "0.1.0+g1234abc",
            "flow_run_id": "flow-0001",
        }
        arguments.update(overrides)
        run, created = begin_run(session, study=study, idempotency_key=key, **arguments)
        return study, run, created

    return _make_run


@pytest.fixture
def age_heartbeat(engine: Engine) -> Callable[..., None]:
    """Make a run's last heartbeat ``seconds`` old, as if the worker of its attempt had crashed then."""

    def _age(run_id: str, *, seconds: float) -> None:
        with session_scope(engine) as session:
            session.execute(
                update(Run).where(Run.id == run_id).values(heartbeat_at=utcnow() - timedelta(seconds=seconds))
            )

    return _age


def _finding(index: int, **overrides: Any) -> dict[str, Any]:
    """A plausible finding dict for save_results."""
    values: dict[str, Any] = {
        "index": index,
        "label": "nodule",
        "score": 0.875 - index / 100,
        "x1": 10.5 + index,
        "y1": 20.25,
        "x2": 40.0 + index,
        "y2": 60.75,
        "series_uid": "1.2.3.4",
        "slice_index": 12 + index,
        "sop_instance_uid": f"1.2.3.4.{index}",
        "source_file": f"slice-{index:03d}.dcm",
        "area_px": 812.0,
        "area_mm2": 53.5,
        "mask_key": f"runs/r/masks/{index}.png",
    }
    values.update(overrides)
    return values


@pytest.fixture
def sample_results() -> dict[str, Any]:
    """findings / report / artifacts arguments for save_results."""
    return {
        "findings": [_finding(0), _finding(1, label="mass", area_mm2=None, mask_key=None)],
        "report": {
            "reporter": "template",
            "model": "none",
            "text": "Two findings.",
            "impression": "Nodule in the right upper lobe.",
            "structured": {"findings": 2, "birads": None},
        },
        "artifacts": [
            {
                "kind": "input",
                "key": "studies/s/input.dcm",
                "sha256": "cd" * 32,
                "size": 5_000_000_000,
                "content_type": "application/dicom",
            },
            {
                "kind": "overlay",
                "key": "runs/r/overlay.png",
                "sha256": "ef" * 32,
                "size": 1234,
                "content_type": "image/png",
            },
        ],
    }
