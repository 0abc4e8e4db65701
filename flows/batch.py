"""analyze_paths: the batch entry point: scan files/folders, reject what is unusable, analyze each study."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from prefect import flow

from flows.study import analyze_study
from tasks.intake import InputError, record_rejected, scan

log = logging.getLogger(__name__)


@dataclass
class BatchOutcome:
    """Run ids of analyzed studies and the inputs that could not be analyzed."""

    run_ids: list[str] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)


def _record(errors: list[InputError], action: str, copy: bool) -> None:
    """Audit (and quarantine) errors; if even that fails after retries, log it and carry on:
    the caller still gets every error, and the batch's other studies still run."""
    state = record_rejected(errors, action=action, copy=copy, return_state=True)
    if not state.is_completed():
        log.error(
            "could not record %d %s inputs: %s", len(errors), action, state.result(raise_on_failure=False)
        )


@flow(name="analyze-paths", validate_parameters=False)
def analyze_paths(paths: Sequence[str], domain: str | None = None) -> BatchOutcome:
    """Analyze every study found under ``paths``; one bad input never stops the others."""
    groups, rejected = scan(paths, domain)
    if rejected:
        _record(rejected, "rejected", copy=True)
    outcome = BatchOutcome(errors=list(rejected))
    failed: list[InputError] = []
    for group in groups:
        state = analyze_study(group.paths, group.domain, group.notes, return_state=True)
        if state.is_completed():
            outcome.run_ids.append(state.result())
        else:
            where = os.path.commonpath(group.paths) if len(group.paths) > 1 else group.paths[0]
            failed.append(InputError(where, f"analysis failed: {state.result(raise_on_failure=False)}"))
    if failed:
        # The inputs themselves were readable: they stay where they are; the failure is audited.
        _record(failed, "analysis_failed", copy=False)
        outcome.errors += failed
    return outcome
