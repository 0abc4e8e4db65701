"""The HTTP API on SQLite and PostgreSQL: tokens and roles, parameter errors, filters, and its own audit.

``api`` (tests/api/conftest.py) is a client over a seeded database with one token per role.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from storage.audit_query import list_events
from storage.database import session_scope


def _get(api: Any, path: str, token: str | None, **params: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return api.client.get(path, headers=headers, params=params)


def _last_event(api: Any) -> Any:
    with session_scope(api.engine) as session:
        return list_events(session, limit=1, newest_first=True)[0]


@pytest.mark.parametrize(
    ("token", "reason", "actor"),
    [
        (None, "missing API token: send the header 'Authorization: Bearer <token>'", "anonymous"),
        ("argus_not-a-real-token", "invalid API token", "anonymous"),
        ("revoked", "API token 'old' was revoked at ", "token:old"),
    ],
)
def test_missing_bad_or_revoked_token_is_401_and_audited(
    api: Any, token: str | None, reason: str, actor: str
) -> None:
    secret = api.tokens.get(token, token) if token else None
    for path in ("/api/studies", "/api/audit"):
        response = _get(api, path, secret)
        assert response.status_code == 401
        assert response.json()["detail"].startswith(reason)
        assert response.headers["www-authenticate"] == "Bearer"
        event = _last_event(api)
        assert (event.actor, event.action, event.outcome) == (actor, "viewed", "failure")
        assert event.details["status"] == 401 and event.details["reason"].startswith(reason)


def test_viewer_reads_studies_but_not_the_audit_trail(api: Any) -> None:
    assert _get(api, "/api/studies", api.tokens["viewer"]).status_code == 200
    response = _get(api, "/api/audit", api.tokens["viewer"])
    assert response.status_code == 403
    assert (
        response.json()["detail"] == "role 'viewer' may not use /api/audit; it needs one of: auditor, admin"
    )
    event = _last_event(api)
    assert (event.actor, event.object_type, event.outcome, event.details["status"]) == (
        "token:viewer-1",
        "audit",
        "failure",
        403,
    )
    for role in ("auditor", "admin"):
        assert _get(api, "/api/audit", api.tokens[role]).status_code == 200


def test_bad_parameters_are_422_with_a_message_naming_them(api: Any) -> None:
    response = _get(api, "/api/audit", api.tokens["auditor"], limit=0, since="yesterday", studyuid="1.2")
    assert response.status_code == 422
    message = response.json()["message"]
    assert message.startswith("invalid request: ")
    assert "limit: Input should be greater than or equal to 1 (got '0')" in message
    assert "since: Input should be a valid datetime" in message and "(got 'yesterday')" in message
    assert "studyuid: unknown parameter" in message
    assert {tuple(e["loc"]) for e in response.json()["detail"]} >= {("query", "limit"), ("query", "since")}

    backwards = _get(api, "/api/audit", api.tokens["auditor"], since="2026-02-01", until="2026-01-01")
    assert backwards.status_code == 422
    assert "since (2026-02-01T00:00:00+00:00) must be before until" in backwards.json()["message"]
    assert _last_event(api).details["reason"] == backwards.json()["message"]
    # Authentication comes first: an anonymous caller learns nothing about parameters.
    assert _get(api, "/api/audit", None, limit=0).status_code == 401


def test_studies_list_and_detail(api: Any) -> None:
    page = _get(api, "/api/studies", api.tokens["viewer"], patient="PAT-9").json()
    assert page["total"] == 1 and [s["study_uid"] for s in page["studies"]] == [api.study_uid]
    assert page["studies"][0]["accession_number"] == "ACC-9"
    assert _get(api, "/api/studies", api.tokens["viewer"], accession="nope").json()["total"] == 0

    detail = _get(api, f"/api/studies/{api.study_uid}", api.tokens["viewer"]).json()
    assert detail["patient_id"] == "PAT-9"
    [run] = detail["runs"]
    assert run["run_id"] == api.run_id and [f["label"] for f in run["findings"]] == ["lesion"]
    event = _last_event(api)
    assert (event.action, event.object_type, event.object_id, event.study_uid, event.actor) == (
        "viewed",
        "study",
        api.study_uid,
        api.study_uid,
        "token:viewer-1",
    )
    assert event.details["runs"] == [api.run_id]

    missing = _get(api, "/api/studies/9.9.9", api.tokens["viewer"])
    assert (missing.status_code, missing.json()["detail"]) == (404, "no study 9.9.9")
    assert (_last_event(api).outcome, _last_event(api).study_uid) == ("failure", "9.9.9")


def test_audit_filters_and_pages(api: Any) -> None:
    auditor = api.tokens["auditor"]
    pinned = {"until": api.seeded_until}
    by_label = _get(api, "/api/audit", auditor, label="lesion", **pinned).json()
    assert [e["action"] for e in by_label["events"]] == ["ingested", "analyzed", "run_completed"]
    assert all(e["run_id"] == api.run_id for e in by_label["events"])
    assert _get(api, "/api/audit", auditor, model_version="2026.11.25", **pinned).json()["total"] == 3
    assert _get(api, "/api/audit", auditor, patient="PAT-9", action="analyzed", **pinned).json()["total"] == 1
    assert _get(api, "/api/audit", auditor, actor="test", **pinned).json()["total"] == 5  # token events
    page = _get(api, "/api/audit", auditor, limit=2, offset=1, newest=True, **pinned).json()
    assert (page["total"], page["offset"], page["limit"], len(page["events"])) == (8, 1, 2, 2)
    assert page["events"][0]["action"] == "token_created"  # newest first: revoked, then created "old"

    # The query itself is audited with what was asked and how much came back.
    event = _last_event(api)
    assert (event.action, event.object_type, event.actor) == ("viewed", "audit", "token:auditor-1")
    assert event.details["filters"] == {"until": api.seeded_until}
    assert (event.details["count"], event.details["total"], event.details["status"]) == (2, 8, 200)


def test_api_results_equal_the_cli_results(api: Any, tmp_path: Path) -> None:
    queries = [
        {"study": api.study_uid},
        {"label": "lesion", "newest": True},
        {"actor": "test", "limit": 2, "offset": 1},
        {"accession": "ACC-9", "action": "analyzed"},
    ]
    env = {**os.environ, "ARGUS_DATA_DIR": str(tmp_path / "cli"), "ARGUS_DATABASE_URL": api.url}
    for query in queries:
        query = {**query, "until": api.seeded_until}
        from_api = _get(api, "/api/audit", api.tokens["auditor"], **query).json()
        args = ["audit", "--json"]
        for name, value in query.items():
            flag = "--" + name.replace("_", "-")
            args += [flag] if value is True else [flag, str(value)]
        done = subprocess.run(
            [sys.executable, "-m", "argus", *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        from_cli = json.loads(done.stdout)
        if "limit" not in query:
            from_cli["limit"] = from_api["limit"]  # the two default page sizes differ (CLI 1000, API 100)
        assert from_cli == from_api, query
        assert from_api["total"] > 0


def test_docs_and_openapi_are_served(api: Any) -> None:
    docs = api.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = api.client.get("/openapi.json").json()
    assert {"/api/studies", "/api/studies/{study_uid}", "/api/audit"} <= set(spec["paths"])
    parameters = {p["name"] for p in spec["paths"]["/api/audit"]["get"]["parameters"]}
    assert {
        "study",
        "patient",
        "accession",
        "since",
        "until",
        "action",
        "actor",
        "model_version",
        "label",
    } <= (parameters)
    assert _last_event(api).details["path"] == "/openapi.json"


def test_every_request_is_one_audit_event(api: Any) -> None:
    with session_scope(api.engine) as session:
        before = len(list_events(session))
    requests = [
        ("/api/studies", "viewer"),
        ("/api/audit", "viewer"),
        ("/api/audit", "admin"),
        (f"/api/studies/{api.study_uid}", "auditor"),
        ("/api/nothing-here", "admin"),
        ("/docs", None),
    ]
    statuses = [_get(api, path, api.tokens[role] if role else None).status_code for path, role in requests]
    assert statuses == [200, 403, 200, 200, 404, 200]
    with session_scope(api.engine) as session:
        events = list_events(session)[before:]
    assert [(e.details["path"], e.details["status"]) for e in events] == [
        (path, status) for (path, _), status in zip(requests, statuses, strict=True)
    ]
    assert events[4].action == "api_request" and events[4].outcome == "failure"
