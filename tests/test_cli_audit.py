"""``argus audit``, ``audit verify``, ``token``, ``purge``, ``api`` and ``runs`` as a user runs them: the real
command in a subprocess, over a database seeded through storage/ (no flow runs, so these are quick)."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from audit_seed import seed_analyzed_study
from cli_runner import run_argus
from sqlalchemy import Engine, text

from storage.audit_query import AuditFilter, list_events
from storage.database import get_engine, migrate, session_scope
from storage.object_store import FilesystemObjectStore

UID = "1.2.826.0.1.3680043.9.7"


def _argus(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_argus(list(args), data_dir, 300, stdin=stdin, env={"ARGUS_ACTOR": "argus:tester"})


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[Path, Engine, str]]:
    """A data dir: SQLite database with one analyzed study (three events), file store with its objects."""
    data_dir = tmp_path / "data"
    url = f"sqlite:///{data_dir / 'argus.db'}"
    migrate(url)
    engine = get_engine(url)
    key = f"studies/{UID}/report/report.md"
    report = {"kind": "report_md", "key": key, "sha256": "cd" * 32, "size": 6, "content_type": "text/plain"}
    run_id = seed_analyzed_study(
        engine, study_uid=UID, patient_id="P-7", accession="ACC-7", artifacts=[report]
    )
    store = FilesystemObjectStore(data_dir / "objects")
    store.put_bytes(key, b"report", "text/markdown")
    store.put_bytes(f"studies/{UID}/inputs/ab/slice-001.dcm", b"dicom", "application/dicom")
    yield data_dir, engine, run_id
    engine.dispose()


def test_audit_filters_formats_and_its_own_audit(seeded: tuple[Path, Engine, str]) -> None:
    data_dir, engine, run_id = seeded
    page = json.loads(_argus(data_dir, "audit", "--label", "lesion", "--json").stdout)
    assert (page["total"], [e["action"] for e in page["events"]]) == (
        3,
        ["ingested", "analyzed", "run_completed"],
    )
    assert json.loads(_argus(data_dir, "audit", "--patient", "NOBODY", "--json").stdout)["total"] == 0

    rows = list(
        csv.DictReader(io.StringIO(_argus(data_dir, "audit", "--accession", "ACC-7", "--csv").stdout))
    )
    assert [r["action"] for r in rows][:3] == ["ingested", "analyzed", "run_completed"]
    assert rows[0]["run_id"] == run_id and json.loads(rows[0]["details"]) == {}

    table = _argus(data_dir, "audit", "--model-version", "2026.11.25", "--limit", "2", "--offset", "1")
    assert table.returncode == 0 and "events 2-3 of 3" in table.stdout

    bad = _argus(data_dir, "audit", "--since", "last week")
    assert bad.returncode == 2 and "'last week' is not an ISO-8601 time" in bad.stderr
    both = _argus(data_dir, "audit", "--json", "--csv")
    assert both.returncode == 2 and "choose one of --json and --csv" in both.stderr

    with session_scope(engine) as session:
        reads = list_events(session, AuditFilter(actor="argus:tester", action="exported"))
        assert [e.details["format"] for e in reads] == ["json", "json", "csv"]
        assert reads[0].details["filters"] == {"label": "lesion"} and reads[0].details["total"] == 3
        [viewed] = list_events(session, AuditFilter(actor="argus:tester", action="viewed"))
        assert viewed.details["filters"] == {"model_version": "2026.11.25"}


def test_runs_listing_is_audited(seeded: tuple[Path, Engine, str]) -> None:
    data_dir, engine, run_id = seeded
    runs = json.loads(_argus(data_dir, "runs", "--study", UID, "--json").stdout)
    assert [r["run_id"] for r in runs] == [run_id]
    with session_scope(engine) as session:
        [event] = list_events(session, AuditFilter(actor="argus:tester"))
    assert (event.action, event.object_type, event.study_uid, event.details["count"]) == (
        "exported",
        "run",
        UID,
        1,
    )


def test_audit_verify_names_edited_and_deleted_rows(seeded: tuple[Path, Engine, str]) -> None:
    data_dir, engine, _ = seeded
    intact = _argus(data_dir, "audit", "verify")
    assert (intact.returncode, intact.stdout.strip()) == (0, "audit chain intact: 3 events")

    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE id = 2"))
    edited = _argus(data_dir, "audit", "verify")
    assert edited.returncode == 1
    assert edited.stdout.splitlines() == [
        "event 2: content was edited (stored hash does not match its content)"
    ]
    assert "audit chain broken: 1 problem(s) in 4 events" in edited.stderr  # 3 + the first verify's event

    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET actor = 'argus:alice' WHERE id = 2"))
        connection.execute(text("DELETE FROM audit_events WHERE id = 3"))
    deleted = _argus(data_dir, "audit", "verify")
    assert deleted.returncode == 1
    assert deleted.stdout.splitlines() == [
        "event 4: previous hash does not match event 2 — a row was deleted or reordered"
    ]
    with session_scope(engine) as session:
        checks = list_events(session, AuditFilter(action="verified"))
    assert [(e.outcome, len(e.details["problems"])) for e in checks] == [
        ("success", 0),
        ("failure", 1),
        ("failure", 1),
    ]


def test_token_create_list_revoke(seeded: tuple[Path, Engine, str]) -> None:
    data_dir, _, _ = seeded
    created = _argus(data_dir, "token", "create", "--role", "auditor", "--name", "ci")
    assert created.returncode == 0 and created.stdout.startswith("argus_")
    assert "it is not shown again" in created.stderr
    again = _argus(data_dir, "token", "create", "--role", "viewer", "--name", "ci")
    assert again.returncode == 1 and "a token named 'ci' already exists" in again.stderr
    bad_role = _argus(data_dir, "token", "create", "--role", "root", "--name", "x")
    assert bad_role.returncode == 2

    [listed] = json.loads(_argus(data_dir, "token", "list", "--json").stdout)
    assert (listed["name"], listed["role"], listed["created_by"], listed["revoked_at"]) == (
        "ci",
        "auditor",
        "argus:tester",
        None,
    )
    assert created.stdout.strip() not in (data_dir / "argus.db").read_bytes().decode("latin-1")

    assert _argus(data_dir, "token", "revoke", "ci").stdout.strip() == "token 'ci' revoked"
    assert json.loads(_argus(data_dir, "token", "list", "--json").stdout)[0]["revoked_at"] is not None
    unknown = _argus(data_dir, "token", "revoke", "nope")
    assert unknown.returncode == 1 and "no token named 'nope'" in unknown.stderr


def test_purge_asks_then_removes_objects_and_rows(seeded: tuple[Path, Engine, str]) -> None:
    data_dir, _, _ = seeded
    objects = data_dir / "objects" / "studies" / UID
    declined = _argus(data_dir, "purge", "--study", UID, stdin="n\n")
    assert declined.returncode == 1 and "Aborted" in declined.stderr
    assert "2 objects, 1 runs" in declined.stderr and len(list(objects.rglob("*.*"))) == 2

    done = _argus(data_dir, "purge", "--study", UID, "--yes")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "study_uid": UID,
        "objects": 2,
        "runs": 1,
        "stage_results": 0,
        "findings": 1,
        "reports": 0,
        "artifacts": 1,
    }
    assert list(objects.rglob("*.*")) == []
    trail = json.loads(_argus(data_dir, "audit", "--study", UID, "--json").stdout)["events"]
    assert [e["action"] for e in trail][-2:] == ["purge_started", "deleted"]
    assert trail[-1]["actor"] == "argus:tester"

    again = _argus(data_dir, "purge", "--study", UID, "--yes")
    assert again.returncode == 1 and f"nothing to purge: no study {UID}" in again.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_api_command_serves_the_api(seeded: tuple[Path, Engine, str]) -> None:
    data_dir, engine, _ = seeded
    token = _argus(data_dir, "token", "create", "--role", "viewer", "--name", "web").stdout.strip()
    port = _free_port()
    env = {**os.environ, "ARGUS_DATA_DIR": str(data_dir)}
    server = subprocess.Popen(
        [sys.executable, "-m", "argus", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"{base}/api/studies", headers={"Authorization": f"Bearer {token}"})
                break
            except httpx.ConnectError:
                assert server.poll() is None and time.monotonic() < deadline, "argus api did not start"
                time.sleep(0.2)
        assert response.status_code == 200 and response.json()["studies"][0]["study_uid"] == UID
        assert httpx.get(f"{base}/api/studies").status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=30)
    with session_scope(engine) as session:
        events = list_events(session, AuditFilter(action="viewed"))
    assert [(e.actor, e.details["status"]) for e in events] == [("token:web", 200), ("anonymous", 401)]
