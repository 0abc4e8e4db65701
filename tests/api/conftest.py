"""The API over a real database (SQLite file or a PostgreSQL schema) with one seeded study and tokens."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from audit_seed import seed_analyzed_study
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from argus.api.app import create_app
from argus.settings import Settings
from storage.database import get_engine, session_scope
from storage.schema import utcnow
from storage.tokens import create_token, revoke_token

STUDY_UID = "1.2.826.0.1.3680043.2.1"


@dataclass
class Api:
    """A test client, the database behind it and its URL, and one token per role (plus a revoked one)."""

    client: TestClient
    engine: Engine
    url: str
    tokens: dict[str, str]
    run_id: str
    study_uid: str
    seeded_until: str  # ISO time after the seed and before any request


@pytest.fixture(params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    """A seeded database and a TestClient of ``create_app`` over it."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'argus.db'}"
    else:
        url = (
            f"{request.getfixturevalue('pg_database_url')}?options=-csearch_path%3Dapi_{secrets.token_hex(6)}"
        )
    app = create_app(Settings(data_dir=tmp_path, database_url=url))
    engine = get_engine(url)
    run_id = seed_analyzed_study(engine, study_uid=STUDY_UID, patient_id="PAT-9", accession="ACC-9")
    with session_scope(engine) as session:
        tokens = {
            role: create_token(session, name=f"{role}-1", role=role, created_by="test")
            for role in ("viewer", "auditor", "admin")
        }
        tokens["revoked"] = create_token(session, name="old", role="admin", created_by="test")
        revoke_token(session, name="old", revoked_by="test")
    seeded_until = utcnow().isoformat()
    with TestClient(app) as client:
        yield Api(client, engine, url, tokens, run_id, STUDY_UID, seeded_until)
    engine.dispose()
