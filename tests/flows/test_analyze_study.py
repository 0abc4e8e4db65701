"""End to end through Prefect: real models, SQLite, filesystem store, audit trail."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from sqlalchemy import func, select

from argus.demo_data import write_demo_inputs
from storage.schema import Artifact, AuditEvent, Finding, Report, Run, StageResult, utcnow

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server")]


def _counts(session) -> dict[str, int]:
    return {
        model.__name__: session.scalar(select(func.count()).select_from(model))
        for model in (Run, Finding, Report, Artifact, AuditEvent, StageResult)
    }


@pytest.mark.parametrize("argus_env", ["sqlite", "postgresql"], indirect=True)
def test_demo_study_end_to_end(argus_env: Path, tmp_path: Path) -> None:
    from argus.db import db_session
    from argus.results import study_result
    from flows.batch import analyze_paths
    from tasks.resources import object_store

    ct_dir, surface_dir = write_demo_inputs(tmp_path / "inputs")
    outcome = analyze_paths([str(ct_dir), str(surface_dir)])
    assert outcome.errors == []
    assert len(outcome.run_ids) == 2
    store = object_store()
    with db_session() as session:
        results = {r["domain"]: r for r in (study_result(session, rid) for rid in outcome.run_ids)}
        medical, industrial = results["medical"], results["industrial"]
        assert medical["status"] == industrial["status"] == "completed"
        assert medical["study_uid"] == pydicom.dcmread(next(ct_dir.glob("*.dcm"))).StudyInstanceUID
        # The demo CT has lesions and the shipped detector finds at least one, measured in mm.
        assert medical["findings"], "no lesion found in the demo CT"
        for f in medical["findings"]:
            assert f["label"] == "lesion" and 1 <= f["slice"] <= 8 and f["area_mm2"] > 0
            assert f["slices"][0] <= f["slice"] <= f["slices"][1] and f["volume_mm3"] > 0  # one per lesion
        # Photos are no volume: one 2-D finding per detection.
        assert all("area_px" in f and "slices" not in f for f in industrial["findings"])
        assert {f["label"] for f in industrial["findings"]} <= {"scratch", "dent", "crack"}
        assert f"{len(medical['findings'])} lesion" in medical["report"]["impression"]
        kinds = {a["kind"] for a in medical["artifacts"]}
        assert {"input", "frames", "mask", "masks_npz", "overlay", "report_json", "report_md"} <= kinds
        assert sum(a["kind"] == "input" for a in medical["artifacts"]) == 8
        # Every artifact is in the store, byte-identical to its recorded checksum.
        for result in results.values():
            for a in result["artifacts"]:
                data = store.get_bytes(a["key"])
                assert hashlib.sha256(data).hexdigest() == a["sha256"] and len(data) == a["size"]
        # Inputs are kept byte for byte; masks decode to images of the frame size.
        first = sorted(ct_dir.glob("*.dcm"))[0].read_bytes()
        input_keys = [a["key"] for a in medical["artifacts"] if a["kind"] == "input"]
        assert any(store.get_bytes(k) == first for k in input_keys)
        mask_key = medical["findings"][0]["mask_key"]
        mask = cv2.imdecode(np.frombuffer(store.get_bytes(mask_key), np.uint8), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (256, 256) and mask.max() == 255
        report_key = next(a["key"] for a in medical["artifacts"] if a["kind"] == "report_json")
        prefix = f"studies/{medical['study_uid']}/runs/{medical['run_id']}/attempt-1/report/"
        assert report_key.startswith(prefix) and report_key.endswith("/report.json")
        report = json.loads(store.get_bytes(report_key))
        assert len(report["findings"]) == len(medical["findings"])
        # Stages and audit trail.
        stages = session.scalars(
            select(StageResult.stage).where(StageResult.run_id == medical["run_id"])
        ).all()
        assert sorted(stages) == ["detect", "persist", "report", "segment"]
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.study_uid == medical["study_uid"]).order_by(AuditEvent.id)
        ).all()
        actions = [e.action for e in events]
        assert actions.count("ingested") == 8
        assert actions[8] == "run_started" and actions[-1] == "run_completed"
        assert actions.count("analyzed") == 3
        detect_event = next(e for e in events if e.details.get("stage") == "detect")
        assert len(detect_event.details["weights_sha256"]) == 64
        assert actions.count("stored") == len(medical["artifacts"]) - 8
        before = _counts(session)

    # The same inputs again: the completed run is reused, nothing is duplicated.
    again = analyze_paths([str(ct_dir), str(surface_dir)])
    assert sorted(again.run_ids) == sorted(outcome.run_ids)
    with db_session() as session:
        after = _counts(session)
        assert after | {"AuditEvent": 0} == before | {"AuditEvent": 0}
        # The only new rows: one audit event per reuse, naming the run.
        assert after["AuditEvent"] == before["AuditEvent"] + 2
        reused = session.scalars(select(AuditEvent).where(AuditEvent.action == "run_reused")).all()
        assert sorted(e.object_id for e in reused) == sorted(outcome.run_ids)
        from storage.audit import verify_chain

        assert verify_chain(session) == []


def test_bad_inputs_are_rejected_recorded_and_quarantined(argus_env: Path, tmp_path: Path) -> None:
    from argus.db import db_session
    from flows.batch import analyze_paths
    from tasks.resources import object_store

    _, surface_dir = write_demo_inputs(tmp_path / "inputs")
    bad = tmp_path / "bad"
    bad.mkdir()
    ct_file = sorted((tmp_path / "inputs" / "ct-study").glob("*.dcm"))[0]
    (bad / "truncated.dcm").write_bytes(ct_file.read_bytes()[:-20_000])
    ds = pydicom.dcmread(ct_file)
    del ds.PixelData
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(bad / "no-pixels.dcm")
    (bad / "notes.dcm").write_text("this is a text file, not DICOM\n")
    ultrasound = pydicom.dcmread(ct_file)
    ultrasound.Modality = "US"
    ultrasound.StudyInstanceUID = pydicom.uid.generate_uid()
    ultrasound.save_as(tmp_path / "ultrasound.dcm")
    empty = tmp_path / "empty"
    empty.mkdir()
    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.zeros((1, 1), np.uint8))

    outcome = analyze_paths(
        [str(bad), str(empty), str(tiny), str(tmp_path / "ultrasound.dcm"), str(surface_dir)]
    )
    reasons = {Path(e.path).name: e.reason for e in outcome.errors}
    # A folder in which nothing loads is reported itself too, besides each of its files.
    expected = {"truncated.dcm", "no-pixels.dcm", "notes.dcm", "bad", "empty", "tiny.png", "ultrasound.dcm"}
    assert set(reasons) == expected
    assert "no images" in reasons["bad"]
    assert "pixel data" in reasons["truncated.dcm"]
    assert "no pixel data" in reasons["no-pixels.dcm"]
    assert "not a DICOM file" in reasons["notes.dcm"]
    assert "no images" in reasons["empty"]
    assert "too small" in reasons["tiny.png"]
    assert "modality US" in reasons["ultrasound.dcm"] and "not supported" in reasons["ultrasound.dcm"]
    assert len(outcome.run_ids) == 1  # the good image set was still analyzed
    store = object_store()
    with db_session() as session:
        runs = session.scalars(select(Run)).all()
        assert [r.status for r in runs] == ["completed"]
        rejected = session.scalars(select(AuditEvent).where(AuditEvent.action == "rejected")).all()
        assert {Path(e.object_id).name for e in rejected} == set(reasons)
        assert all(e.outcome == "failure" and e.details["reason"] for e in rejected)
        quarantined = {
            Path(e.details["path"]).name: e.details["quarantine_key"]
            for e in rejected
            if "quarantine_key" in e.details
        }
        assert set(quarantined) == expected - {"bad", "empty"}
        assert store.get_bytes(quarantined["notes.dcm"]) == (bad / "notes.dcm").read_bytes()
        # Nothing of the rejected inputs made it into results.
        assert not [k for k in store.list("studies/") if k.endswith(("truncated.dcm", "notes.dcm"))]


def _break_segmenter(patch: pytest.MonkeyPatch) -> None:
    from models.segmenter import Segmenter

    def broken(self, image, boxes):  # the GPU section dies before anything was stored
        raise RuntimeError("CUDA error: device-side assert (injected)")

    patch.setattr(Segmenter, "segment", broken)


def _break_database_write(patch: pytest.MonkeyPatch) -> None:
    import tasks.persist

    def broken(session, **kwargs):  # masks, overlays and reports are already in the store by now
        raise RuntimeError("connection to the database lost (injected)")

    patch.setattr(tasks.persist, "save_results", broken)


@pytest.mark.parametrize("inject", [_break_segmenter, _break_database_write], ids=["segment", "persist"])
def test_failure_mid_run_leaves_nothing_and_rerun_resumes(
    argus_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inject
) -> None:
    from argus.db import db_session
    from flows.batch import analyze_paths
    from tasks.resources import object_store

    _, surface_dir = write_demo_inputs(tmp_path / "inputs")
    store = object_store()
    with monkeypatch.context() as patch:
        inject(patch)
        failed = analyze_paths([str(surface_dir)])
    assert failed.run_ids == [] and "injected" in failed.errors[0].reason
    with db_session() as session:
        run = session.scalars(select(Run)).one()
        run_id, study_uid = run.id, run.study.study_uid
        assert run.status == "failed" and "injected" in (run.error or "") and run.attempt == 1
        assert session.scalar(select(func.count()).select_from(Finding)) == 0
        assert session.scalar(select(func.count()).select_from(Artifact)) == 0
        actions = session.scalars(select(AuditEvent.action)).all()
        assert actions.count("run_failed") == 1 and actions.count("analysis_failed") == 1
        assert "stored" not in actions
    assert store.list(f"studies/{study_uid}/runs/") == []
    assert store.list(f"studies/{study_uid}/inputs/")  # what was received is kept

    resumed = analyze_paths([str(surface_dir)])
    assert resumed.run_ids == [run_id] and resumed.errors == []
    with db_session() as session:
        run = session.get(Run, run_id)
        assert run is not None and run.status == "completed" and run.attempt == 2
        findings = session.scalars(select(Finding).where(Finding.run_id == run_id)).all()
        assert findings and sorted(f.index for f in findings) == list(range(1, len(findings) + 1))
        artifacts = session.scalars(select(Artifact).where(Artifact.run_id == run_id)).all()
        assert len({a.key for a in artifacts}) == len(artifacts)
        assert all(store.exists(a.key) for a in artifacts)
    # The second attempt wrote under its own prefix; nothing of the first is left.
    run_keys = store.list(f"studies/{study_uid}/runs/")
    assert run_keys and all(k.startswith(f"studies/{study_uid}/runs/{run_id}/attempt-2/") for k in run_keys)
    with db_session() as session:
        stored = session.scalars(select(AuditEvent).where(AuditEvent.action == "stored")).all()
        assert len(stored) == len([a for a in artifacts if a.kind != "input"])


def test_an_identical_run_in_progress_is_not_started_twice(argus_env: Path, tmp_path: Path) -> None:
    from argus.db import db_session
    from flows.batch import analyze_paths
    from storage.schema import Run as RunRow

    _, surface_dir = write_demo_inputs(tmp_path / "inputs")
    first = analyze_paths([str(surface_dir)])
    with db_session() as session:
        # Make the completed run look like one still being analyzed by another worker.
        run = session.get(RunRow, first.run_ids[0])
        run.status = "running"
        run.heartbeat_at = utcnow()
    second = analyze_paths([str(surface_dir)])
    assert second.run_ids == []
    assert "already being analyzed" in second.errors[0].reason


def test_a_study_missing_an_unreadable_slice_is_reported_incomplete(argus_env: Path, tmp_path: Path) -> None:
    from argus.db import db_session
    from argus.results import study_result
    from flows.batch import analyze_paths

    ct_dir, _ = write_demo_inputs(tmp_path / "inputs")
    broken = ct_dir / "slice-004.dcm"
    broken.write_bytes(broken.read_bytes()[:-30_000])
    outcome = analyze_paths([str(ct_dir)])
    assert [Path(e.path).name for e in outcome.errors] == ["slice-004.dcm"]
    with db_session() as session:
        (result,) = [study_result(session, rid) for rid in outcome.run_ids]
    report = result["report"]
    assert result["findings"], "the demo CT has lesions on the readable slices"
    assert report["impression"].startswith("INCOMPLETE: 1 limitation(s)")
    assert report["limitations"] == [f"slice-004.dcm not analyzed: {outcome.errors[0].reason}"]
    assert "Limitations:\n- slice-004.dcm not analyzed" in report["text"]
    # Slices keep the scanner's numbering: nothing is renumbered into the gap.
    assert all(f["slice"] != 4 and f["image"] == f"slice-{f['slice']:03d}.dcm" for f in result["findings"])


def test_an_unreadable_part_photo_marks_its_folder_incomplete(argus_env: Path, tmp_path: Path) -> None:
    from argus.db import db_session
    from argus.results import study_result
    from flows.batch import analyze_paths

    _, surface_dir = write_demo_inputs(tmp_path / "inputs")
    (surface_dir / "part-05.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    outcome = analyze_paths([str(surface_dir)])
    assert [Path(e.path).name for e in outcome.errors] == ["part-05.png"]
    with db_session() as session:
        (result,) = [study_result(session, rid) for rid in outcome.run_ids]
    (note,) = result["report"]["limitations"]
    assert note.startswith("part-05.png in the same folder not analyzed: cannot read image")
    assert result["report"]["impression"].startswith("INCOMPLETE")


def test_localizer_and_reformat_series_are_not_fed_to_the_axial_models(
    argus_env: Path, tmp_path: Path
) -> None:
    from argus.db import db_session
    from argus.results import study_result
    from flows.batch import analyze_paths

    ct_dir, _ = write_demo_inputs(tmp_path / "inputs")
    slices = sorted(ct_dir.glob("*.dcm"))
    scout = pydicom.dcmread(slices[0])
    scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    coronal = pydicom.dcmread(slices[1])
    coronal.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    for ds, name in ((scout, "scout.dcm"), (coronal, "coronal.dcm")):
        ds.SeriesInstanceUID = pydicom.uid.generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(ct_dir / name)
    outcome = analyze_paths([str(ct_dir)])
    reasons = {Path(e.path).name: e.reason for e in outcome.errors}
    assert set(reasons) == {"scout.dcm", "coronal.dcm"}
    assert "is a localizer" in reasons["scout.dcm"]
    assert "is coronal, not axial" in reasons["coronal.dcm"]
    with db_session() as session:
        (result,) = [study_result(session, rid) for rid in outcome.run_ids]
    # The 8 axial slices were analyzed; the skipped series are the report's limitations.
    assert sum(a["kind"] == "input" for a in result["artifacts"]) == 8
    assert sorted(result["report"]["limitations"]) == sorted(
        f"series not analyzed: {r}" for r in reasons.values()
    )
