"""Synthetic reporter studies and the scoring of answers against their truth."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pytest

from models.reporter.chat import ChatMessage, Completion, OpenString, Skeleton
from models.reporter.config import GenerationSettings
from models.reporter.evaluation import evaluate_reporter, score_answer
from models.reporter.grounded import accept
from models.reporter.output import answer_skeleton
from models.reporter.studies import ReporterExample, measure_appearance, reporter_examples, size_band


@pytest.fixture(scope="module")
def studies() -> dict[str, list[ReporterExample]]:
    return {domain: reporter_examples(domain, seed=3, count=25) for domain in ("medical", "industrial")}


@pytest.mark.parametrize("domain", ["medical", "industrial"])
def test_the_faithful_answer_passes_the_validator(
    studies: dict[str, list[ReporterExample]], domain: str
) -> None:
    examples = studies[domain]
    assert any(not e.request.findings for e in examples), "studies without findings must occur"
    assert max(len(e.request.findings) for e in examples) >= 3
    for example in examples:
        output = accept(Completion(example.answer, truncated=False), example.request)
        assert output.finding_count == len(example.request.findings)
        # Only findings with a crop are described by appearance: the model cannot see the others.
        assert set(example.appearances) == {c.finding_index for c in example.crops}


def test_studies_are_reproducible_from_their_seed() -> None:
    first, again = reporter_examples("industrial", 5, 3), reporter_examples("industrial", 5, 3)
    assert [e.answer for e in first] == [e.answer for e in again]
    assert [c.sha256 for e in first for c in e.crops] == [c.sha256 for e in again for c in e.crops]
    assert [e.answer for e in reporter_examples("industrial", 6, 3)] != [e.answer for e in first]


def test_crops_are_capped_and_uncropped_findings_say_so() -> None:
    crowded = next(e for e in reporter_examples("industrial", 0, 60) if len(e.request.findings) > 8)
    assert len(crowded.crops) == 8
    answer = json.loads(crowded.answer)
    uncropped = [f for f in answer["findings"] if f["index"] not in crowded.appearances]
    assert uncropped and all(f["description"].endswith("; no crop attached.") for f in uncropped)


def test_appearance_is_read_off_the_pixels() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(100, 4, (64, 64))
    mask = np.zeros((64, 64), bool)
    mask[24:40, 24:40] = True
    bright = measure_appearance(np.where(mask, image + 40, image), mask)
    assert bright.words("medical") == "distinct hyperdense"
    assert measure_appearance(np.where(mask, image - 3, image), mask).words("industrial") == "faint dark"


def test_size_bands() -> None:
    assert [size_band(v) for v in (None, 4.0, 10.0, 19.9, 30.0, 55.0)] == [
        "px",
        "0-10 mm",
        "10-20 mm",
        "10-20 mm",
        ">=30 mm",
        ">=30 mm",
    ]


def _first_with(examples: list[ReporterExample], n: int) -> ReporterExample:
    return next(e for e in examples if len(e.request.findings) >= n and e.appearances)


def test_score_of_the_faithful_answer_is_perfect(studies: dict[str, list[ReporterExample]]) -> None:
    example = _first_with(studies["medical"], 2)
    scores = score_answer(example, Completion(example.answer, truncated=False))
    assert scores == {
        "well_formed": True,
        "no_contradiction": True,
        "count_agrees": True,
        "class_agrees": True,
        "size_band_agrees": True,
        "appearance": (len(example.appearances), len(example.appearances)),
    }


def test_score_catches_each_kind_of_wrong_answer(studies: dict[str, list[ReporterExample]]) -> None:
    example = _first_with(studies["medical"], 2)
    good = json.loads(example.answer)
    resized = json.loads(example.answer)
    resized["findings"][0]["longest_mm"] = 5.0 if good["findings"][0]["longest_mm"] > 10 else 25.0
    scores = score_answer(example, Completion(json.dumps(resized), truncated=False))
    assert scores["well_formed"] and not scores["no_contradiction"] and not scores["size_band_agrees"]
    assert scores["count_agrees"] and scores["class_agrees"]
    dropped = {**good, "findings": good["findings"][1:], "finding_count": len(good["findings"]) - 1}
    scores = score_answer(example, Completion(json.dumps(dropped), truncated=False))
    assert not scores["count_agrees"] and not scores["class_agrees"] and not scores["no_contradiction"]
    flipped = json.loads(example.answer.replace("hypodense", "HYPER").replace("hyperdense", "hypodense"))
    flipped = json.loads(json.dumps(flipped).replace("HYPER", "hyperdense"))
    scores = score_answer(example, Completion(json.dumps(flipped), truncated=False))
    assert scores["no_contradiction"] and scores["appearance"][0] == 0
    truncated = score_answer(example, Completion(example.answer[:40], truncated=True))
    assert not truncated["well_formed"] and truncated["appearance"] == (0, len(example.appearances))


@dataclass
class ScriptedBackend:
    """Answers from a script (a stand-in model, so the rates are known); local, like transformers."""

    answers: list[str]
    name: str = "transformers"
    model: str = "scripted"
    weights_sha256: str | None = None
    external: bool = False
    calls: list[int] = field(default_factory=list)

    def identity(self) -> dict[str, str | None]:
        return {"backend": self.name, "model": self.model, "weights_sha256": None}

    def complete(self, messages: list[ChatMessage], skeleton: Skeleton | None = None) -> Completion:
        self.calls.append(len(messages))
        return Completion(self.answers.pop(0), truncated=False, completion_tokens=10)


def test_evaluate_reporter_counts_first_answers_repairs_and_fallbacks(
    studies: dict[str, list[ReporterExample]],
) -> None:
    examples = [e for e in studies["industrial"] if e.request.findings][:3]
    answers = [
        examples[0].answer,  # right first time
        "not json",  # wrong, then repaired
        examples[1].answer,
        "{}",  # wrong twice: the template writes it
        "{}",
    ]
    rates = evaluate_reporter(ScriptedBackend(answers), examples, GenerationSettings(guided=False))
    third = 1 / 3
    assert rates["studies"] == 3
    assert rates["well_formed"] == pytest.approx(third, abs=1e-4)
    assert rates["no_contradiction"] == pytest.approx(third, abs=1e-4)
    assert rates["accepted_first"] == pytest.approx(third, abs=1e-4)
    assert rates["accepted_after_repair"] == pytest.approx(third, abs=1e-4)
    assert rates["fell_back"] == pytest.approx(third, abs=1e-4)
    expected_seen = sum(len(e.appearances) for e in examples)
    assert rates["findings_with_crop"] == expected_seen
    assert rates["appearance_agrees"] == pytest.approx(len(examples[0].appearances) / expected_seen, abs=1e-4)


@pytest.mark.parametrize("domain", ["medical", "industrial"])
def test_the_skeleton_fixes_every_value_the_findings_decide(
    studies: dict[str, list[ReporterExample]], domain: str
) -> None:
    for example in studies[domain]:
        skeleton = answer_skeleton(example.request)
        open_strings = [p for p in skeleton if isinstance(p, OpenString)]
        assert len(open_strings) == len(example.request.findings) + 1  # descriptions and impression
        # Filling the open strings with the faithful answer's strings gives the faithful answer.
        answer = json.loads(example.answer)
        strings = iter([*(f["description"] for f in answer["findings"]), answer["impression"]])
        filled = "".join(part if isinstance(part, str) else next(strings) for part in skeleton)
        assert filled == example.answer
