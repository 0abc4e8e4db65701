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
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from argus.cli_audit import register
from argus.runtime import configure_environment
from argus.settings import get_settings

if TYPE_CHECKING:
    from models.reporter.train_vlm import TrainSettings

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
    reporter = "reporter"


class ExportFormatOption(StrEnum):
    onnx = "onnx"
    torchscript = "torchscript"


class SegmenterArchOption(StrEnum):
    unet = "unet"
    deeplabv3plus = "deeplabv3plus"


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
    detector: Annotated[
        Path | None,
        typer.Option(
            help="YOLO .pt, or an exported .onnx / .torchscript, for --domain (sets ARGUS_<DOMAIN>_DETECTOR)."
        ),
    ] = None,
    segmenter: Annotated[
        Path | None, typer.Option(help="Segmenter checkpoint or state dict for --domain.")
    ] = None,
    segmenter_arch: Annotated[
        SegmenterArchOption | None, typer.Option(help="Segmenter architecture for --domain.")
    ] = None,
) -> None:
    """Analyze files or folders; exit code 0 only when no input was rejected."""
    chosen = {"DETECTOR": detector, "SEGMENTER": segmenter, "SEGMENTER_ARCH": segmenter_arch}
    if any(v is not None for v in chosen.values()):
        if domain is None:
            err.print("--detector, --segmenter and --segmenter-arch need --domain (the models it replaces)")
            raise typer.Exit(2)
        _use_models(domain.value, chosen)
    results, errors = _analyze(paths, domain.value if domain else None, exported=as_json)
    if as_json:
        print(json.dumps({"results": results, "errors": errors}, indent=2))
    else:
        _print_results(results, errors)
    raise typer.Exit(1 if errors else 0)


