"""The ``argus`` command line: demo, analyze, runs, train; audit, token, purge, api (argus/cli_audit.py)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from argus.cli_audit import register
from argus.runtime import configure_environment
from argus.settings import get_settings

app = typer.Typer(
    help="Argus: detect, segment and report on medical and industrial images.", no_args_is_help=True
)
console = Console(stderr=False)
err = Console(stderr=True)


class DomainOption(StrEnum):
    medical = "medical"
    industrial = "industrial"


class ModelKind(StrEnum):
    detector = "detector"
    segmenter = "segmenter"


@contextlib.contextmanager
def _prefect_run_context() -> Iterator[None]:
    """Prefect settings for a one-shot CLI run."""
    configure_environment(get_settings())
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    if PREFECT_API_URL.value():
        yield  # a real server watches for crashed runs: keep its heartbeats
        return
    # Ephemeral mode: the temporary server dies with this process, so heartbeats only add a ~1 s join.
    # Its start (a subprocess, ~5-10 s) overlaps the import of the ML stack (~5-10 s) on the other core.
    # Imported here, not in the thread: two threads importing the same modules can deadlock.
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    booting = threading.Thread(
        target=_start_quietly, args=(server,), name="prefect-ephemeral-start", daemon=True
    )
    booting.start()
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        import flows.batch  # noqa: F401  (the heavy imports, while the server boots)

        # A failed start is not lost: the first flow call starts the server again and raises.
        booting.join()
        yield


def _start_quietly(server: Any) -> None:
    with contextlib.suppress(Exception):
        server.start()


def _analyze(
    paths: list[Path], domain: str | None, exported: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    with _prefect_run_context():
        from argus.db import db_session
        from flows.batch import analyze_paths

        outcome = analyze_paths([str(p) for p in paths], domain)
        from argus.identity import actor
        from argus.results import record_read, study_result

        with db_session() as session:
            results = [study_result(session, run_id) for run_id in outcome.run_ids]
            for result in results:  # results shown to the user are reads of patient data: audit each
                record_read(
                    session,
                    actor=actor(),
                    exported=exported,
                    object_type="run",
                    object_id=result["run_id"],
                    study_uid=result["study_uid"],
                    run_id=result["run_id"],
                    details={"findings": len(result["findings"]), "artifacts": len(result["artifacts"])},
                )
    errors = [{"path": e.path, "reason": e.reason} for e in outcome.errors]
    return results, errors


def _slice_cell(finding: dict[str, Any]) -> str:
    """The slice of a 2-D finding; a lesion's slice range with its largest section: ``5-7 (6)``."""
    first, last = finding.get("slices") or (None, None)
    if first is not None and first != last:
        return f"{first}-{last} ({finding['slice']})"
    return str(finding.get("slice", ""))


def _size_cell(finding: dict[str, Any]) -> str:
    """Volume and 3-D extent of a lesion where known, else the area (mm² with a pixel spacing, else px)."""
    if finding.get("volume_mm3") is not None:
        extent = f"{finding['width_mm']:.1f} x {finding['height_mm']:.1f} x {finding['depth_mm']:.1f} mm"
        return f"{extent}, {finding['volume_mm3']:.0f} mm³"
    return f"{finding['area_mm2']:.1f} mm²" if "area_mm2" in finding else f"{finding['area_px']:.0f} px"


def _print_results(results: list[dict[str, Any]], errors: list[dict[str, str]]) -> None:
    store = get_settings().resolved_object_store.removeprefix("file://")
    for result in results:
        table = Table(title=f"{result['domain']} study {result['study_uid']}  (run {result['run_id'][:8]})")
        for column in ("#", "label", "score", "image", "slice", "box (px)", "size"):
            table.add_column(column)
        for f in result["findings"]:
            box = ", ".join(f"{v:.0f}" for v in f["box"])
            cells = [
                str(f["index"]),
                f["label"],
                f"{f['score']:.2f}",
                f["image"] or "",
                _slice_cell(f),
            ]
            table.add_row(*cells, box, _size_cell(f))
        console.print(table)
        if result["report"]:
            console.print(result["report"]["text"], highlight=False)
        console.print(
            f"[dim]{len(result['artifacts'])} artifacts under {store}/studies/{result['study_uid']}[/dim]\n"
        )
    for e in errors:
        err.print(f"[red]rejected[/red] {e['path']}: {e['reason']}", highlight=False)


