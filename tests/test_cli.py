"""The argus command as a user runs it: a real subprocess with an ephemeral Prefect server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import run_argus

from argus.demo_data import write_demo_inputs

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_analyze_json_runs_and_audit(tmp_path: Path) -> None:
    ct_dir, _ = write_demo_inputs(tmp_path / "inputs")
    broken = tmp_path / "broken.dcm"
    broken.write_text("not dicom")
    data_dir = tmp_path / "data"

    done = run_argus(["analyze", str(ct_dir), str(broken), "--json"], data_dir)
    assert done.returncode == 1, done.stderr  # one input was rejected
    payload = json.loads(done.stdout)
    assert payload["errors"] == [{"path": str(broken), "reason": "not a DICOM file"}]
    (result,) = payload["results"]
    assert set(result) >= {"study_uid", "run_id", "findings", "report", "artifacts"}
    for finding in result["findings"]:
        assert set(finding) >= {"label", "score", "box", "slice", "slices", "area_mm2", "volume_mm3", "image"}
        assert finding["image"] == f"slice-{finding['slice']:03d}.dcm"
        x1, y1, x2, y2 = finding["box"]
        assert 0 <= x1 < x2 <= 256 and 0 <= y1 < y2 <= 256
    assert result["report"]["text"].startswith("Diagnostic imaging report")
    for artifact in result["artifacts"]:
        assert set(artifact) >= {"key", "sha256", "size", "content_type"}
        assert (data_dir / "objects" / artifact["key"]).stat().st_size == artifact["size"]

    good = run_argus(["analyze", str(ct_dir), "--json"], data_dir)
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["results"][0]["run_id"] == result["run_id"]

    runs = json.loads(run_argus(["runs", "--json"], data_dir).stdout)
    assert [(r["run_id"], r["status"]) for r in runs] == [(result["run_id"], "completed")]
    assert runs[0]["started_at"] <= runs[0]["finished_at"]

    audit = run_argus(["audit", "--study", result["study_uid"], "--json"], data_dir)
    events = json.loads(audit.stdout)["events"]
    assert {"time", "actor", "action", "object_type", "object_id"} <= set(events[0])
    assert {e["action"] for e in events} >= {"ingested", "run_started", "analyzed", "stored", "run_completed"}
    assert all(e["study_uid"] == result["study_uid"] for e in events)

    table = run_argus(["runs"], data_dir)
    assert table.returncode == 0 and result["run_id"][:8] in table.stdout

    # Reads are audited too: the table of runs, the audit export, the runs export, the second analyze's
    # results (after its run_reused).
    newest = json.loads(run_argus(["audit", "--newest", "--limit", "5", "--json"], data_dir).stdout)["events"]
    assert [(e["action"], e["object_id"]) for e in newest] == [
        ("viewed", "runs"),
        ("exported", "audit_events"),
        ("exported", "runs"),
        ("exported", result["run_id"]),
        ("run_reused", result["run_id"]),
    ]
    page = run_argus(["audit", "--offset", "2", "--limit", "3"], data_dir)
    assert "events 3-5 of" in page.stdout
