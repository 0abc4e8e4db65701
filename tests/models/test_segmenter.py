from pathlib import Path

import numpy as np
import pytest
import torch

from models.segmenter import (
    DeepLabV3PlusConfig,
    SegmenterConfig,
    UNetConfig,
    build_network,
    load_segmenter,
    roi_window,
    save_segmenter,
)

TINY = UNetConfig(channels=(8, 16, 32), strides=(2, 2), num_res_units=0, roi_size=32)
TINY_DEEPLAB = DeepLabV3PlusConfig(encoder="tu-mobilenetv3_small_050", decoder_channels=16, roi_size=32)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="strides"):
        UNetConfig(channels=(8, 16), strides=(2, 2))
    with pytest.raises(ValueError, match="divisible"):
        UNetConfig(channels=(8, 16, 32), strides=(2, 2), roi_size=30)
    with pytest.raises(ValueError, match="out_channels"):
        UNetConfig(out_channels=1)
    with pytest.raises(ValueError, match="class names"):
        UNetConfig(out_channels=3)
    with pytest.raises(ValueError, match="encoder stride"):
        DeepLabV3PlusConfig(roi_size=60)
    with pytest.raises(ValueError, match="output_stride"):
        DeepLabV3PlusConfig(output_stride=32)
    with pytest.raises(ValueError, match="hub"):
        DeepLabV3PlusConfig(encoder="tu-hf-hub:someone/model")


def test_roi_window_is_square_with_context_and_clipped() -> None:
    assert roi_window((40, 40, 60, 50), (256, 256), 0.5) == (30, 25, 70, 65)
    x1, y1, x2, _ = roi_window((0, 0, 10, 10), (256, 256), 0.5)
    assert (x1, y1) == (0, 0) and x2 > 10


@pytest.mark.parametrize("config", [TINY, TINY_DEEPLAB], ids=["unet", "deeplabv3plus"])
def test_tiny_model_round_trip_and_masks_in_source_coordinates(
    tmp_path: Path, config: SegmenterConfig
) -> None:
    torch.manual_seed(0)
    net = build_network(config)
    path = tmp_path / "tiny.pt"
    save_segmenter(net, config, path, meta={})
    seg = load_segmenter(path, f"sha-{config.arch}", "cpu")
    assert seg.config == config and type(seg.net) is type(net)
    # The same weights: the rebuilt network computes what the saved one did.
    probe = torch.rand(2, 1, config.roi_size, config.roi_size)
    net.eval()
    with torch.no_grad():
        assert torch.allclose(seg.net(probe), net(probe), atol=1e-5)
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


def test_deeplab_is_built_without_any_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Caches pointed at empty folders and every connection attempt recorded (and refused): building
    # the default DeepLabV3+ must touch neither.
    import socket

    for var in ("TORCH_HOME", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var))
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise ConnectionRefusedError(f"no network in this test: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    net = build_network(DeepLabV3PlusConfig())
    assert attempts == []
    assert not any(tmp_path.rglob("*")), "something was written to a download cache"
    # Light: under 1.5 M parameters, a ~4 MB float32 checkpoint.
    assert sum(p.numel() for p in net.parameters()) < 1_500_000


@pytest.mark.parametrize("arch", ["unet", pytest.param("deeplabv3plus", marks=pytest.mark.slow)])
@pytest.mark.parametrize("domain", ["medical", "industrial"])
def test_shipped_segmenters_segment_held_out_findings(domain: str, arch: str) -> None:
    from models.evaluation import dice_score, roi_pairs
    from models.registry import resolve_weights
    from models.synthetic import HELD_OUT_OFFSET, samples_for

    ref = resolve_weights("segmenter", domain, arch=arch)
    seg = load_segmenter(ref.path, ref.sha256, "cpu")
    assert seg.config.arch == arch
    rng = np.random.default_rng(3)
    # A split neither training (seed 0) nor the card's evaluation (seed 10 000) has seen.
    rois = roi_pairs(samples_for(domain, HELD_OUT_OFFSET + 77, 40), seg.config, rng, jitter=0.08)
    probs = seg.predict(torch.from_numpy(rois.images))
    assert len(rois.images) >= 20
    target = 0.85 if arch == "unet" else 0.80
    assert dice_score(probs >= 0.5, rois.masks[:, 0] == 1) >= target
