"""YOLO detection adapter; the only module that imports ultralytics (AGPL-3.0 boundary)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.boxes import box_intersection, box_iou
from models.offline import ultralytics_module
from models.registry import WeightsError, require_torch_archive
from models.types import Detection

# Tasks whose results carry axis-aligned boxes (instance segmentation models detect too).
DETECTING_TASKS = ("detect", "segment")
# Export formats (models.export) → the file suffix ultralytics gives them; an exported detector runs
# through ultralytics' inference backend, for prediction only.
EXPORT_FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript"}


def _yolo_class() -> Any:
    # Imported lazily and offline: ultralytics reads its environment at import time.
    return ultralytics_module().YOLO


def suppress_nested(
    detections: list[Detection], max_overlap: float = 0.7, min_iou: float = 0.3
) -> list[Detection]:
    """Drop a same-class box mostly inside a higher-scoring one that it also overlaps as a whole.

    IoU-based NMS keeps a small box nested in a large one (their IoU is low), which would count one
    lesion or defect twice in the report; overlap is measured against the smaller box instead. A box
    that covers under ``min_iou`` of the larger one (IoU) is kept: a duplicate of a finding overlaps it
    far more than a second, small lesion lying inside the first one's box does.
    """
    kept: list[Detection] = []
    for det in sorted(detections, key=lambda d: -d.score):
        area = det.width * det.height
        nested = False
        for other in kept:
            if other.class_id != det.class_id:
                continue
            smaller = min(area, other.width * other.height)
            if (
                smaller > 0
                and box_intersection(det.box, other.box) / smaller >= max_overlap
                and box_iou(det.box, other.box) >= min_iou
            ):
                nested = True
                break
        if not nested:
            kept.append(det)
    return kept


class _UltralyticsThreadSetting:
    """ultralytics' thread setting, patched while any ``keep_torch_threads`` block is open.

    Blocks overlap when Prefect runs tasks in worker threads: the setting is saved by the first
    block to open and put back by the last to close, so no block restores another's patch.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = 0
        self._saved: int | None = None

    def open(self, threads: int) -> None:
        torch_utils = ultralytics_module().utils.torch_utils
        with self._lock:
            if self._open == 0:
                self._saved = torch_utils.NUM_THREADS
            self._open += 1
            torch_utils.NUM_THREADS = threads

    def close(self) -> None:
        torch_utils = ultralytics_module().utils.torch_utils
        with self._lock:
            self._open -= 1
            if self._open == 0:
                torch_utils.NUM_THREADS = self._saved


_THREAD_SETTING = _UltralyticsThreadSetting()


@contextmanager
def keep_torch_threads() -> Iterator[None]:
    """Keep torch's thread count through ultralytics' calls in the block.

    Its device selection (in predict, export, train, val) sets torch's process-wide thread count to
    cpu_count - 1: 1 on a 2-core worker, 40 % fewer images/s there, half the machine idle while
    training, and every model after it slowed too. In the block it selects the process's own
    setting (torch's default, or OMP_NUM_THREADS), which the process also gets back afterwards.
    """
    threads = torch.get_num_threads()
    _THREAD_SETTING.open(threads)
    try:
        yield
    finally:
        _THREAD_SETTING.close()
        torch.set_num_threads(threads)