@app.command()
def analyze(
    paths: Annotated[list[Path], typer.Argument(help="DICOM / PNG / JPEG / TIFF files or folders.")],
    domain: Annotated[
        DomainOption | None, typer.Option(help="Default: medical for DICOM, industrial else.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Analyze files or folders; exit code 0 only when no input was rejected."""
    results, errors = _analyze(paths, domain.value if domain else None, exported=as_json)
    if as_json:
        print(json.dumps({"results": results, "errors": errors}, indent=2))
    else:
        _print_results(results, errors)
    raise typer.Exit(1 if errors else 0)


@app.command()
def demo(
    directory: Annotated[Path | None, typer.Option("--dir", help="Where demo inputs go.")] = None,
) -> None:
    """Write a synthetic CT study and surface images, analyze both, and summarize."""
    from argus.demo_data import write_demo_inputs

    settings = get_settings()
    root = directory or settings.resolved_data_dir / "demo"
    started = time.monotonic()
    ct_dir, surface_dir = write_demo_inputs(root)
    console.print(f"Demo inputs: {ct_dir} (CT, DICOM) and {surface_dir} (surfaces, PNG)")
    results, errors = _analyze([ct_dir, surface_dir], None)
    _print_results(results, errors)
    console.print(f"Database: {settings.resolved_database_url}")
    console.print(f"Objects:  {settings.resolved_object_store}")
    console.print(f"Done in {time.monotonic() - started:.1f} s. Try `argus runs` and `argus audit`.")
    raise typer.Exit(1 if errors else 0)


@app.command()
def runs(
    study: Annotated[str | None, typer.Option(help="Only runs of this Study Instance UID.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List analysis runs, newest first."""
    configure_environment(get_settings())
    from argus.db import db_session
    from argus.identity import actor
    from argus.results import record_read, runs_listing

    with db_session() as session:
        rows = runs_listing(session, study_uid=study, limit=limit)
        details = {"study_uid": study, "count": len(rows), "format": "json" if as_json else "table"}
        record_read(
            session,
            actor=actor(),
            exported=as_json,
            object_type="run",
            object_id="runs",
            study_uid=study,
            details=details,
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="Runs")
    for column in ("run", "study", "domain", "status", "findings", "started", "finished"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["run_id"][:8],
            r["study_uid"],
            r["domain"],
            r["status"],
            "" if r["findings"] is None else str(r["findings"]),
            r["started_at"] or "",
            r["finished_at"] or "",
        )
    console.print(table)


@app.command()
def train(
    kind: Annotated[ModelKind, typer.Argument(help="detector or segmenter")],
    domain: Annotated[DomainOption, typer.Option(help="Which domain's model.")],
    epochs: Annotated[int, typer.Option(help="Detector epochs.")] = 20,
    steps: Annotated[int, typer.Option(help="Segmenter optimizer steps.")] = 600,
    seed: Annotated[int, typer.Option()] = 0,
    output: Annotated[Path | None, typer.Option(help="Weights path; default the shipped file.")] = None,
    work_dir: Annotated[Path | None, typer.Option(help="Training data and runs.")] = None,
) -> None:
    """Train a model on seeded synthetic data and write its weights and model card."""
    settings = get_settings()
    configure_environment(settings)
    from models.train import train_detector, train_segmenter

    if kind is ModelKind.detector:
        work = work_dir or settings.resolved_data_dir / "training"
        card = train_detector(domain.value, work, epochs=epochs, seed=seed, output=output)
    else:
        card = train_segmenter(domain.value, steps=steps, seed=seed, output=output)
    print(card.model_dump_json(indent=2))


register(app)  # audit, token, purge, api


def main() -> None:
    """Entry point for ``python -m argus``."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(app())
