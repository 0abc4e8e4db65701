"""Link task: per-slice detections of each CT/MR series become lesions; other detections stay 2-D."""

from __future__ import annotations

from collections import defaultdict

from prefect import task
from prefect.cache_policies import NO_CACHE

from models.volumes import SliceDetection, link_detections, order_slices
from tasks.types import LoadedStudy, Localization, PlannedFinding, SliceBox

# Modalities whose series are stacks of parallel slices through one body: a volume.
VOLUME_MODALITIES = ("CT", "MR")


def plan_findings(study: LoadedStudy, found: list[Localization]) -> list[PlannedFinding]:
    """The findings to segment: one per lesion in each volume series, one per detection elsewhere.

    A series is a volume when the study is CT/MR DICOM and the series has several slices; plain
    images and single-slice series keep one 2-D finding per detection. Order: series as loaded, then
    lesions by first slice (2-D findings by frame).
    """
    frames_of: dict[str, list[int]] = defaultdict(list)
    for frame in study.frames:
        frames_of[frame.series_uid].append(frame.index)
    by_frame: dict[int, list[Localization]] = defaultdict(list)
    for loc in found:
        by_frame[loc.frame].append(loc)
    plans: list[PlannedFinding] = []
    for frame_ids in frames_of.values():
        if study.kind != "dicom" or study.modality not in VOLUME_MODALITIES or len(frame_ids) < 2:
            plans += [
                PlannedFinding(loc.label, loc.score, (SliceBox(loc.frame, loc.box, True),), volume=False)
                for i in frame_ids
                for loc in by_frame[i]
            ]
            continue
        order, geometry = order_slices([study.frames[i].slice_position_mm for i in frame_ids])
        frame_at = [frame_ids[k] for k in order]  # ordinal (position order) -> frame index
        detections = [
            SliceDetection(slice=ordinal, label=loc.label, score=loc.score, box=loc.box)
            for ordinal, i in enumerate(frame_at)
            for loc in by_frame[i]
        ]
        for lesion in link_detections(detections):
            slabs = geometry.slabs_mm
            plans.append(
                PlannedFinding(
                    label=lesion.label,
                    score=lesion.score,
                    slices=tuple(
                        SliceBox(frame_at[s.slice], s.box, s.detection is not None) for s in lesion.slices()
                    ),
                    volume=True,
                    slabs_mm=None if slabs is None else slabs[lesion.first : lesion.last + 1],
                    geometry_note=geometry.note,
                )
            )
    return plans


@task(name="link", cache_policy=NO_CACHE)  # CPU only and deterministic: no GPU tag, nothing to retry
def link(study: LoadedStudy, found: list[Localization]) -> list[PlannedFinding]:
    """Group the detections into findings: lesions across the slices of each volume, else one per box."""
    return plan_findings(study, found)