@dataclass
class Detector:
    """Adapter around an ultralytics model: uint8 2-D images in, source-pixel detections out."""

    model: Any
    device: str
    image_size: int
    class_names: tuple[str, ...]

    def pre_process(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Gray uint8 → 3-channel arrays (the layout standard YOLO weights expect)."""
        out = []
        for img in images:
            if img.dtype != np.uint8 or img.ndim != 2:
                raise ValueError(f"detector expects 2-D uint8 images, got {img.dtype} {img.shape}")
            out.append(np.repeat(img[:, :, None], 3, axis=2))
        return out

    def predict(self, batch: list[np.ndarray], confidence: float, iou: float) -> list[Any]:
        """Raw ultralytics results for one batch."""
        with keep_torch_threads():
            return list(
                self.model.predict(
                    batch,
                    imgsz=self.image_size,
                    conf=confidence,
                    iou=iou,
                    device=self.device,
                    half=self.device == "cuda",
                    verbose=False,
                )
            )

    def post_process(self, results: list[Any], nested: bool = True) -> list[list[Detection]]:
        """Results → detections in source pixels (ultralytics already rescales boxes); ``nested``
        drops same-class boxes inside better ones (off: the raw YOLO output, to compare with its val)."""
        out: list[list[Detection]] = []
        for res in results:
            boxes = res.boxes
            xyxy = boxes.xyxy.cpu().numpy() if len(boxes) else np.zeros((0, 4))
            scores = boxes.conf.cpu().numpy() if len(boxes) else np.zeros(0)
            classes = boxes.cls.cpu().numpy().astype(int) if len(boxes) else np.zeros(0, int)
            dets = [
                Detection(
                    label=self.class_names[c] if c < len(self.class_names) else str(c),
                    class_id=int(c),
                    score=round(float(s), 4),
                    box=(
                        round(float(b[0]), 1),
                        round(float(b[1]), 1),
                        round(float(b[2]), 1),
                        round(float(b[3]), 1),
                    ),
                )
                for b, s, c in zip(xyxy, scores, classes, strict=True)
            ]
            out.append(suppress_nested(dets) if nested else dets)
        return out

    def detect(
        self,
        images: Sequence[np.ndarray],
        confidence: float = 0.25,
        iou: float = 0.5,
        batch_size: int = 8,
        nested: bool = True,
    ) -> list[list[Detection]]:
        """Detections for each image, batched through the network (``nested``: see post_process)."""
        prepared = self.pre_process(images)
        out: list[list[Detection]] = []
        for start in range(0, len(prepared), batch_size):
            raw = self.predict(prepared[start : start + batch_size], confidence, iou)
            out.extend(self.post_process(raw, nested))
        return out


def _require_export_runtime(path: Path) -> None:
    """A clear error when the runtime of an exported detector is not installed."""
    if path.suffix == EXPORT_FORMATS["onnx"]:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            raise WeightsError(
                f"{path} is an ONNX detector; running it needs onnxruntime "
                "(pip install 'argus-imaging[onnx]')"
            ) from exc


def _refuse_plain_torch_files(path: Path) -> None:
    """A YOLO checkpoint pickles ultralytics classes, so a file torch loads without them is not one."""
    require_torch_archive(path, "detector")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return  # it needs code beyond plain tensors: ultralytics' loader decides
    what = (
        "an Argus segmenter checkpoint"
        if isinstance(payload, dict) and "config" in payload
        else "a plain torch file (a state dict?)"
    )
    raise WeightsError(f"{path} is {what}, not an ultralytics YOLO detector checkpoint")


@lru_cache(maxsize=8)
def load_detector(path: Path, sha256: str, device: str, image_size: int | None = None) -> Detector:
    """Load (once per path, content hash and device) a YOLO model from a local ``.pt`` file.

    Class names are the model's own (``model.names``), so user weights bring their labels; so is the
    input size unless ``image_size`` is given: the size the weights were trained at (a 640 px COCO-style
    model keeps 640). An exported ``.onnx`` or ``.torchscript`` file (``argus export``) loads too,
    for inference.
    """
    exported = path.suffix in EXPORT_FORMATS.values()
    if exported:
        _require_export_runtime(path)
    else:
        _refuse_plain_torch_files(path)
    try:
        model = _yolo_class()(str(path), task="detect")
    except Exception as exc:
        raise WeightsError(f"cannot load detector weights {path}: {exc}") from exc
    if model.task not in DETECTING_TASKS:
        raise WeightsError(
            f"{path} is an ultralytics {model.task!r} model; Argus needs boxes from a "
            f"{' or '.join(DETECTING_TASKS)} model"
        )
    try:
        names, trained_size = _names_and_size(model, path, exported)
    except Exception as exc:
        raise WeightsError(f"cannot load detector weights {path}: {exc}") from exc
    class_names = tuple(names[i] for i in sorted(names)) if isinstance(names, dict) else tuple(names)
    if not exported:  # an exported model is placed on the device by predict(device=...)
        model.to(device)
    size = image_size or _square_side(trained_size, path)
    return Detector(model=model, device=device, image_size=size, class_names=class_names)


def _names_and_size(model: Any, path: Path, exported: bool) -> tuple[Any, Any]:
    """Class names and training image size a model records: a checkpoint in its train args, an
    exported file in its metadata (read by the runtime ultralytics would predict with)."""
    if not exported:
        return model.names, model.overrides.get("imgsz")
    import ultralytics.nn.autobackend as autobackend  # ultralytics is imported offline by now

    with keep_torch_threads():  # building a backend runs ultralytics' device selection
        backend = autobackend.AutoBackend(str(path), device=torch.device("cpu"), verbose=False)
    return backend.names, backend.metadata.get("imgsz")


def _square_side(size: Any, path: Path) -> int:
    if isinstance(size, (list, tuple)):
        size = max(size)  # [h, w] of an export; letterboxing pads to a square of the longer side
    if not isinstance(size, int) or size < 32:
        raise WeightsError(f"{path} does not record the image size it was trained at ({size!r}); give one")
    return size