def _use_models(domain: str, chosen: dict[str, Any]) -> None:
    """Point the settings at user models for this process, then load them so a wrong file fails now."""
    for suffix, value in chosen.items():
        if value is not None:
            text = value.value if isinstance(value, StrEnum) else str(Path(value).expanduser().resolve())
            os.environ[f"ARGUS_{domain.upper()}_{suffix}"] = text
    get_settings.cache_clear()
    configure_environment(get_settings())
    from models.registry import WeightsError
    from tasks import resources

    resources.clear_caches()
    try:
        resources.detector(domain)
        resources.segmenter(domain)
    except WeightsError as exc:
        err.print(f"[red]unusable model:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None


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
    kind: Annotated[ModelKind, typer.Argument(help="detector, segmenter or reporter")],
    domain: Annotated[DomainOption, typer.Option(help="Which domain's model.")],
    epochs: Annotated[int, typer.Option(help="Detector epochs.")] = 20,
    steps: Annotated[int, typer.Option(help="Segmenter optimizer steps.")] = 600,
    arch: Annotated[
        str | None,
        typer.Option(
            help="Architecture: yolo11n (default) or yolo12n for a detector, "
            "unet (default) or deeplabv3plus for a segmenter."
        ),
    ] = None,
    generator_version: Annotated[
        int, typer.Option(help="Synthetic data generator version (models.synthetic.GENERATORS).")
    ] = 2,
    images: Annotated[
        int | None,
        typer.Option(min=1, help="Training images (detector, default 240) or studies (reporter, 3000)."),
    ] = None,
    hours: Annotated[
        float | None,
        typer.Option(min=0.01, help="Detector: train this long instead of --epochs. Reporter: default 0.25."),
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
    output: Annotated[Path | None, typer.Option(help="Weights path; default the shipped file.")] = None,
    work_dir: Annotated[Path | None, typer.Option(help="Training data and runs.")] = None,
    start_from: Annotated[
        Path | None,
        typer.Option(
            "--from",
            exists=True,
            help="Detector: fine-tune from this YOLO checkpoint. Reporter: train this model dir further.",
        ),
    ] = None,
    imgsz: Annotated[
        int | None,
        typer.Option(min=32, help="Detector: network input side in px (default: the domain's image side)."),
    ] = None,
    lr0: Annotated[
        float | None,
        typer.Option(
            min=1e-6,
            max=0.5,
            help="AdamW's initial learning rate (detector default: ultralytics' automatic choice; "
            "reporter: the peak, default 2e-3).",
        ),
    ] = None,
) -> None:
    """Train a model on seeded synthetic data and write its weights and model card."""
    settings = get_settings()
    configure_environment(settings)
    from models.segmenter import CONFIGS
    from models.train import DETECTOR_ARCHS, train_detector, train_segmenter

    if kind is ModelKind.reporter:
        _require_generator(generator_version)
        from models.reporter.train_vlm import TrainSettings

        reporter = TrainSettings(
            domain=domain.value,
            minutes=(hours or 0.25) * 60,
            n_train=images or 3000,
            seed=seed,
            generator_version=generator_version,
            learning_rate=lr0 or TrainSettings.learning_rate,
            init_from=start_from,
        )
        _train_reporter(reporter, output)
        return
    if start_from is not None and start_from.is_dir():
        err.print(f"[red]--from {start_from} is a directory[/red]; a {kind.value} starts from a checkpoint")
        raise typer.Exit(2)
    archs = DETECTOR_ARCHS if kind is ModelKind.detector else tuple(CONFIGS)
    chosen = arch or archs[0]
    if chosen not in archs:
        err.print(f"[red]unknown {kind.value} architecture {chosen!r}[/red]; expected one of {list(archs)}")
        raise typer.Exit(2)
    _require_generator(generator_version)
    if kind is ModelKind.detector:
        work = work_dir or settings.resolved_data_dir / "training"
        card = train_detector(
            domain.value,
            work,
            epochs=epochs,
            n_train=images or 240,
            seed=seed,
            arch=chosen,
            generator_version=generator_version,
            hours=hours,
            output=output,
            start_from=start_from,
            image_size=imgsz,
            learning_rate=lr0,
        )
    else:
        card = train_segmenter(
            domain.value,
            arch=chosen,
            steps=steps,
            seed=seed,
            generator_version=generator_version,
            output=output,
        )
    print(card.model_dump_json(indent=2))


@app.command()
def export(
    domain: Annotated[
        DomainOption, typer.Option(help="Whose detector: the configured one (ARGUS_DETECTOR) or ours.")
    ],
    fmt: Annotated[
        ExportFormatOption, typer.Option("--format", help="Export format.")
    ] = ExportFormatOption.onnx,
    output: Annotated[
        Path | None, typer.Option(help="Exported file; default <data dir>/exports/<weights name>.<format>.")
    ] = None,
) -> None:
    """Export the domain's detector to ONNX or TorchScript, checked against the original on held-out
    images; use the file with ARGUS_DETECTOR or --detector."""
    settings = get_settings()
    configure_environment(settings)
    from models.detector import EXPORT_FORMATS
    from models.export import ExportError, export_detector
    from models.registry import WeightsError
    from tasks import resources

    try:
        source = resources.weights("detector", domain.value).path
        target = output or settings.resolved_data_dir / "exports" / (source.stem + EXPORT_FORMATS[fmt.value])
        card = export_detector(source, fmt.value, target, domain=domain.value)
    except (WeightsError, ExportError, ValueError) as exc:
        err.print(f"[red]cannot export:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    check = card.metrics["export_check"]
    console.print(
        f"{target} ({card.size_bytes} bytes, sha256 {card.sha256}): same detections as {source.name} on "
        f"{check['images']} held-out images (min box IoU {check['min_iou']}, max score change "
        f"{check['max_score_diff']})",
        highlight=False,
    )


def _train_reporter(settings: TrainSettings, output: Path | None) -> None:
    """Train, score and write the domain's own reporter VLM; print its card."""
    from models.reporter.chat import BackendError
    from models.reporter.train_vlm import train_reporter

    try:
        card = train_reporter(settings, output=output, log=lambda line: err.print(line, highlight=False))
    except (ValueError, BackendError) as exc:  # the output is the --from dir; --from is no model dir
        err.print(f"[red]cannot train the reporter:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    print(card.model_dump_json(indent=2))


@app.command()
def evaluate(
    domain: Annotated[DomainOption, typer.Option(help="Which domain's models.")],
    images: Annotated[int, typer.Option(min=1, max=5000, help="Test images to generate.")] = 1000,
    seed: Annotated[int, typer.Option(help="Training seed; the test split uses seed + 20 000.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    write_cards: Annotated[
        bool, typer.Option("--write-cards", help="Record the results in the evaluated models' cards.")
    ] = False,
    generator_version: Annotated[
        int | None,
        typer.Option(help="Synthetic data generator version of the test split; default the latest."),
    ] = None,
    reporter_studies: Annotated[
        int,
        typer.Option(
            min=0,
            max=2000,
            help="Held-out studies for the reporter VLM (ARGUS_REPORTER_MODEL or ours); 0 skips it.",
        ),
    ] = 100,
) -> None:
    """Detector mAP50 and segmenter Dice per class on a regenerated synthetic test split, and the
    reporter VLM's rates on held-out studies."""
    settings = get_settings()
    configure_environment(settings)
    from models.evaluation import evaluate_domain
    from models.registry import WeightsError, read_card, resolve_weights
    from models.segmenter import CONFIGS, load_segmenter
    from models.synthetic import LATEST_GENERATOR
    from tasks import resources

    name = domain.value
    try:
        segmenters = {}
        for arch in CONFIGS:  # the shipped segmenter of every architecture
            ref = resolve_weights("segmenter", name, arch=arch)
            segmenters[arch] = (load_segmenter(ref.path, ref.sha256, resources.device(), arch), ref)
        if settings.segmenter_weights(name) is not None:
            segmenters["user"] = (resources.segmenter(name), resources.weights("segmenter", name))
        detector = (resources.detector(name), resources.weights("detector", name))
    except WeightsError as exc:
        err.print(f"[red]cannot evaluate:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    # One split for every model of a domain, whatever data each was trained on, so that two are compared
    # on the same images.
    generator_version = LATEST_GENERATOR if generator_version is None else generator_version
    _require_generator(generator_version)
    report = evaluate_domain(
        name,
        detector,
        segmenters,
        images=images,
        seed=seed,
        operating_confidence=settings.detector_confidence,
        generator_version=generator_version,
    )
    reporter_card = None
    if reporter_studies:
        from models.reporter.chat import BackendError

        try:
            report["reporter"], reporter_card = _evaluate_reporter(name, reporter_studies, seed)
        except (WeightsError, BackendError) as exc:
            err.print(f"[red]cannot evaluate the reporter:[/red] {exc}", highlight=False)
            raise typer.Exit(2) from None
    if write_cards:
        from models.registry import record_evaluation

        split = {
            "held_out_seed": report["held_out_seed"],
            "images": images,
            "generator_version": generator_version,
        }
        evaluated = [(detector[1], report["detector"])]
        evaluated += [(segmenters[k][1], v) for k, v in report["segmenters"].items()]
        for ref, result in evaluated:
            if read_card(ref.path) is not None:  # user weights without a card are left alone
                record_evaluation(ref.path, {**split, **result})
        if reporter_card is not None:
            record_evaluation(reporter_card, report["reporter"])
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        _print_evaluation(report)


def _evaluate_reporter(domain: str, studies: int, seed: int) -> tuple[dict[str, Any], Path | None]:
    """The configured local reporter VLM (else the shipped one) on held-out studies of the generator
    version it was trained on; with the model dir to record it in when it is the shipped one."""
    from models.registry import read_card
    from models.reporter.evaluation import evaluate_reporter_model
    from models.reporter.shipped import verified_shipped_reporter
    from tasks import resources

    settings = get_settings()
    if settings.reporter == "transformers" and settings.reporter_model:
        model_dir, shipped = Path(settings.reporter_model).expanduser().resolve(), None
        card = read_card(model_dir)
    else:
        model_dir, card = verified_shipped_reporter(domain)
        shipped = model_dir
    version = card.generator_version if card is not None else 2
    result = evaluate_reporter_model(
        model_dir,
        domain,
        studies=studies,
        seed=seed,
        generator_version=version,
        device=resources.device(),
        guided=settings.reporter_guided,  # the decoding production uses (ARGUS_REPORTER_GUIDED)
    )
    return result, shipped


def _require_generator(version: int) -> None:
    """Exit with status 2 naming the known versions when ``version`` is not a generator version."""
    from models.synthetic import GENERATORS

    if version not in GENERATORS:
        err.print(f"[red]unknown generator version {version}[/red]; expected one of {sorted(GENERATORS)}")
        raise typer.Exit(2)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


REPORTER_RATES = (
    "well_formed",
    "no_contradiction",
    "count_agrees",
    "class_agrees",
    "size_band_agrees",
    "appearance_agrees",
    "accepted_first",
    "accepted_after_repair",
    "fell_back",
)


def _interval(bounds: list[float] | None) -> str:
    """A bootstrap interval as text; a class without instances has none."""
    return "n/a" if not bounds else f"{bounds[0]:.3f}–{bounds[1]:.3f}"


def _print_evaluation(report: dict[str, Any]) -> None:
    det = report["detector"]
    table = Table(
        title=f"{report['domain']} detector {det['model']} on {det['images']} test images "
        f"(generator v{report['generator_version']}, seed {report['held_out_seed']}): "
        f"mAP50 {_fmt(det['map50'])} (95 % interval {_interval(det['map50_ci95'])})"
    )
    for column in (
        "class",
        "AP50",
        "95 % interval",
        "images",
        "instances",
        "predictions",
        "found ≥ op. conf",
        "boxes ≥ op. conf",
    ):
        table.add_column(column)
    for cls, c in det["per_class"].items():
        table.add_row(
            cls,
            _fmt(c["ap50"]),
            _interval(c["ap50_ci95"]),
            str(c["images"]),
            str(c["instances"]),
            str(c["predictions"]),
            str(c["found_at_operating_confidence"]),
            str(c["predictions_at_operating_confidence"]),
        )
    console.print(table)
    size_table = Table(title="Instances found, by size (longest box side)")
    for column in ("class", "size", "instances", "found", "found ≥ op. conf"):
        size_table.add_column(column)
    for cls, c in det["per_class"].items():
        for band, counts in c["by_size"].items():
            size_table.add_row(
                cls,
                band,
                str(counts["instances"]),
                str(counts["found"]),
                str(counts["found_at_operating_confidence"]),
            )
    console.print(size_table)
    seg_table = Table(title="Segmenters on ground-truth boxes (jittered 8 %)")
    for column in ("segmenter", "model", "class", "Dice", "ROIs"):
        seg_table.add_column(column)
    for key, seg in report["segmenters"].items():
        seg_table.add_row(key, seg["model"], "all", _fmt(seg["dice"]), str(seg["rois"]))
        for cls, c in seg["per_class"].items():
            seg_table.add_row("", "", cls, _fmt(c["dice"]), str(c["rois"]))
    console.print(seg_table)
    rep = report.get("reporter")
    if rep is not None:
        rep_table = Table(
            title=f"Reporter {rep['model']} on {rep['studies']} held-out studies "
            f"(generator v{rep['generator_version']}, seed {rep['held_out_seed']}, {rep['decoding']} "
            "decoding): first answers"
        )
        rep_table.add_column("rate")
        rep_table.add_column("value")
        for key in REPORTER_RATES:
            rep_table.add_row(key.replace("_", " "), _fmt(rep[key]))
        rep_table.add_row("seconds per study (median)", _fmt(rep["seconds_per_study_median"]))
        console.print(rep_table)


register(app)  # audit, token, purge, api


def main() -> None:
    """Entry point for ``python -m argus``."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(app())
