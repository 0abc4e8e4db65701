"""Segment task: U-Net masks for each localized finding, stored as PNGs, with measurements."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from prefect import task

from storage.object_store import put_content
from storage.schema import utcnow
from tasks import resources
from tasks.arrays import encode_png, fetch_frames
from tasks.gpu import gpu_slot
from tasks.records import MODEL_TASK_OPTIONS, record_stage_done, renew_lease
from tasks.types import FrameRef, LoadedStudy, Localization, ObjectRef, RunHandle, SegmentedFinding


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
def segment(study: LoadedStudy, run: RunHandle, found: list[Localization]) -> list[SegmentedFinding]:
    """Segment every detection inside its ROI and store one mask PNG per finding."""
    started = utcnow()
    renew_lease(run)
    frames = fetch_frames(study.frames_archive) if found else []
    model = resources.segmenter(study.domain)
    by_frame: dict[int, list[Localization]] = defaultdict(list)
    for loc in found:
        by_frame[loc.frame].append(loc)
    store = resources.object_store()
    order = sorted(by_frame)
    # One GPU slot for the whole study: acquiring costs a server round trip each time.
    with gpu_slot():
        renew_lease(run)  # the wait for the GPU may have been long
        masks_by_frame = {i: model.segment(frames[i], [loc.box for loc in by_frame[i]]) for i in order}
    results: list[SegmentedFinding] = []
    for frame_index in order:
        for loc, mask in zip(by_frame[frame_index], masks_by_frame[frame_index], strict=True):
            index = len(results) + 1
            stored = put_content(
                store, f"{run.prefix}/masks", f"finding-{index:03d}.png", encode_png(mask), "image/png"
            )
            area_px, area_mm2, width_mm, height_mm = measure(mask, study.frames[frame_index])
            results.append(
                SegmentedFinding(
                    index=index,
                    frame=frame_index,
                    label=loc.label,
                    score=loc.score,
                    box=loc.box,
                    mask=ObjectRef(stored.key, stored.sha256, stored.size, stored.content_type),
                    area_px=area_px,
                    area_mm2=area_mm2,
                    width_mm=width_mm,
                    height_mm=height_mm,
                )
            )
    record_stage_done(
        run,
        "segment",
        started,
        {"findings": len(results), **resources.model_identity("segmenter", study.domain)},
    )
    return results
