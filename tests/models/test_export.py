"""Detector export to ONNX and TorchScript: the exported file reproduces the original's detections, has
a card that verifies it, loads like any detector weights, and a wrong or unrunnable file is refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from cli_runner import run_argus
from user_models import RENAMED, renamed_detector

from argus.demo_data import write_demo_inputs
from models.detector import load_detector
from models.export import ExportError, compare_detections, export_detector
from models.offline import ultralytics_module
from models.registry import WEIGHTS_DIR, WeightsError, read_card, resolve_weights, sha256_file
from models.synthetic import samples_for
from models.types import Detection


def _det(box: tuple[float, float, float, float], score: float = 0.8, class_id: int = 0) -> Detection:
    return Detection(label="scratch", class_id=class_id, score=score, box=box)


def test_identical_detections_are_faithful() -> None:
    dets = [[_det((10, 10, 50, 30)), _det((60, 60, 90, 100), 0.4, 1)], []]
    check = compare_detections(dets, dets)
    assert (check.images, check.detections, check.mismatched_images) == (2, 2, 0)
    assert check.min_iou == 1.0 and check.max_score_diff == 0.0 and check.faithful


@pytest.mark.parametrize(
    ("exported", "broken"),
    [
        ([[_det((14, 10, 54, 30))]], "min_iou"),  # the box moved 4 px: IoU 0.82
        ([[_det((10, 10, 50, 30), 0.75)]], "max_score_diff"),
        ([[_det((10, 10, 50, 30)), _det((100, 100, 120, 120))]], "mismatched_images"),
        ([[_det((10, 10, 50, 30), class_id=2)]], "min_iou"),  # same box, other class: no partner
    ],
    ids=["moved", "rescored", "extra", "relabelled"],
)
def test_an_export_that_changes_detections_is_not_faithful(
    exported: list[list[Detection]], broken: str
) -> None:
    check = compare_detections([[_det((10, 10, 50, 30))]], exported)
    assert not check.faithful
    faithful = compare_detections([[_det((10, 10, 50, 30))]], [[_det((10, 10, 50, 30))]])
    assert getattr(check, broken) != getattr(faithful, broken)


def test_unknown_format_or_wrong_suffix_fails_before_any_work(tmp_path: Path) -> None:
    weights = WEIGHTS_DIR / "industrial_detector.pt"
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        export_detector(weights, "tflite", tmp_path / "x.tflite", domain="industrial")
    with pytest.raises(ValueError, match=r"must be named \*\.onnx"):
        export_detector(weights, "onnx", tmp_path / "x.pt", domain="industrial")
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_reproduces_the_shipped_detector_and_loads_as_user_weights(tmp_path: Path, fmt: str) -> None:
    source = WEIGHTS_DIR / "industrial_detector.pt"
    before = sha256_file(source)
    out = tmp_path / f"industrial.{fmt}"
    threads = torch.get_num_threads()
    load_detector.cache_clear()  # a cache that is not full, so an extra entry shows
    card = export_detector(source, fmt, out, domain="industrial", check_images=8)
    assert load_detector.cache_info().currsize == 1, "the temporary export holds a cache slot"
    # ultralytics' device selection (export, an exported model's first use) must not leave torch at 1 thread.
    assert torch.get_num_threads() == threads
    assert sha256_file(source) == before, "the shipped weights were touched"
    assert (
        read_card(out) == card and card.sha256 == sha256_file(out) and card.size_bytes == out.stat().st_size
    )
    assert card.version.endswith(f"+{fmt}") and card.input["format"] == fmt
    assert card.training["exported_from_sha256"] == before
    assert card.metrics["export_check"]["images"] == 8 and card.metrics["export_check"]["detections"] > 0
    # The card verifies the file like a shipped one, and the model runs with its own class names.
    ref = resolve_weights("detector", "industrial", out)
    assert (ref.name, ref.version) == ("argus-industrial-detector", card.version)
    exported = load_detector(ref.path, ref.sha256, "cpu")
    # Class names and input size come from the export's own metadata, as from a checkpoint.
    original = load_detector(source, before, "cpu")
    assert exported.class_names == ("scratch", "dent", "crack")
    assert exported.image_size == original.image_size == card.input["imgsz"]
    images = [s.image for s in samples_for("industrial", 31337, 6, version=2)]
    for batch_size in (1, 4):  # ONNX is exported with a dynamic batch; TorchScript traced at 1
        check = compare_detections(
            original.detect(images, batch_size=batch_size), exported.detect(images, batch_size=batch_size)
        )
        assert check.faithful, check


@pytest.mark.slow
def test_a_user_detector_export_keeps_its_class_names(tmp_path: Path) -> None:
    source = renamed_detector(tmp_path / "factory-yolo.pt")
    card = export_detector(
        source, "onnx", tmp_path / "factory-yolo.onnx", domain="industrial", check_images=4
    )
    assert (card.name, card.version, card.domain) == ("factory-yolo", "user+onnx", "industrial")
    assert card.class_names == list(RENAMED.values())
    exported = tmp_path / "factory-yolo.onnx"
    assert load_detector(exported, sha256_file(exported), "cpu", 256).class_names == tuple(RENAMED.values())


def test_a_corrupt_or_unrunnable_export_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07not an onnx graph")
    with pytest.raises(WeightsError, match=r"cannot load detector weights .*broken\.onnx"):
        load_detector(broken, sha256_file(broken), "cpu", 256)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # fault injection: the runtime is not installed
    with pytest.raises(WeightsError, match="needs onnxruntime"):
        load_detector(broken, "other-hash", "cpu", 256)


def test_a_failed_export_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> str:
        raise RuntimeError("unsupported operator")  # fault injection: the exporter fails

    model_class = ultralytics_module().engine.model.Model
    monkeypatch.setattr(model_class, "export", refuse)
    with pytest.raises(ExportError, match=r"cannot export .* to onnx: unsupported operator"):
        export_detector(WEIGHTS_DIR / "medical_detector.pt", "onnx", tmp_path / "m.onnx", domain="medical")
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_cli_export_then_analyze_with_the_exported_detector(tmp_path: Path) -> None:
    out = tmp_path / "exports" / "medical.onnx"
    done = run_argus(["export", "--domain", "medical", "--output", str(out)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "same detections as medical_detector.pt" in " ".join(done.stdout.split())
    card = read_card(out)
    assert card is not None and card.sha256 == sha256_file(out)
    ct_series, _ = write_demo_inputs(tmp_path / "inputs")
    analyzed = run_argus(
        ["analyze", "--json", "--domain", "medical", "--detector", str(out), str(ct_series)], tmp_path
    )
    assert analyzed.returncode == 0, analyzed.stderr
    (result,) = json.loads(analyzed.stdout)["results"]
    assert result["status"] == "completed" and result["findings"]
    assert result["models"][0] == {
        "kind": "detector",
        "name": "argus-medical-detector",
        "version": card.version,
        "sha256": card.sha256,
    }
    wrong = run_argus(["export", "--domain", "medical", "--output", str(tmp_path / "m.bin")], tmp_path)
    assert wrong.returncode == 2 and "must be named *.onnx" in " ".join(wrong.stderr.split())
