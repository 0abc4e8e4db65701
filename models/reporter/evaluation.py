"""Scoring a reporter on held-out synthetic studies (``models.reporter.studies``).

The studies carry the truth; the reporter gets it as a perfect detector and segmenter would give it,
so these rates measure the reporter alone. Rates are of the model's FIRST answer, before the one
repair and the template fallback that production adds (their rates are reported too):

- ``well_formed``: the answer parses into the report schema (not cut off);
- ``no_contradiction``: nothing invented, dropped, relabelled or re-measured, counts consistent
  (``output.grounding_problems`` finds nothing);
- ``count_agrees`` / ``class_agrees`` / ``size_band_agrees``: the stated count (in ``finding_count``,
  the findings list and the impression), the labels, and each longest size's band match the truth;
- ``appearance_agrees``: per finding with a crop, the description names what the crop shows
  (hypo-/hyperdense or dark/bright, and subtle/faint vs distinct): the part only the image can tell.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.reporter.base import ReportContext
from models.reporter.chat import ChatBackend, ChatMessage, Completion, Skeleton
from models.reporter.config import GenerationSettings
from models.reporter.grounded import GroundedReporter
from models.reporter.output import (
    ModelOutput,
    OutputError,
    grounding_problems,
    impression_problems,
    parse_output,
)
from models.reporter.prompts import longest_mm
from models.reporter.studies import ReporterExample, reporter_examples, size_band
from models.synthetic import HELD_OUT_OFFSET


@dataclass
class RecordingBackend:
    """A chat backend that keeps every completion (and its time) of the backend it wraps."""

    inner: ChatBackend
    completions: list[tuple[Completion, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.name = self.inner.name
        self.model = self.inner.model
        self.weights_sha256 = self.inner.weights_sha256
        self.external = self.inner.external

    def identity(self) -> dict[str, str | None]:
        """The wrapped backend's identity."""
        return self.inner.identity()

    def complete(self, messages: list[ChatMessage], skeleton: Skeleton | None = None) -> Completion:
        """The wrapped backend's answer, recorded with its wall time."""
        started = time.perf_counter()
        completion = self.inner.complete(messages, skeleton)
        self.completions.append((completion, time.perf_counter() - started))
        return completion


def score_answer(example: ReporterExample, completion: Completion) -> dict[str, Any]:
    """Agreement of one answer with the study's truth (all False when it does not parse)."""
    truth = example.request.findings
    try:
        output = parse_output(completion.text, completion.truncated)
    except OutputError:
        return {
            "well_formed": False,
            "no_contradiction": False,
            "count_agrees": False,
            "class_agrees": False,
            "size_band_agrees": False,
            "appearance": (0, len(example.appearances)),
        }
    by_index = {f.index: f for f in output.findings}
    stated = [by_index.get(f.index) for f in truth]
    return {
        "well_formed": True,
        "no_contradiction": not grounding_problems(output, example.request),
        "count_agrees": (
            output.finding_count == len(truth) == len(output.findings)
            and not impression_problems(output.impression, example.request)
        ),
        "class_agrees": [(f.index, f.label.strip().lower()) for f in output.findings]
        == [(f.index, f.label) for f in truth],
        "size_band_agrees": len(output.findings) == len(truth)
        and all(
            s is not None and size_band(s.longest_mm) == size_band(longest_mm(f))
            for s, f in zip(stated, truth, strict=True)
        ),
        "appearance": _appearance_hits(example, output),
    }


def _appearance_hits(example: ReporterExample, output: ModelOutput) -> tuple[int, int]:
    descriptions = {f.index: f.description.lower() for f in output.findings}
    domain = example.request.domain
    hits = sum(
        look.words(domain) in descriptions.get(index, "") for index, look in example.appearances.items()
    )
    return hits, len(example.appearances)


def evaluate_reporter(
    backend: ChatBackend, examples: list[ReporterExample], generation: GenerationSettings
) -> dict[str, Any]:
    """First-answer rates, production outcome (accepted first, after repair, fell back) and speed."""
    if not examples:
        raise ValueError("need at least 1 held-out study")
    totals: dict[str, int] = {}
    seen = hits = first_ok = repaired = fallbacks = tokens = 0
    seconds: list[float] = []
    prompt_tokens: list[int] = []
    gen_seconds = 0.0
    for example in examples:
        recorder = RecordingBackend(backend)
        reporter = GroundedReporter(recorder, generation)
        started = time.perf_counter()
        report = reporter.generate(example.request, ReportContext(crops=example.crops))
        seconds.append(time.perf_counter() - started)
        first, _ = recorder.completions[0]
        prompt_tokens.append(first.prompt_tokens or 0)
        scores = score_answer(example, first)
        for key, value in scores.items():
            if key != "appearance":
                totals[key] = totals.get(key, 0) + int(value)
        hits, seen = hits + scores["appearance"][0], seen + scores["appearance"][1]
        provenance = report.provenance
        fell_back = provenance is not None and provenance.fallback_reason is not None
        fallbacks += fell_back
        first_ok += not fell_back and len(recorder.completions) == 1
        repaired += not fell_back and len(recorder.completions) == 2
        tokens += sum(c.completion_tokens or 0 for c, _ in recorder.completions)
        gen_seconds += sum(t for _, t in recorder.completions)
    n = len(examples)
    ordered = sorted(seconds)
    return {
        "studies": n,
        **{key: round(value / n, 4) for key, value in totals.items()},
        "appearance_agrees": round(hits / seen, 4) if seen else None,
        "findings_with_crop": seen,
        "accepted_first": round(first_ok / n, 4),
        "accepted_after_repair": round(repaired / n, 4),
        "fell_back": round(fallbacks / n, 4),
        "seconds_per_study_median": round(ordered[n // 2], 3),
        "tokens_per_second": round(tokens / gen_seconds, 1) if gen_seconds else None,
        "prompt_tokens_median": sorted(prompt_tokens)[n // 2],
    }


def evaluate_reporter_model(
    model_dir: Path,
    domain: str,
    *,
    studies: int = 100,
    seed: int = 0,
    generator_version: int = 2,
    device: str = "cpu",
    guided: bool = True,
) -> dict[str, Any]:
    """A local VLM's rates on ``studies`` held-out synthetic studies (seed ``seed + 10 000``), with greedy
    decoding, guided (the production default) or free."""
    from models.reporter.local_vlm import TransformersBackend, weights_sha256

    generation = GenerationSettings(guided=guided)
    held_out_seed = seed + HELD_OUT_OFFSET
    examples = reporter_examples(domain, held_out_seed, studies, version=generator_version)
    rates = evaluate_reporter(TransformersBackend(model_dir, device, generation), examples, generation)
    return {
        "model": str(model_dir),
        "weights_sha256": weights_sha256(model_dir),
        "held_out_seed": held_out_seed,
        "generator_version": generator_version,
        "decoding": "guided" if guided else "free",
        **rates,
    }
