"""Persist task: overlays and report files to the store, then every row of the run in one transaction."""

from __future__ import annotations

import io
import json
from collections import defaultdict
from dataclasses import asdict
from typing import Any

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from argus.db import db_session
from argus.overlay import render_overlay
from models.domains import domain_spec
from models.reporter import Report
from storage.audit import record_event
from storage.object_store import put_content
from storage.repository import finish_run, record_stage, save_results
from storage.schema import utcnow
from tasks.arrays import decode_png, encode_png, fetch_frames
from tasks.records import audit_run, renew_lease, retryable
from tasks.resources import actor, object_store
from tasks.types import LoadedStudy, ObjectRef, RunHandle, SegmentedFinding, SliceMask


def _put(prefix: str, name: str, data: bytes, content_type: str, kind: str) -> tuple[str, ObjectRef]:
    stored = put_content(object_store(), prefix, name, data, content_type)
    return kind, ObjectRef(stored.key, stored.sha256, stored.size, stored.content_type)


def render_artifacts(
    study: LoadedStudy, run: RunHandle, findings: list[SegmentedFinding], report: Report
) -> list[tuple[str, ObjectRef]]:
    """Write overlays, the mask archive and the report files; return (kind, ref) for each."""
    written: list[tuple[str, ObjectRef]] = []
    # Overlays per frame: a lesion draws its box and mask on every slice it spans.
    by_frame: dict[int, list[tuple[SegmentedFinding, SliceMask]]] = defaultdict(list)
    for f in findings:
        for piece in f.slices:
            by_frame[piece.frame].append((f, piece))
    store = object_store()
    masks = {
        piece.mask.key: decode_png(store.get_bytes(piece.mask.key, expected_sha256=piece.mask.sha256)) > 0
        for f in findings
        for piece in f.slices
    }
    if findings:
        frames = fetch_frames(study.frames_archive)
        for frame_index, items in sorted(by_frame.items()):
            overlay = render_overlay(
                frames[frame_index],
                [piece.box for _, piece in items],
                [masks[piece.mask.key] for _, piece in items],
                [f"#{f.index} {f.label} {f.score:.2f}" for f, _ in items],
                [_class_index(study, f.label) for f, _ in items],
            )
            name = f"overlay-frame-{frame_index + 1:03d}.png"
            written.append(_put(f"{run.prefix}/overlays", name, encode_png(overlay), "image/png", "overlay"))
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **mask_archive(study, findings, masks))  # type: ignore[arg-type]
        written.append(
            _put(f"{run.prefix}/masks", "masks.npz", buffer.getvalue(), "application/x-npz", "masks_npz")
        )
    written.append(
        _put(
            f"{run.prefix}/report",
            "report.json",
            report.model_dump_json(indent=2).encode(),
            "application/json",
            "report_json",
        )
    )
    markdown = f"# {report.title}\n\n```\n{report.text}\n```\n\n_{report.disclaimer}_\n"
    written.append(_put(f"{run.prefix}/report", "report.md", markdown.encode(), "text/markdown", "report_md"))
    return written


def mask_archive(
    study: LoadedStudy, findings: list[SegmentedFinding], masks: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Arrays of masks.npz by finding: ``finding_NNN`` is a 2-D mask, or for a lesion in a volume a
    (slices, H, W) stack in position order with its slice numbers in ``finding_NNN_slices``."""
    arrays: dict[str, np.ndarray] = {}
    for f in findings:
        name = f"finding_{f.index:03d}"
        if not f.volume:
            arrays[name] = masks[f.mask.key]
            continue
        arrays[name] = np.stack([masks[piece.mask.key] for piece in f.slices])
        arrays[f"{name}_slices"] = np.array([study.frames[piece.frame].slice_number for piece in f.slices])
    return arrays


def finding_row(study: LoadedStudy, f: SegmentedFinding) -> dict[str, Any]:
    """The findings-table row of one finding (a lesion in a volume: its slice range, depth and volume)."""
    return {
        "index": f.index,
        "label": f.label,
        "score": f.score,
        "x1": f.box[0],
        "y1": f.box[1],
        "x2": f.box[2],
        "y2": f.box[3],
        "series_uid": study.frames[f.frame].series_uid,
        "slice_index": study.frames[f.frame].slice_number if study.kind == "dicom" else None,
        "sop_instance_uid": study.frames[f.frame].sop_instance_uid,
        "source_file": study.frames[f.frame].source_file,
        "area_px": f.area_px,
        "area_mm2": f.area_mm2,
        "mask_key": f.mask.key,
        "width_mm": f.width_mm,
        "height_mm": f.height_mm,
        "slice_first": None if f.slice_range is None else f.slice_range[0],
        "slice_last": None if f.slice_range is None else f.slice_range[1],
        "slice_count": len(f.slices) if f.volume else None,
        "depth_mm": f.depth_mm,
        "volume_mm3": f.volume_mm3,
    }


def _class_index(study: LoadedStudy, label: str) -> int:
    names = domain_spec(study.domain).class_names
    return names.index(label) if label in names else len(names)


@task(name="persist", retries=2, retry_delay_seconds=2, retry_condition_fn=retryable, cache_policy=NO_CACHE)
def persist(study: LoadedStudy, run: RunHandle, findings: list[SegmentedFinding], report: Report) -> str:
    """Store the run's artifacts, then its findings, report, artifact rows and audit events atomically."""
    started = utcnow()
    renew_lease(run)
    written = render_artifacts(study, run, findings, report)
    artifacts = [("input", ref) for ref in study.inputs]
    artifacts.append(("frames", study.frames_archive))
    artifacts += [("mask", piece.mask) for f in findings for piece in f.slices]
    artifacts += written
    me = actor()
    with db_session() as session:
        save_results(
            session,
            run_id=run.run_id,
            attempt=run.attempt,
            findings=[finding_row(study, f) for f in findings],
            report={
                "reporter": report.reporter,
                "model": report.model,
                "text": report.text,
                "impression": report.impression,
                "structured": json.loads(report.model_dump_json()),
            },
            artifacts=[{"kind": kind, **asdict(ref)} for kind, ref in artifacts],
        )
        for kind, ref in artifacts:
            if kind == "input":
                continue  # audited as "ingested" when the run opened
            record_event(
                session,
                actor=me,
                action="stored",
                object_type="artifact",
                object_id=ref.key,
                study_uid=run.study_uid,
                run_id=run.run_id,
                details={"kind": kind, "sha256": ref.sha256, "size": ref.size, "run_id": run.run_id},
            )
        summary = {"findings": len(findings), "impression": report.impression}
        record_stage(
            session,
            run_id=run.run_id,
            attempt=run.attempt,
            stage="persist",
            status="completed",
            started_at=started,
            finished_at=utcnow(),
            details={"artifacts": len(artifacts)},
        )
        finish_run(session, run_id=run.run_id, attempt=run.attempt, status="completed", summary=summary)
        audit_run(session, run, "run_completed", {**summary, "artifacts": len(artifacts)})
    return run.run_id
