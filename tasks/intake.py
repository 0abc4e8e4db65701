"""Intake tasks: group the given paths into studies; quarantine and record what cannot be analyzed."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from argus.db import db_session
from argus.loading import scan_inputs
from storage.audit import record_event
from storage.object_store import put_content
from tasks.load import limits, resolve_domain, unsupported_reason
from tasks.resources import actor, object_store

# Larger rejected files stay where they are (recorded with their path) instead of being copied.
QUARANTINE_MAX_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class StudyGroup:
    """The files of one study and the domain it will be analyzed in."""

    study_uid: str
    kind: str
    domain: str
    paths: tuple[str, ...]
    notes: tuple[str, ...] = ()  # what of this study was received but not analyzed, and why


@dataclass(frozen=True)
class InputError:
    """An input that could not be analyzed, and why."""

    path: str
    reason: str


@task(name="scan-inputs", cache_policy=NO_CACHE)
def scan(paths: Sequence[str], domain: str | None) -> tuple[list[StudyGroup], list[InputError]]:
    """Find studies among files and folders; every unusable input becomes an error with a reason.

    A series the domain's models cannot read (say a localizer in a CT study) is rejected on its own;
    the study's other series are still analyzed.
    """
    # Pixels are decoded to validate each file, then dropped: load_study decodes its own study again.
    result = scan_inputs([Path(p) for p in paths], limits(), keep_pixels=False)
    errors = [InputError(str(r.path), r.reason) for r in result.rejected]
    notes: dict[str, list[str]] = {}
    folders: dict[Path, set[str]] = {}
    for study in result.studies:
        for source in study.source_paths:
            folders.setdefault(source.parent, set()).add(study.study_uid)
    for r in result.rejected:
        # An image of the study that could not be read makes its analysis incomplete; a report or
        # presentation state stored with the study does not.
        if r.reason.endswith("is not an image"):
            continue
        if r.study_uid:
            notes.setdefault(r.study_uid, []).append(f"{r.path.name} not analyzed: {r.reason}")
            continue
        # No header to tell its study (a broken photo, an unparseable slice): it counts against every
        # study it was delivered with in the same folder.
        for uid in sorted(folders.get(r.path.parent, ())):
            notes.setdefault(uid, []).append(f"{r.path.name} in the same folder not analyzed: {r.reason}")
    groups = []
    for study in result.studies:
        chosen = resolve_domain(study.kind, domain)
        kept: list[str] = []
        for series in study.series:
            files = sorted({str(f.source_path) for f in series.frames})
            reason = unsupported_reason(series, study.kind, chosen)
            if reason:
                errors += [InputError(p, reason) for p in files]
                notes.setdefault(study.study_uid, []).append(f"series not analyzed: {reason}")
            else:
                kept += files
        if kept:
            study_notes = tuple(notes.get(study.study_uid, []))
            groups.append(
                StudyGroup(study.study_uid, study.kind, chosen, tuple(sorted(set(kept))), study_notes)
            )
    return groups, errors


def _quarantine_copy(path: Path) -> dict[str, Any]:
    """Copy a rejected file into ``quarantine/<sha256>/``; never raises (what failed is returned)."""
    try:
        if not path.is_file():
            return {}
        if path.stat().st_size > QUARANTINE_MAX_BYTES:
            return {"quarantine": f"not copied: larger than {QUARANTINE_MAX_BYTES} bytes, kept in place"}
        stored = put_content(
            object_store(), "quarantine", path.name, path.read_bytes(), "application/octet-stream"
        )
        return {"quarantine_key": stored.key, "sha256": stored.sha256}
    except (OSError, ValueError, RuntimeError) as exc:
        return {"quarantine": f"not copied: {exc}"}


@task(name="record-rejected", retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def record_rejected(errors: Sequence[InputError], action: str = "rejected", copy: bool = True) -> int:
    """Quarantine (when ``copy``) and audit each error; returns how many events were written.

    A file that cannot be copied is recorded as such. Database errors raise, so Prefect retries;
    the batch flow reports every error to the caller even when recording finally fails.
    """
    # Copies first, outside the transaction: SQLite holds its write lock for a session's whole block.
    recorded = [
        (e, {"reason": e.reason, "path": e.path, **(_quarantine_copy(Path(e.path)) if copy else {})})
        for e in errors
    ]
    me = actor()
    with db_session() as session:
        for error, details in recorded:
            record_event(
                session,
                actor=me,
                action=action,
                object_type="input",
                object_id=_object_id(error.path),
                outcome="failure",
                details=details,
            )
    return len(recorded)


def _object_id(path: str) -> str:
    # Paths can outgrow the audit column (1024); the full path stays in the event's details.
    if len(path) <= 1000:
        return path
    return f"{path[:900]}...sha256:{hashlib.sha256(path.encode()).hexdigest()[:16]}"
