"""The training entry points, shrunk to seconds: real ultralytics and MONAI training on generated data."""

from pathlib import Path

import pytest

from models.detector import load_detector
from models.registry import read_card, resolve_weights, sha256_file
from models.segmenter import UNetConfig, load_segmenter
from models.train import dice_score, train_detector, train_segmenter

pytestmark = pytest.mark.slow


def test_detector_training_writes_loadable_weights_and_a_true_card(tmp_path: Path) -> None:
    out = tmp_path / "det.pt"
    card = train_detector("industrial", tmp_path / "work", epochs=1, n_train=8, n_val=4, output=out)
    assert card.sha256 == sha256_file(out) and card.size_bytes == out.stat().st_size
    assert card.class_names == ["scratch", "dent", "crack"]
    assert 0.0 <= card.metrics["map50"] <= 1.0 and set(card.metrics["per_class_ap50"]) <= set(
        card.class_names
    )
    assert card.training["epochs"] == 1 and card.training["train_images"] == 8
    assert read_card(out) == card and out.with_suffix(".md").read_text().startswith(
        "# argus-industrial-detector"
    )
    ref = resolve_weights("detector", "industrial", out)
    detector = load_detector(ref.path, ref.sha256, "cpu", 256)
    assert detector.class_names == ("scratch", "dent", "crack")


def test_segmenter_training_learns_and_records_held_out_dice(tmp_path: Path) -> None:
    out = tmp_path / "unet.pt"
    config = UNetConfig(channels=(8, 16, 32), strides=(2, 2), num_res_units=1, roi_size=32)
    card = train_segmenter("medical", steps=60, n_train=40, n_val=20, config=config, output=out)
    # Even 60 steps beat "all background" (Dice 0) by a wide margin on the held-out crops.
    assert card.metrics["dice"] > 0.5
    assert card.training["held_out_rois"] > 0 and card.sha256 == sha256_file(out)
    segmenter = load_segmenter(out, card.sha256, "cpu")
    assert segmenter.config == config


def test_dice_score_known_cases() -> None:
    import numpy as np

    a = np.zeros((4, 4), bool)
    b = a.copy()
    assert dice_score(a, b) == 1.0  # both empty
    b[0, 0] = True
    assert dice_score(a, b) == 0.0
    a[0, :2] = True
    assert dice_score(a, b) == pytest.approx(2 * 1 / 3)
