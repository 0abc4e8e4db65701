"""ROI segmentation of detected regions: crop around each box, segment, paste back.

Two architectures behind one ``Segmenter``: a MONAI U-Net and an smp DeepLabV3+ with a light encoder.
A checkpoint stores its architecture and config, so ``load_segmenter`` rebuilds either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

import cv2
import numpy as np
import torch

from models.registry import WeightsError, require_torch_archive

SegmenterArch = Literal["unet", "deeplabv3plus"]
BACKGROUND_AND_FINDING = ("background", "finding")


@dataclass(frozen=True)
class UNetConfig:
    """Arguments of the 2-D MONAI U-Net plus the ROI geometry it was trained with."""

    arch: ClassVar[SegmenterArch] = "unet"
    architecture: ClassVar[str] = "monai.networks.nets.UNet"

    in_channels: int = 1
    out_channels: int = 2
    channels: tuple[int, ...] = (16, 32, 64, 128)
    strides: tuple[int, ...] = (2, 2, 2)
    num_res_units: int = 2
    roi_size: int = 64
    margin: float = 0.3  # context around the box, as a fraction of its larger side
    class_names: tuple[str, ...] = BACKGROUND_AND_FINDING

    def __post_init__(self) -> None:
        if len(self.strides) != len(self.channels) - 1:
            raise ValueError(
                f"U-Net needs len(strides) == len(channels) - 1, got {self.strides} and {self.channels}"
            )
        if self.roi_size % int(np.prod(self.strides)) != 0:
            raise ValueError(f"roi_size {self.roi_size} must be divisible by prod(strides) {self.strides}")
        _check_classes(self.out_channels, self.class_names)


@dataclass(frozen=True)
class DeepLabV3PlusConfig:
    """Arguments of smp's DeepLabV3+ (never pretrained: no download) plus its ROI geometry.

    The default encoder, timm's MobileNetV3-small cut after 4 stages with output stride 8, keeps the
    checkpoint near 4 MB and still sees the finding at 8x8 resolution in a 64 px ROI.
    """

    arch: ClassVar[SegmenterArch] = "deeplabv3plus"
    architecture: ClassVar[str] = "segmentation_models_pytorch.DeepLabV3Plus"

    in_channels: int = 1
    out_channels: int = 2
    encoder: str = "tu-mobilenetv3_small_100"
    encoder_depth: int = 4
    output_stride: int = 8
    decoder_channels: int = 64
    roi_size: int = 64
    margin: float = 0.3
    class_names: tuple[str, ...] = BACKGROUND_AND_FINDING

    def __post_init__(self) -> None:
        # timm resolves "hf-hub:" / "hf_hub:" names on the Hugging Face hub even without pretrained weights.
        if "hub" in self.encoder or ":" in self.encoder:
            raise ValueError(
                f"encoder {self.encoder!r} would be fetched from a hub; use a local architecture"
            )
        if self.encoder_depth not in (3, 4, 5) or self.output_stride not in (8, 16):
            raise ValueError(
                f"DeepLabV3+ needs encoder_depth 3-5 and output_stride 8 or 16, "
                f"got {self.encoder_depth} and {self.output_stride}"
            )
        stride = min(2**self.encoder_depth, self.output_stride)
        if self.roi_size % stride != 0:
            raise ValueError(f"roi_size {self.roi_size} must be divisible by the encoder stride {stride}")
        _check_classes(self.out_channels, self.class_names)


SegmenterConfig = UNetConfig | DeepLabV3PlusConfig
CONFIGS: dict[str, type[UNetConfig] | type[DeepLabV3PlusConfig]] = {
    UNetConfig.arch: UNetConfig,
    DeepLabV3PlusConfig.arch: DeepLabV3PlusConfig,
}


def _check_classes(out_channels: int, class_names: tuple[str, ...]) -> None:
    if out_channels < 2:
        raise ValueError("out_channels must be >= 2 (background + foreground, softmax)")
    if len(class_names) != out_channels:
        raise ValueError(f"{out_channels} output channels but {len(class_names)} class names {class_names}")


def config_for(arch: str, **overrides: Any) -> SegmenterConfig:
    """The (default or overridden) config of an architecture, with a clear error for an unknown name."""
    try:
        cls = CONFIGS[arch]
    except KeyError:
        raise ValueError(
            f"unknown segmenter architecture {arch!r}; expected one of {sorted(CONFIGS)}"
        ) from None
    return cls(**overrides)


def build_network(config: SegmenterConfig) -> torch.nn.Module:
    """A fresh, untrained network from a validated config."""
    if isinstance(config, UNetConfig):
        from monai.networks.nets import UNet

        return UNet(
            spatial_dims=2,
            in_channels=config.in_channels,
            out_channels=config.out_channels,
            channels=config.channels,
            strides=config.strides,
            num_res_units=config.num_res_units,
        )
    import segmentation_models_pytorch as smp

    return smp.DeepLabV3Plus(
        encoder_name=config.encoder,
        encoder_weights=None,  # random init: any pretrained weights would be a download
        encoder_depth=config.encoder_depth,
        encoder_output_stride=config.output_stride,
        decoder_channels=config.decoder_channels,
        in_channels=config.in_channels,
        classes=config.out_channels,
    )


def roi_window(box: Sequence[float], shape: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    """Square crop window (x1, y1, x2, y2) around a box with context, clipped to the image."""
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    side = max(side, 8.0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    h, w = shape
    wx1, wy1 = max(0, int(np.floor(cx - side / 2))), max(0, int(np.floor(cy - side / 2)))
    wx2, wy2 = min(w, int(np.ceil(cx + side / 2))), min(h, int(np.ceil(cy + side / 2)))
    return wx1, wy1, wx2, wy2


def crop_roi(image: np.ndarray, window: tuple[int, int, int, int], roi_size: int) -> np.ndarray:
    """Crop a window from a uint8 image and resize it to ``roi_size`` square, as float32 0..1."""
    x1, y1, x2, y2 = window
    crop = image[y1:y2, x1:x2]
    resized = cv2.resize(crop, (roi_size, roi_size), interpolation=cv2.INTER_LINEAR)
    return resized.astype(np.float32) / 255.0


def save_segmenter(net: torch.nn.Module, config: SegmenterConfig, path: Path, meta: dict[str, Any]) -> None:
    """Save weights with the architecture and config needed to rebuild the network."""
    payload = {"architecture": config.architecture, "config": asdict(config), "meta": meta}
    payload["state_dict"] = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch.save(payload, path)


@dataclass
class Segmenter:
    """Adapter: ``pre_process`` crops ROIs, ``predict`` runs the network, ``post_process`` pastes masks."""

    net: torch.nn.Module
    config: SegmenterConfig
    device: str
    threshold: float = 0.5
    _batch_limit: int = field(default=64, repr=False)

    def pre_process(
        self, image: np.ndarray, boxes: Sequence[Sequence[float]]
    ) -> tuple[torch.Tensor, list[tuple[int, int, int, int]]]:
        """ROI crops of the boxes as a (N, C, R, R) tensor, plus their windows."""
        windows = [roi_window(b, image.shape[:2], self.config.margin) for b in boxes]
        crops = np.stack([crop_roi(image, w, self.config.roi_size) for w in windows])[:, None]
        if self.config.in_channels > 1:  # a user network trained on RGB: gray replicated
            crops = np.repeat(crops, self.config.in_channels, axis=1)
        return torch.from_numpy(crops), windows

    @torch.inference_mode()
    def predict(self, batch: torch.Tensor) -> np.ndarray:
        """Foreground probability maps (N, R, R): 1 - P(background), so multi-class networks work too."""
        outs = []
        for start in range(0, len(batch), self._batch_limit):
            logits = self.net(batch[start : start + self._batch_limit].to(self.device))
            outs.append((1.0 - torch.softmax(logits, dim=1)[:, 0]).float().cpu().numpy())
        return np.concatenate(outs)

    def post_process(
        self,
        probs: np.ndarray,
        windows: list[tuple[int, int, int, int]],
        boxes: Sequence[Sequence[float]],
        shape: tuple[int, int],
    ) -> list[np.ndarray]:
        """Full-size boolean masks: each ROI map resized back and kept inside its (padded) box."""
        masks = []
        for prob, (x1, y1, x2, y2), box in zip(probs, windows, boxes, strict=True):
            full = np.zeros(shape, dtype=bool)
            resized = cv2.resize(prob, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
            full[y1:y2, x1:x2] = resized >= self.threshold
            # A finding's mask may not stray far from its detection box.
            bx1, by1, bx2, by2 = box
            pad = 0.15 * max(bx2 - bx1, by2 - by1) + 2
            keep = np.zeros(shape, dtype=bool)
            keep[
                max(0, int(by1 - pad)) : int(np.ceil(by2 + pad)),
                max(0, int(bx1 - pad)) : int(np.ceil(bx2 + pad)),
            ] = True
            masks.append(full & keep)
        return masks

    def segment(self, image: np.ndarray, boxes: Sequence[Sequence[float]]) -> list[np.ndarray]:
        """Masks (bool, image-sized) for each box on a uint8 2-D image."""
        if image.ndim != 2 or image.dtype != np.uint8:
            raise ValueError(f"segmenter expects a 2-D uint8 image, got {image.dtype} {image.shape}")
        if len(boxes) == 0:
            return []
        batch, windows = self.pre_process(image, boxes)
        return self.post_process(self.predict(batch), windows, boxes, image.shape[:2])


def _is_state_dict(value: Any) -> bool:
    return (
        isinstance(value, dict) and bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())
    )


def _config_from_payload(payload: dict[str, Any], source: Path, arch: str) -> SegmenterConfig:
    """The stored config of an Argus checkpoint, or ``arch``'s default one for a bare state dict."""
    if "config" not in payload:
        return config_for(arch)
    by_name = {cls.architecture: cls for cls in CONFIGS.values()}
    cls = by_name.get(str(payload.get("architecture", UNetConfig.architecture)))
    if cls is None:
        raise WeightsError(
            f"segmenter checkpoint {source} has architecture {payload.get('architecture')!r}; "
            f"supported: {sorted(by_name)}"
        )
    raw = payload["config"]
    cfg: dict[str, Any] = {}
    if isinstance(raw, dict):
        cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    try:
        return cls(**cfg)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"segmenter checkpoint {source} has an invalid {cls.arch} config: {exc}") from exc


