"""`argus evaluate` and the model options of `argus analyze`, as a user runs them (subprocesses)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import run_argus

pytestmark = pytest.mark.slow


def test_evaluate_json_has_the_documented_shape(tmp_path: Path) -> None:
    args = ["evaluate", "--domain", "industrial", "--images", "12", "--reporter-studies", "2", "--json"]
    done = run_argus(args, tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    detector = report["detector"]
    assert 0.0 <= detector["map50"] <= 1.0 and detector["images"] == 12
    low, high = detector["map50_ci95"]  # the bootstrap interval over the 12 images
    assert 0.0 <= low <= high <= 1.0 and all(len(c["ap50_ci95"]) == 2 for c in detector["per_class"].values())
    assert list(detector["per_class"]) == ["scratch", "dent", "crack"]
    assert sum(c["instances"] for c in detector["per_class"].values()) == detector["instances"] > 0
    for c in detector["per_class"].values():  # every instance in one size band; found <= instances
        bands = c["by_size"].values()
        assert sum(b["instances"] for b in bands) == c["instances"]
        assert sum(b["found_at_operating_confidence"] for b in bands) == c["found_at_operating_confidence"]
        assert all(b["found_at_operating_confidence"] <= b["found"] <= b["instances"] for b in bands)
    assert len(detector["weights_sha256"]) == 64
    assert set(report["segmenters"]) == {"unet", "deeplabv3plus"}
    for arch, seg in report["segmenters"].items():
        assert seg["architecture"] == arch and 0.0 <= seg["dice"] <= 1.0
        assert set(seg["per_class"]) <= {"scratch", "dent", "crack"}
    reporter = report["reporter"]  # our own VLM on 2 held-out studies, as production decodes
    assert reporter["studies"] == 2 and reporter["decoding"] == "guided" and reporter["well_formed"] == 1.0
    assert {"no_contradiction", "count_agrees", "class_agrees", "size_band_agrees"} <= set(reporter)
    # The held-out splits are regenerated from their seeds: the same numbers every time (timings aside).
    again = json.loads(run_argus(args, tmp_path).stdout)
    timings = ("seconds_per_study_median", "tokens_per_second")
    assert {k: v for k, v in again["reporter"].items() if k not in timings} == {
        k: v for k, v in reporter.items() if k not in timings
    }
    assert again["detector"] == report["detector"] and again["segmenters"] == report["segmenters"]
    skipped = run_argus(
        ["evaluate", "--domain", "industrial", "--images", "2", "--reporter-studies", "0", "--json"], tmp_path
    )
    assert "reporter" not in json.loads(skipped.stdout)


def test_analyze_refuses_a_wrong_model_file_before_running(tmp_path: Path) -> None:
    notes = tmp_path / "notes.pt"
    notes.write_text("not weights")
    image = tmp_path / "part.png"
    image.write_bytes(b"")  # never read: the model check comes first
    without_domain = run_argus(["analyze", str(image), "--detector", str(notes)], tmp_path / "data")
    assert without_domain.returncode == 2 and "need --domain" in without_domain.stderr
    args = ["analyze", str(image), "--domain", "industrial", "--segmenter", str(notes)]
    wrong = run_argus(args, tmp_path / "d")
    assert wrong.returncode == 2
    # rich wraps at the terminal width, anywhere in a long path: compare without the line breaks
    assert "unusable model" in wrong.stderr and str(notes) in "".join(wrong.stderr.split())
    assert "not a torch checkpoint" in " ".join(wrong.stderr.split())
    assert not (tmp_path / "d" / "argus.db").exists()  # nothing ran


def test_training_a_reporter_further_refuses_a_wrong_directory_before_any_work(tmp_path: Path) -> None:
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    wrong = run_argus(["train", "reporter", "--domain", "medical", "--from", str(empty)], tmp_path / "d")
    assert wrong.returncode == 2 and "has no config.json" in " ".join(wrong.stderr.split())
    shipped = str(Path(__file__).resolve().parents[1] / "models" / "weights" / "medical_reporter")
    args = ["train", "reporter", "--domain", "medical", "--from", shipped, "--output", shipped]
    onto_itself = run_argus(args, tmp_path / "d")
    assert onto_itself.returncode == 2
    assert "both the model to train further and the output" in " ".join(onto_itself.stderr.split())
