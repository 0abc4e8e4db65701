"""Segment task: U-Net masks for each finding on each of its slices, stored as PNGs, with measurements."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import numpy as np
from prefect import task

from models.volumes import SliceGeometry, measure_volume
from storage.object_store import put_content
from storage.schema import utcnow
from tasks import resources
from tasks.arrays import encode_png, fetch_frames
from tasks.gpu import gpu_slot
from tasks.records import MODEL_TASK_OPTIONS, record_stage_done, renew_lease
from tasks.types import (
    FrameRef,
    LoadedStudy,
    ObjectRef,
    PlannedFinding,
    RunHandle,
    SegmentedFinding,
    SliceMask,
)


def measure(mask: np.ndarray, frame: FrameRef) -> tuple[float, float | None, float | None, float | None]:
    """Area in px and, where the frame has a pixel spacing, area in mm² and extent in mm."""
    area_px = float(mask.sum())
    if frame.pixel_spacing_mm is None:
        return area_px, None, None, None
    if area_px == 0:
        return 0.0, 0.0, None, None
    row_mm, col_mm = frame.pixel_spacing_mm
    ys, xs = np.nonzero(mask)
    width_mm = float(xs.max() - xs.min() + 1) * col_mm
    height_mm = float(ys.max() - ys.min() + 1) * row_mm
    return area_px, round(area_px * row_mm * col_mm, 2), round(width_mm, 2), round(height_mm, 2)


@task(name="segment", timeout_seconds=1800, **MODEL_TASK_OPTIONS)
def segment(study: LoadedStudy, run: RunHandle, planned: list[PlannedFinding]) -> list[SegmentedFinding]:
    """Segment every finding on each of its slices (inside its box), store one mask PNG per slice, measure."""
    started = utcnow()
    renew_lease(run)
    frames = fetch_frames(study.frames_archive) if planned else []
    model = resources.segmenter(study.domain)
    # All boxes of one frame in one call, whichever findings they belong to.
    by_frame: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for p, plan in enumerate(planned):
        for s, item in enumerate(plan.slices):
            by_frame[item.frame].append((p, s))
    masks: dict[tuple[int, int], np.ndarray] = {}
    # One GPU slot for the whole study: acquiring costs a server round trip each time.
    with gpu_slot():
        renew_lease(run)  # the wait for the GPU may have been long
        for frame_index in sorted(by_frame):
            slots = by_frame[frame_index]
            boxes = [planned[p].slices[s].box for p, s in slots]
            masks.update(zip(slots, model.segment(frames[frame_index], boxes), strict=True))
    results = [
        _measured(study, run, p + 1, plan, [masks[(p, s)] for s in range(len(plan.slices))])
        for p, plan in enumerate(planned)
    ]
    record_stage_done(
        run,
        "segment",
        started,
        {
            "findings": len(results),
            "masks": sum(len(f.slices) for f in results),
            **resources.model_identity("segmenter", study.domain),
        },
    )
    return results


def _measured(
    study: LoadedStudy, run: RunHandle, index: int, plan: PlannedFinding, masks: list[np.ndarray]
) -> SegmentedFinding:
    """Store a finding's masks (one PNG per slice); measure each slice, its extent and a lesion's volume."""
    store = resources.object_store()
    slices = []
    for item, mask in zip(plan.slices, masks, strict=True):
        frame = study.frames[item.frame]
        name = (
            f"finding-{index:03d}-slice-{frame.slice_number:03d}" if plan.volume else f"finding-{index:03d}"
        )
        stored = put_content(store, f"{run.prefix}/masks", f"{name}.png", encode_png(mask), "image/png")
        area_px, area_mm2, _, _ = measure(mask, frame)
        ref = ObjectRef(stored.key, stored.sha256, stored.size, stored.content_type)
        slices.append(SliceMask(item.frame, item.box, item.detected, ref, area_px, area_mm2))
    # Key slice: the largest section the detector saw (a bridged slice is never the one to look at).
    key = max((s for s in slices if s.detected), key=lambda s: s.area_px)
    key_frame = study.frames[key.frame]
    _, _, width_mm, height_mm = measure(np.logical_or.reduce(masks), key_frame)
    flat = SegmentedFinding(
        index=index,
        frame=key.frame,
        label=plan.label,
        score=plan.score,
        box=key.box,
        mask=key.mask,
        area_px=key.area_px,
        area_mm2=key.area_mm2,
        width_mm=width_mm,
        height_mm=height_mm,
        slices=tuple(slices),
    )
    if not plan.volume:
        return flat
    areas = [s.area_mm2 for s in slices]
    known = None if any(a is None for a in areas) else [float(a or 0.0) for a in areas]
    size = measure_volume(0, known, len(slices), SliceGeometry(plan.slabs_mm, plan.geometry_note))
    numbers = [study.frames[s.frame].slice_number for s in slices]
    note = plan.geometry_note
    if key_frame.pixel_spacing_mm is None:
        note = "; ".join(filter(None, [note, "pixel spacing missing: sizes in pixels, no volume"]))
    return replace(
        flat,
        box=(
            min(s.box[0] for s in slices),
            min(s.box[1] for s in slices),
            max(s.box[2] for s in slices),
            max(s.box[3] for s in slices),
        ),
        volume=True,
        slice_range=(min(numbers), max(numbers)),
        depth_mm=size.depth_mm,
        volume_mm3=size.volume_mm3,
        geometry_note=note,
    )
