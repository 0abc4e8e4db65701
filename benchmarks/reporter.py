"""The reporter stage on the CPU: our own VLM per domain, ROI crops vs whole images, vs the template.

Each domain's shipped reporter writes reports for the same seeded held-out studies twice: once with
the ROI crops Argus sends (each finding with a little context), once with every finding's whole
image instead (the same crop code with an unbounded margin). The template reporter on the same
requests is the floor. Reports go through ``GroundedReporter`` without a cache, as in a first run.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from models.reporter.config import CropSettings

STUDIES = 20
SEED = 10_500  # held-out generator seeds, away from the evaluation split's first studies
WHOLE_IMAGE = CropSettings(margin=1e6)  # a window that always grows to the whole frame


def _template_ms(examples: list[Any]) -> float:
    from models.reporter.template import TemplateReporter

    reporter = TemplateReporter()
    times = []
    for example in examples:
        started = time.perf_counter()
        reporter.generate(example.request)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(domain: str) -> dict[str, Any]:
    """Rates and speed of the domain's shipped reporter with crops and with whole images."""
    from models.reporter.config import GenerationSettings
    from models.reporter.evaluation import evaluate_reporter
    from models.reporter.local_vlm import TransformersBackend
    from models.reporter.shipped import verified_shipped_reporter
    from models.reporter.studies import reporter_examples

    model_dir, card = verified_shipped_reporter(domain)
    generation = GenerationSettings()
    backend = TransformersBackend(model_dir, "cpu", generation)
    version = card.generator_version
    crops = reporter_examples(domain, SEED, STUDIES, version=version)
    whole = reporter_examples(domain, SEED, STUDIES, version=version, crops=WHOLE_IMAGE)
    evaluate_reporter(backend, crops[:2], generation)  # warm-up: model load and first-call costs
    return {
        "crops": evaluate_reporter(backend, crops, generation),
        "whole": evaluate_reporter(backend, whole, generation),
        "template_ms": _template_ms(crops),
        "findings": sum(len(e.request.findings) for e in crops),
        "parameters": card.training.get("parameters"),
    }


def section() -> list[str]:
    """Run the reporter benchmark for both domains; the BENCHMARKS.md section as markdown lines."""
    import torch

    from models.offline import configure_offline_ml

    configure_offline_ml()
    results = {domain: measure(domain) for domain in ("medical", "industrial")}
    lines = [
        "## Reporter (multimodal LLM) on the CPU",
        "",
        f"Our shipped reporter VLM per domain, {STUDIES} held-out synthetic studies each (greedy, guided "
        "decoding as in production: each open string re-reads the prompt, so tokens/s is lower than free "
        "decoding's ~200; no report cache, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads). Rates are "
        "of first answers; latency is per study through the grounded reporter (validation, and a repair "
        "try when an answer is rejected). Whole image: each finding's full frame instead of its ROI crop "
        "(our model resizes every image to the same 16 image tokens, so the cost is the same and the "
        "difference is what the model can still see).",
        "",
        "| domain | images | findings | s / study (median) | tokens / s | prompt tokens (median) "
        "| well-formed | no contradiction | appearance right | template ms / study |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for domain, r in results.items():
        for kind in ("crops", "whole"):
            m = r[kind]
            lines.append(
                f"| {domain} | {'ROI crops' if kind == 'crops' else 'whole images'} | {r['findings']} "
                f"| {m['seconds_per_study_median']:.2f} | {m['tokens_per_second']:.0f} "
                f"| {m['prompt_tokens_median']} | {m['well_formed']:.0%} | {m['no_contradiction']:.0%} "
                f"| {m['appearance_agrees']:.0%} | {r['template_ms']:.2f} |"
            )
    return lines
