"""The training entry points, shrunk to seconds: real ultralytics and MONAI training on generated data."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from models.detector import load_detector
from models.registry import WEIGHTS_DIR, read_card, resolve_weights, sha256_file
from models.segmenter import DeepLabV3PlusConfig, SegmenterConfig, UNetConfig, load_segmenter
from models.synthetic import samples_for
from models.train import train_detector, train_segmenter

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("arch", "version"), [("yolo11n", 1), ("yolo12n", 2)])
def test_detector_training_writes_loadable_weights_and_a_true_card(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arch: str, version: int
) -> None:
    out = tmp_path / "det.pt"
    work = tmp_path / "work"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    threads = torch.get_num_threads()
    card = train_detector(
        "industrial", work, epochs=1, n_train=8, n_val=4, arch=arch, generator_version=version, output=out
    )
    # ultralytics would have trained on cpu_count - 1 threads and left the process there.
    assert card.training["torch_threads"] == threads == torch.get_num_threads()
    assert card.sha256 == sha256_file(out) and card.size_bytes == out.stat().st_size
    assert card.class_names == ["scratch", "dent", "crack"]
    # Our mAP50 on the held-out split, with ultralytics' own val as a cross-check beside it.
    assert 0.0 <= card.metrics["map50"] <= 1.0 and list(card.metrics["per_class"]) == card.class_names
    assert card.metrics["images"] == 4 and 0.0 <= card.metrics["ultralytics_val"]["map50"] <= 1.0
    assert card.training["epochs"] == 1 and card.training["train_images"] == 8
    # The card names the architecture and the generator version of its data, which is what was exported.
    assert card.training["arch"] == arch and card.architecture.startswith(f"ultralytics {arch.upper()}")
    assert card.generator_version == version and f"version={version}" in card.training["generator"]
    exported = cv2.imread(
        str(work / "industrial_data" / "images" / "train" / "00000.png"), cv2.IMREAD_UNCHANGED
    )
    assert np.array_equal(exported, samples_for("industrial", 0, 1, version=version)[0].image)
    assert read_card(out) == card and out.with_suffix(".md").read_text().startswith(
        "# argus-industrial-detector"
    )
    ref = resolve_weights("detector", "industrial", out)
    detector = load_detector(ref.path, ref.sha256, "cpu")
    assert detector.class_names == ("scratch", "dent", "crack")
    assert detector.image_size == card.input["imgsz"] == 256  # the domain's side, read from the weights
    assert not any(cwd.iterdir()), "ultralytics wrote runs into the working directory"


@pytest.mark.parametrize(
    "config",
    [
        UNetConfig(channels=(8, 16, 32), strides=(2, 2), num_res_units=1, roi_size=32),
        DeepLabV3PlusConfig(encoder="tu-mobilenetv3_small_050", decoder_channels=32, roi_size=32),
    ],
    ids=["unet", "deeplabv3plus"],
)
def test_segmenter_training_learns_and_records_held_out_dice(tmp_path: Path, config: SegmenterConfig) -> None:
    out = tmp_path / f"{config.arch}.pt"
    card = train_segmenter("medical", steps=60, n_train=40, n_val=20, config=config, output=out)
    # Even 60 steps beat "all background" (Dice 0) by a wide margin on the held-out crops.
    assert card.metrics["dice"] > 0.5
    assert card.training["held_out_rois"] > 0 and card.sha256 == sha256_file(out)
    assert card.name == f"argus-medical-{config.arch}"
    # The arch argument only matters for bare state dicts: the checkpoint names its own.
    segmenter = load_segmenter(out, card.sha256, "cpu", "unet")
    assert segmenter.config == config


def test_unknown_detector_architecture_or_generator_fails_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown detector architecture 'yolov8n'"):
        train_detector("industrial", tmp_path, arch="yolov8n")
    with pytest.raises(ValueError, match="unknown generator version 9"):
        train_detector("industrial", tmp_path, generator_version=9)
    with pytest.raises(ValueError, match="image size 300 must be a multiple of 32"):
        train_detector("industrial", tmp_path, image_size=300)
    with pytest.raises(ValueError, match=r"learning rate 2\.0 must be between 0 and 1"):
        train_detector("industrial", tmp_path, learning_rate=2.0)
    assert not any(tmp_path.iterdir())


def test_fine_tuning_starts_from_the_checkpoint_and_the_card_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    source = WEIGHTS_DIR / "industrial_detector.pt"
    out = tmp_path / "fine-tuned.pt"
    card = train_detector(
        "industrial",
        tmp_path / "work",
        epochs=1,
        n_train=8,
        n_val=8,
        output=out,
        start_from=source,
        image_size=320,
        learning_rate=0.0005,
    )
    assert card.training["start_from_sha256"] == sha256_file(source)
    # Trained at 320 px (upsampled 256 px images): the weights say so and inference follows them.
    tuned = load_detector(out, sha256_file(out), "cpu")
    assert card.input["imgsz"] == 320 and tuned.image_size == 320
    # The rate given, not ultralytics' automatic one: the card and the checkpoint's train args agree.
    train_args = torch.load(out, map_location="cpu", weights_only=False)["train_args"]
    assert card.training["optimizer"] == train_args["optimizer"] == "AdamW"
    assert card.training["lr0"] == train_args["lr0"] == 0.0005
    assert "fine-tuned from industrial_detector.pt" in card.architecture
    # The weights moved from the checkpoint's, not from a random start (their kernels' cosine is ~0).
    assert _cosine(_flat_weights(out), _flat_weights(source)) > 0.9


def _flat_weights(path: Path) -> torch.Tensor:
    model = load_detector(path, sha256_file(path), "cpu", 256).model.model
    # Kernels only: batch-norm scales start at 1 in any model and would make all models look alike.
    return torch.cat([p.detach().float().flatten() for p in model.parameters() if p.dim() > 1])


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def test_a_start_checkpoint_of_other_classes_or_architecture_fails_before_any_work(tmp_path: Path) -> None:
    industrial = WEIGHTS_DIR / "industrial_detector.pt"
    with pytest.raises(ValueError, match=r"detects \['scratch', 'dent', 'crack'\], not \['lesion'\]"):
        train_detector("medical", tmp_path, start_from=industrial)
    with pytest.raises(ValueError, match="is a yolo11n model, not yolo12n"):
        train_detector("industrial", tmp_path, arch="yolo12n", start_from=industrial)
    exported = tmp_path.parent / f"{tmp_path.name}-industrial.onnx"
    exported.write_bytes(b"an ONNX graph")  # refused by its kind, before anything reads it
    with pytest.raises(ValueError, match=r"is an exported detector .* needs a YOLO \.pt"):
        train_detector("industrial", tmp_path, start_from=exported)
    assert not any(tmp_path.iterdir())
