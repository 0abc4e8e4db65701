"""Intake tasks: group the given paths into studies, and quarantine and record what is rejected."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from argus.db import db_session
from argus.loading import scan_inputs
from storage.audit import record_event
from tasks.load import limits, modality_problem, resolve_domain
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


@dataclass(frozen=True)
class InputError:
    """An input that could not be analyzed, and why."""

    path: str
    reason: str


@task(name="scan-inputs", cache_policy=NO_CACHE)
def scan(paths: Sequence[str], domain: str | None) -> tuple[list[StudyGroup], list[InputError]]:
    """Find studies among files and folders; every unusable input becomes an error with a reason."""
    result = scan_inputs([Path(p) for p in paths], limits())
    errors = [InputError(str(r.path), r.reason) for r in result.rejected]
    groups = []
    for study in result.studies:
        chosen = resolve_domain(study.kind, domain)
        problem = modality_problem(study, chosen)
        if problem:
            errors += [InputError(str(p), problem) for p in study.source_paths]
            continue
        groups.append(
            StudyGroup(study.study_uid, study.kind, chosen, tuple(str(p) for p in study.source_paths))
        )
    return groups, errors


@task(name="quarantine-rejected", retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def quarantine(errors: Sequence[InputError]) -> list[str]:
    """Copy each rejected file into ``quarantine/`` and audit the rejection; returns quarantine keys."""
    store = object_store()
    keys = []
    recorded = []
    # Copies first, outside the transaction: SQLite holds its write lock for a session's whole block.
    for error in errors:
        path = Path(error.path)
        details: dict[str, object] = {"reason": error.reason, "path": str(path)}
        if path.is_file() and path.stat().st_size <= QUARANTINE_MAX_BYTES:
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            stored = store.put_bytes(f"quarantine/{digest}/{path.name}", data, "application/octet-stream")
            details |= {"quarantine_key": stored.key, "sha256": digest}
            keys.append(stored.key)
        recorded.append((path, details))
    me = actor()
    with db_session() as session:
        for path, details in recorded:
            record_event(
                session,
                actor=me,
                action="rejected",
                object_type="input",
                object_id=str(path),
                outcome="failure",
                details=details,
            )
    return keys
