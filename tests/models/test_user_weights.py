"""User weights by local path: class names from the weights, sha256 pins, and a clear error naming the
file for every kind of wrong file. Tiny models are written to tmp_path; no shipped weights are changed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from user_models import RENAMED, TINY_UNET, renamed_detector, tiny_segmenter

from models.detector import load_detector
from models.registry import WEIGHTS_DIR, WeightsError, resolve_weights, sha256_file
from models.segmenter import DeepLabV3PlusConfig, UNetConfig, build_network, load_segmenter
from models.synthetic import samples_for


def test_a_user_yolo_brings_its_own_class_names(tmp_path: Path) -> None:
    path = renamed_detector(tmp_path / "my-yolo.pt")
    ref = resolve_weights("detector", "industrial", path)
    assert (ref.name, ref.version, ref.sha256) == ("my-yolo.pt", "user", sha256_file(path))
    assert ref.class_names == ()  # no card: the loaded model's names apply
    detector = load_detector(ref.path, ref.sha256, "cpu", 256)
    assert detector.class_names == ("scuff", "ding", "fissure")
    samples = [s for s in samples_for("industrial", 4242, 12) if s.masks]
    labels = {d.label for dets in detector.detect([s.image for s in samples]) for d in dets}
    assert labels and labels <= set(RENAMED.values())


def test_a_user_segmenter_brings_its_config_and_class_names(tmp_path: Path) -> None:
    config = DeepLabV3PlusConfig(
        encoder="tu-mobilenetv3_small_050", roi_size=32, out_channels=3, class_names=("bg", "rust", "pit")
    )
    path = tiny_segmenter(tmp_path / "mine.pt", config)
    seg = load_segmenter(path, sha256_file(path), "cpu", "unet")  # the checkpoint's own arch wins
    assert seg.config == config and seg.config.class_names == ("bg", "rust", "pit")
    # Several foreground classes still give one finding mask: everything that is not background.
    masks = seg.segment(np.full((64, 64), 128, np.uint8), [(10, 10, 30, 30)])
    assert masks[0].shape == (64, 64)


def test_a_bare_state_dict_loads_as_the_selected_architecture(tmp_path: Path) -> None:
    net = build_network(UNetConfig())
    path = tmp_path / "state_dict.pt"
    torch.save(net.state_dict(), path)
    seg = load_segmenter(path, "sd", "cpu", "unet")
    assert seg.config == UNetConfig()
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, wrapped)
    assert load_segmenter(wrapped, "wr", "cpu", "unet").config == UNetConfig()
    # The same U-Net tensors read as a DeepLabV3+ do not fit: the error names the file and the arch.
    with pytest.raises(WeightsError, match=rf"{path}.*do not fit a deeplabv3plus"):
        load_segmenter(path, "sd", "cpu", "deeplabv3plus")


def test_sha256_pin_refuses_other_weights(tmp_path: Path) -> None:
    path = tiny_segmenter(tmp_path / "pinned.pt")
    digest = sha256_file(path)
    assert resolve_weights("segmenter", "medical", path, pinned_sha256=digest.upper()).sha256 == digest
    with pytest.raises(WeightsError, match=rf"{path} have sha256 {digest}, not the pinned 0{{64}}"):
        resolve_weights("segmenter", "medical", path, pinned_sha256="0" * 64)
    # Shipped weights are pinned the same way.
    with pytest.raises(WeightsError, match="not the pinned"):
        resolve_weights("detector", "medical", pinned_sha256="f" * 64)


def test_settings_reject_a_malformed_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from argus.settings import Settings

    monkeypatch.setenv("ARGUS_MEDICAL_DETECTOR_SHA256", "abc123")
    with pytest.raises(ValidationError, match="64 hex digits"):
        Settings()


def _assert_refused(cases: dict[Path, str], load: Callable[[Path], object]) -> None:
    """Each file is refused with its expected message, and the message names the file."""
    for path, message in cases.items():
        with pytest.raises(WeightsError, match=message) as caught:
            load(path)
        assert str(path) in str(caught.value)


def _truncated(source: Path, target: Path) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def test_wrong_files_for_the_segmenter_name_the_file(tmp_path: Path) -> None:
    junk = tmp_path / "notes.pt"
    junk.write_text("not a checkpoint")
    truncated = _truncated(tiny_segmenter(tmp_path / "full.pt"), tmp_path / "half.pt")
    detector = renamed_detector(tmp_path / "yolo.pt")
    not_a_state_dict = tmp_path / "numbers.pt"
    torch.save({"epoch": 3, "lr": 0.1}, not_a_state_dict)
    mismatched = tmp_path / "mismatched.pt"
    torch.save(
        {
            "architecture": "monai.networks.nets.UNet",
            "config": {"channels": [16, 32, 64, 128], "strides": [2, 2, 2]},
            "state_dict": build_network(TINY_UNET).state_dict(),  # other channel counts
        },
        mismatched,
    )
    foreign_arch = tmp_path / "foreign.pt"
    torch.save(
        {"architecture": "mylab.FancyNet", "config": {}, "state_dict": {"w": torch.zeros(1)}}, foreign_arch
    )
    cases = {
        junk: "not a torch checkpoint",
        truncated: "not a torch checkpoint",
        detector: "is an ultralytics YOLO checkpoint \\(a detector\\), not a segmenter",
        not_a_state_dict: "is not a segmentation checkpoint",
        mismatched: "do not fit a unet with config",
        foreign_arch: "has architecture 'mylab.FancyNet'",
    }
    _assert_refused(cases, lambda path: load_segmenter(path, sha256_file(path), "cpu", "unet"))


def test_wrong_files_for_the_detector_name_the_file(tmp_path: Path) -> None:
    junk = tmp_path / "notes.pt"
    junk.write_text("not a checkpoint")
    truncated = _truncated(WEIGHTS_DIR / "industrial_detector.pt", tmp_path / "half.pt")
    segmenter = tiny_segmenter(tmp_path / "unet.pt")
    state_dict = tmp_path / "sd.pt"
    torch.save(build_network(TINY_UNET).state_dict(), state_dict)
    from models.offline import ultralytics_module

    classifier = tmp_path / "cls.pt"
    ultralytics_module().YOLO("yolo11n-cls.yaml").save(str(classifier))
    cases = {
        junk: "not a torch checkpoint",
        truncated: "not a torch checkpoint",
        segmenter: "is an Argus segmenter checkpoint, not an ultralytics YOLO detector",
        state_dict: "is a plain torch file",
        classifier: "is an ultralytics 'classify' model",
    }
    _assert_refused(cases, lambda path: load_detector(path, sha256_file(path), "cpu", 256))
