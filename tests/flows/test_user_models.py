"""A user's own detector and segmenter, by local path, end to end: their class names label the
findings and their identity (name, version, sha256, architecture) is in the result and the audit trail."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select
from user_models import RENAMED, renamed_detector

from argus.demo_data import write_demo_inputs
from models.registry import WEIGHTS_DIR, sha256_file
from storage.schema import AuditEvent

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server")]


def test_user_weights_label_and_are_recorded(
    argus_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from argus.db import db_session
    from argus.results import study_result
    from flows.batch import analyze_paths
    from tasks.resources import clear_caches

    (tmp_path / "weights").mkdir()
    detector = renamed_detector(tmp_path / "weights" / "factory-yolo.pt")
    segmenter = tmp_path / "weights" / "factory-seg.pt"
    shutil.copyfile(WEIGHTS_DIR / "industrial_deeplabv3plus.pt", segmenter)  # no card beside it: "user"
    monkeypatch.setenv("ARGUS_INDUSTRIAL_DETECTOR", str(detector))
    monkeypatch.setenv("ARGUS_INDUSTRIAL_SEGMENTER", str(segmenter))
    monkeypatch.setenv("ARGUS_INDUSTRIAL_SEGMENTER_SHA256", sha256_file(segmenter))
    clear_caches()

    _, surfaces = write_demo_inputs(tmp_path / "inputs")
    outcome = analyze_paths([str(surfaces)], "industrial")
    assert outcome.errors == []
    with db_session() as session:
        (result,) = [study_result(session, run_id) for run_id in outcome.run_ids]
        assert result["findings"], "the demo surfaces have defects"
        assert {f["label"] for f in result["findings"]} <= set(RENAMED.values())
        models = {m["kind"]: m for m in result["models"]}
        assert models["detector"] == {
            "kind": "detector",
            "name": "factory-yolo.pt",
            "version": "user",
            "sha256": sha256_file(detector),
        }
        assert models["segmenter"]["sha256"] == sha256_file(segmenter)
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.study_uid == result["study_uid"]).order_by(AuditEvent.id)
        ).all()
        stages = {e.details.get("stage"): e.details for e in events if e.details.get("stage")}
        assert stages["detect"]["model"] == "factory-yolo.pt"
        assert stages["detect"]["weights_sha256"] == sha256_file(detector)
        assert stages["segment"]["model"] == "factory-seg.pt"
        assert stages["segment"]["model_version"] == "user"
        assert stages["segment"]["weights_sha256"] == sha256_file(segmenter)
        assert stages["segment"]["architecture"] == "deeplabv3plus"
