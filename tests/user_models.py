"""Stand-ins for a user's own weights, written to a temporary folder (shared by model and flow tests)."""

from __future__ import annotations

from pathlib import Path

import torch

from models.registry import WEIGHTS_DIR
from models.reporter.tiny_vlm import TinyVlmConfig
from models.segmenter import SegmenterConfig, UNetConfig, build_network, save_segmenter

TINY_UNET = UNetConfig(channels=(8, 16, 32), strides=(2, 2), num_res_units=0, roi_size=32)
# A VLM small enough to build, train and generate with in seconds (its output is not meant to be good).
TINY_VLM = TinyVlmConfig(
    vision_hidden=32, vision_layers=1, text_hidden=32, text_layers=1, text_heads=2, text_intermediate=64
)
RENAMED = {0: "scuff", 1: "ding", 2: "fissure"}


def renamed_detector(path: Path) -> Path:
    """The shipped industrial YOLO re-saved with other class names: a user's detector with its own labels."""
    from models.offline import ultralytics_module

    model = ultralytics_module().YOLO(str(WEIGHTS_DIR / "industrial_detector.pt"), task="detect")
    model.model.names = dict(RENAMED)
    model.save(str(path))
    return path


def tiny_segmenter(path: Path, config: SegmenterConfig = TINY_UNET) -> Path:
    """A randomly initialized segmenter checkpoint of ``config``."""
    torch.manual_seed(0)
    save_segmenter(build_network(config), config, path, meta={})
    return path
