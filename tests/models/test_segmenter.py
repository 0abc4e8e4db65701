from pathlib import Path

import numpy as np
import pytest
import torch

from models.registry import WeightsError
from models.segmenter import UNetConfig, build_unet, load_segmenter, roi_window, save_segmenter

TINY = UNetConfig(channels=(8, 16, 32), strides=(2, 2), num_res_units=0, roi_size=32)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="strides"):
        UNetConfig(channels=(8, 16), strides=(2, 2))
    with pytest.raises(ValueError, match="divisible"):
        UNetConfig(channels=(8, 16, 32), strides=(2, 2), roi_size=30)
    with pytest.raises(ValueError, match="out_channels"):
        UNetConfig(out_channels=1)


def test_roi_window_is_square_with_context_and_clipped() -> None:
    assert roi_window((40, 40, 60, 50), (256, 256), 0.5) == (30, 25, 70, 65)
    x1, y1, x2, _ = roi_window((0, 0, 10, 10), (256, 256), 0.5)
    assert (x1, y1) == (0, 0) and x2 > 10


def test_tiny_unet_round_trip_and_masks_in_source_coordinates(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = build_unet(TINY)
    path = tmp_path / "tiny.pt"
    save_segmenter(net, TINY, path, meta={})
    seg = load_segmenter(path, "sha-a", "cpu")
    # Force "everything is foreground" so the paste-back geometry is what is tested.
    with torch.no_grad():
        for p in seg.net.parameters():
            p.zero_()
    seg.threshold = 0.0
    image = np.zeros((100, 120), np.uint8)
    masks = seg.segment(image, [(10, 20, 30, 40), (80, 60, 110, 95)])
    assert [m.shape for m in masks] == [(100, 120), (100, 120)]
    ys, xs = np.nonzero(masks[0])
    assert xs.min() >= 10 - 5 and xs.max() <= 30 + 5 and ys.min() >= 20 - 5 and ys.max() <= 40 + 5
    assert not masks[0][:, 60:].any()
    assert seg.segment(image, []) == []
    with pytest.raises(ValueError, match="2-D uint8"):
        seg.segment(image.astype(np.float32), [(0, 0, 4, 4)])


def test_foreign_or_corrupt_files_give_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "junk.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read segmenter weights"):
        load_segmenter(bad, "x", "cpu")
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    with pytest.raises(WeightsError, match="Argus U-Net checkpoint"):
        load_segmenter(plain, "y", "cpu")


@pytest.mark.parametrize("domain", ["medical", "industrial"])
def test_shipped_unets_segment_held_out_findings(domain: str) -> None:
    from models.registry import resolve_weights
    from models.synthetic import samples_for
    from models.train import HELD_OUT_OFFSET, dice_score, roi_pairs

    ref = resolve_weights("segmenter", domain)
    seg = load_segmenter(ref.path, ref.sha256, "cpu")
    rng = np.random.default_rng(3)
    # A split neither training (seed 0) nor the card's evaluation (seed 10 000) has seen.
    crops, truth = roi_pairs(samples_for(domain, HELD_OUT_OFFSET + 77, 40), seg.config, rng, jitter=0.08)
    probs = seg.predict(torch.from_numpy(crops))
    assert len(crops) >= 20
    assert dice_score(probs >= 0.5, truth[:, 0] == 1) >= 0.85
