"""Detect task: YOLO localization over every frame of a study, batched."""

from __future__ import annotations

from prefect import task

from argus.settings import get_settings
from storage.schema import utcnow
from tasks import resources
from tasks.arrays import fetch_frames
from tasks.gpu import gpu_slot
from tasks.records import MODEL_TASK_OPTIONS, record_stage_done, renew_lease
from tasks.types import LoadedStudy, Localization, RunHandle


@task(name="detect", timeout_seconds=1800, **MODEL_TASK_OPTIONS)
def detect(study: LoadedStudy, run: RunHandle) -> list[Localization]:
    """Localize lesions or defects on each frame; boxes in source pixels."""
    started = utcnow()
    renew_lease(run)
    settings = get_settings()
    frames = fetch_frames(study.frames_archive)
    model = resources.detector(study.domain)
    with gpu_slot():
        renew_lease(run)  # the wait for the GPU may have been long
        per_frame = model.detect(
            frames,
            confidence=settings.detector_confidence,
            iou=settings.detector_iou,
            batch_size=settings.detector_batch,
        )
    found = [
        Localization(frame=i, label=d.label, class_id=d.class_id, score=d.score, box=d.box)
        for i, dets in enumerate(per_frame)
        for d in dets
    ]
    record_stage_done(
        run,
        "detect",
        started,
        {
            "frames": len(frames),
            "detections": len(found),
            "confidence": settings.detector_confidence,
            "iou": settings.detector_iou,
            **resources.model_identity("detector", study.domain),
        },
    )
    return found