def segmenter_from_payload(payload: Any, device: str, source: Path, arch: str = "unet") -> Segmenter:
    """Rebuild a segmenter from a loaded file: an Argus checkpoint (architecture + config + state
    dict), or a bare state dict (or ``{"state_dict": ...}``) of ``arch`` with its default config.
    Errors name ``source``."""
    state: Any = (
        payload.get("state_dict") if isinstance(payload, dict) and "state_dict" in payload else payload
    )
    if not _is_state_dict(state):
        keys = sorted(map(str, payload))[:6] if isinstance(payload, dict) else type(payload).__name__
        raise WeightsError(
            f"{source} is not a segmentation checkpoint: expected an Argus segmenter checkpoint "
            f"(architecture, config, state_dict) or a torch state dict, found {keys}"
        )
    config = _config_from_payload(payload, source, arch)
    try:
        net = build_network(config)
    except Exception as exc:  # smp/timm raise KeyError, ValueError... for an unknown encoder
        raise WeightsError(f"cannot build the {config.arch} that {source} describes: {exc}") from exc
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        detail = "; ".join(str(exc).splitlines()[1:4]).strip() or str(exc)
        raise WeightsError(
            f"segmenter weights {source} do not fit a {config.arch} with config {asdict(config)}: {detail}"
        ) from exc
    net.to(device).eval()
    return Segmenter(net=net, config=config, device=device)


def read_checkpoint(path: Path) -> Any:
    """``torch.load`` without code execution, with errors that say what the file is instead."""
    require_torch_archive(path, "segmenter")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if "ultralytics" in str(exc):
            raise WeightsError(
                f"{path} is an ultralytics YOLO checkpoint (a detector), not a segmenter"
            ) from exc
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"cannot read segmenter weights {path}: {first}") from exc


@lru_cache(maxsize=8)
def load_segmenter(path: Path, sha256: str, device: str, arch: str = "unet") -> Segmenter:
    """Load (once per path, content hash and device) a segmenter; ``arch`` applies to bare state dicts."""
    return segmenter_from_payload(read_checkpoint(path), device, path, arch)
