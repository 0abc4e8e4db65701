"""MONAI U-Net segmentation of detected regions: crop around each box, segment, paste back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from monai.networks.nets import UNet

from models.registry import WeightsError

ARCHITECTURE = "monai.networks.nets.UNet"


@dataclass(frozen=True)
class UNetConfig:
    """Arguments of the 2-D U-Net plus the ROI geometry it was trained with."""

    in_channels: int = 1
    out_channels: int = 2
    channels: tuple[int, ...] = (16, 32, 64, 128)
    strides: tuple[int, ...] = (2, 2, 2)
    num_res_units: int = 2
    roi_size: int = 64
    margin: float = 0.3  # context around the box, as a fraction of its larger side

    def __post_init__(self) -> None:
        if len(self.strides) != len(self.channels) - 1:
            raise ValueError(
                f"U-Net needs len(strides) == len(channels) - 1, got {self.strides} and {self.channels}"
            )
        if self.roi_size % int(np.prod(self.strides)) != 0:
            raise ValueError(f"roi_size {self.roi_size} must be divisible by prod(strides) {self.strides}")
        if self.out_channels < 2:
            raise ValueError("out_channels must be >= 2 (background + foreground, softmax)")


def build_unet(config: UNetConfig) -> torch.nn.Module:
    """A fresh MONAI U-Net from a validated config."""
    return UNet(
        spatial_dims=2,
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        channels=config.channels,
        strides=config.strides,
        num_res_units=config.num_res_units,
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


def save_segmenter(net: torch.nn.Module, config: UNetConfig, path: Path, meta: dict[str, Any]) -> None:
    """Save weights with the config needed to rebuild the network."""
    payload = {"architecture": ARCHITECTURE, "config": asdict(config), "meta": meta}
    payload["state_dict"] = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch.save(payload, path)


@dataclass
class Segmenter:
    """Adapter: ``pre_process`` crops ROIs, ``predict`` runs the U-Net, ``post_process`` pastes masks."""

    net: torch.nn.Module
    config: UNetConfig
    device: str
    threshold: float = 0.5
    _batch_limit: int = field(default=64, repr=False)

    def pre_process(
        self, image: np.ndarray, boxes: Sequence[Sequence[float]]
    ) -> tuple[torch.Tensor, list[tuple[int, int, int, int]]]:
        """ROI crops of the boxes as a (N, 1, R, R) tensor, plus their windows."""
        windows = [roi_window(b, image.shape[:2], self.config.margin) for b in boxes]
        crops = np.stack([crop_roi(image, w, self.config.roi_size) for w in windows])[:, None]
        return torch.from_numpy(crops), windows

    @torch.inference_mode()
    def predict(self, batch: torch.Tensor) -> np.ndarray:
        """Foreground probability maps (N, R, R)."""
        outs = []
        for start in range(0, len(batch), self._batch_limit):
            logits = self.net(batch[start : start + self._batch_limit].to(self.device))
            outs.append(torch.softmax(logits, dim=1)[:, 1].float().cpu().numpy())
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


def segmenter_from_payload(payload: Any, device: str) -> Segmenter:
    """Rebuild a segmenter from a saved payload dict, with clear errors for foreign files."""
    if not isinstance(payload, dict) or "state_dict" not in payload or "config" not in payload:
        raise WeightsError(
            "segmenter weights must be an Argus U-Net checkpoint with 'config' and 'state_dict'"
        )
    cfg: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in payload["config"].items()}
    try:
        config = UNetConfig(**cfg)
    except TypeError as exc:
        raise WeightsError(f"segmenter config is not a U-Net config: {exc}") from exc
    net = build_unet(config)
    try:
        net.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise WeightsError(f"segmenter state dict does not fit its config: {exc}") from exc
    net.to(device).eval()
    return Segmenter(net=net, config=config, device=device)


@lru_cache(maxsize=8)
def load_segmenter(path: Path, sha256: str, device: str) -> Segmenter:
    """Load (once per path, content hash and device) a U-Net segmenter from a checkpoint file."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"cannot read segmenter weights {path}: {exc}") from exc
    return segmenter_from_payload(payload, device)
