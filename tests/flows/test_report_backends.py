"""A CT study through Prefect with language-model reporters: an OpenAI-compatible endpoint (crops out,
identifiers kept in) and our own shipped VLM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydicom
import pytest
from chat_server import chat_answer, serve_chat
from sqlalchemy import select

from argus.demo_data import write_demo_inputs
from storage.schema import StageResult

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server")]


def _echo_findings(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """A well-behaved model: restates the findings listed in the prompt, as the schema asks."""
    prompt = "".join(p["text"] for p in body["messages"][1]["content"] if p["type"] == "text")
    listed = [json.loads(line) for line in prompt.splitlines() if line.startswith('{"index"')]
    findings = [
        {
            "index": f["index"],
            "label": f["label"],
            "longest_mm": f["longest_mm"],
            "description": "Round, hypodense.",
        }
        for f in listed
    ]
    impression = f"{len(findings)} lesions detected. Recommend radiologist review."
    answer = {"finding_count": len(findings), "findings": findings, "impression": impression}
    return chat_answer(json.dumps(answer))


def test_openai_reporter_in_the_flow(
    argus_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from argus.db import db_session
    from argus.results import study_result
    from flows.batch import analyze_paths
    from tasks.resources import clear_caches

    ct_dir, _ = write_demo_inputs(tmp_path / "inputs")
    header = pydicom.dcmread(next(ct_dir.glob("*.dcm")))
    first = analyze_paths([str(ct_dir)])  # the template reporter
    with serve_chat() as server:
        server.replies = [_echo_findings]
        monkeypatch.setenv("ARGUS_REPORTER", "openai")
        monkeypatch.setenv("ARGUS_REPORTER_URL", server.url)
        monkeypatch.setenv("ARGUS_REPORTER_MODEL", "tiny-vlm")
        clear_caches()
        outcome = analyze_paths([str(ct_dir)])
        again = analyze_paths([str(ct_dir)])
    # Another reporter is another run; the same reporter again reuses it without asking the model.
    assert outcome.run_ids != first.run_ids and again.run_ids == outcome.run_ids
    (body,) = server.requests
    with db_session() as session:
        result = study_result(session, outcome.run_ids[0])
        details = session.scalars(
            select(StageResult.details).where(
                StageResult.run_id == outcome.run_ids[0], StageResult.stage == "report"
            )
        ).one()
    report = result["report"]
    assert report["reporter"] == "openai" and report["ai_generated"]
    assert report["provenance"]["deidentified"] and report["provenance"]["fallback_reason"] is None
    assert len(report["findings"]) == len(result["findings"]) > 0
    assert all(f["description"] == "Round, hypodense." for f in report["findings"])
    assert details["backend"] == "openai" and details["cached"] is False and details["attempts"] == 1
    # One ROI crop per finding went out; no header identifier did.
    images = [p for p in body["messages"][1]["content"] if p["type"] == "image_url"]
    assert len(images) == len(result["findings"])
    sent = json.dumps(body)
    for identifier in (
        header.PatientID,
        header.StudyInstanceUID,
        header.SeriesInstanceUID,
        str(header.PatientName),
    ):
        assert identifier not in sent


def test_our_own_vlm_reports_in_the_flow(
    argus_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from argus.db import db_session
    from argus.results import study_result
    from flows.batch import analyze_paths
    from models.registry import read_card
    from models.reporter.shipped import shipped_reporter_dir
    from tasks.resources import clear_caches

    monkeypatch.setenv("ARGUS_REPORTER", "transformers")  # no model named: our own, per domain
    clear_caches()
    ct_dir, surfaces = write_demo_inputs(tmp_path / "inputs")
    outcome = analyze_paths([str(ct_dir), str(surfaces)])
    assert not outcome.errors and len(outcome.run_ids) == 2
    with db_session() as session:
        results = [study_result(session, run_id) for run_id in outcome.run_ids]
    for result in results:
        report = result["report"]
        domain = report["domain"]
        card = read_card(shipped_reporter_dir(domain))
        assert card is not None
        provenance = report["provenance"]
        # The model wrote it, or (its answer rejected twice) the template did, saying why.
        wrote = "transformers" if provenance["fallback_reason"] is None else "template"
        assert (
            report["reporter"] == wrote and report["ai_generated"] and provenance["backend"] == "transformers"
        )
        assert provenance["model"] == str(shipped_reporter_dir(domain))
        assert provenance["weights_sha256"] == card.sha256
        # The prompt is the one the model learned (medical v4, industrial v5), as its card records.
        assert provenance["prompt_version"] == card.input["prompt"] and not provenance["deidentified"]
        # Whoever wrote it (the model, or the template after a rejected answer), it states the findings.
        assert [f["index"] for f in report["findings"]] == [f["index"] for f in result["findings"]]
        if provenance["fallback_reason"] is None:
            assert all(f["description"] for f in report["findings"])
