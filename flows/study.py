"""analyze_study: load → detect → link → segment → report → persist, for one study."""

from __future__ import annotations

from collections.abc import Sequence

from prefect import flow

from argus.settings import get_settings
from tasks.detect import detect
from tasks.link import link
from tasks.load import load_study
from tasks.persist import persist
from tasks.report import report
from tasks.resources import reporter_parameters
from tasks.run import fail_run, open_run
from tasks.segment import segment


def run_parameters(domain: str | None) -> dict[str, object]:
    """The settings that change results; part of every run's idempotency key."""
    settings = get_settings()
    return {
        "domain": domain,
        "detector_confidence": settings.detector_confidence,
        "detector_iou": settings.detector_iou,
        **reporter_parameters(domain),
    }


@flow(name="analyze-study", validate_parameters=False)
def analyze_study(paths: Sequence[str], domain: str | None = None, notes: Sequence[str] = ()) -> str:
    """Analyze the files of one study; returns the run id (an identical earlier run is reused).

    ``notes`` say what of the study was received but is not among ``paths`` (unreadable slices, an
    unsupported series); the report states them so an incomplete analysis never looks complete.
    """
    study = load_study(paths, domain, notes)
    run = open_run(study, run_parameters(study.domain))
    if not run.fresh:
        return run.run_id
    try:
        found = detect(study, run)
        findings = segment(study, run, link(study, found))
        written = report(study, run, findings)
        return persist(study, run, findings, written)
    except BaseException as exc:
        # Leave nothing half-written: the run is marked failed and its objects removed.
        fail_run(run, f"{type(exc).__name__}: {exc}")
        raise
