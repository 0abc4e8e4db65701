"""The parser and validator of model answers: good, hallucinated, missing, contradicting, broken."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from models.reporter.chat import OpenString
from models.reporter.copying import copyable_words
from models.reporter.output import OutputError, answer_skeleton, grounding_problems, parse_output
from models.reporter.prompts import totals_phrase


def _problems(request: Any, text: str) -> list[str]:
    return grounding_problems(parse_output(text), request)


def test_good_answer_passes_even_inside_a_code_fence(
    medical_request: Any, good_answer: Callable[..., str]
) -> None:
    text = f"Here is the report:\n```json\n{good_answer(medical_request)}\n```"
    output = parse_output(text)
    assert [f.index for f in output.findings] == [1, 2]
    assert grounding_problems(output, medical_request) == []


def test_hallucinated_finding_is_caught(medical_request: Any, good_answer: Callable[..., str]) -> None:
    answer = json.loads(good_answer(medical_request))
    answer["findings"].append({"index": 3, "label": "lesion", "longest_mm": 8.0, "description": "Small."})
    answer["finding_count"] = 3
    problems = _problems(medical_request, json.dumps(answer))
    assert "finding #3 (lesion) was not detected: it is hallucinated" in problems
    assert "finding_count 3 contradicts the 2 findings given" in problems


def test_missing_finding_is_caught(medical_request: Any, good_answer: Callable[..., str]) -> None:
    answer = json.loads(good_answer(medical_request))
    del answer["findings"][1]
    assert "finding #2 (lesion) is missing" in _problems(medical_request, json.dumps(answer))


def test_contradicting_label_size_and_count_are_caught(
    medical_request: Any, good_answer: Callable[..., str]
) -> None:
    answer = json.loads(good_answer(medical_request, impression="Three lesions detected."))
    answer["findings"][0]["label"] = "cyst"
    answer["findings"][1]["longest_mm"] = 25.0
    problems = _problems(medical_request, json.dumps(answer))
    assert "finding #1 is a lesion, not a cyst" in problems
    assert "finding #2 measures 11.9 mm, not 25.0 mm" in problems
    assert "the impression states 3 lesion(s), but 2 were detected" in problems
    # Rounding is not a contradiction: 12.5 mm stated for 11.9 mm measured is within 1 mm.
    answer = json.loads(good_answer(medical_request))
    answer["findings"][1]["longest_mm"] = 12.5
    assert _problems(medical_request, json.dumps(answer)) == []


def test_impression_denying_detected_lesions_is_caught(
    medical_request: Any, good_answer: Callable[..., str]
) -> None:
    text = good_answer(medical_request, impression="No focal lesion detected.")
    assert "the impression states 0 lesion(s), but 2 were detected" in _problems(medical_request, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"finding_count": 2, "findings": [{"index": 1, "label": "les', "truncated"),
        ("I cannot help with that.", "no JSON object"),
        ('{"finding_count": 2,, "findings": []}', "not valid JSON"),
        ('{"finding_count": "two", "findings": [], "impression": ""}', "does not match the schema"),
        ("[1, 2]", "no JSON object"),
    ],
)
def test_truncated_and_malformed_answers_raise_with_a_reason(text: str, expected: str) -> None:
    with pytest.raises(OutputError, match=expected):
        parse_output(text)


def test_token_limit_marks_a_broken_answer_as_truncated() -> None:
    with pytest.raises(OutputError, match="truncated"):
        parse_output('{"finding_count": 1, "findings": [{"index": 1} "x"', truncated=True)


def test_inspection_impression_may_count_per_part_but_never_more_than_found() -> None:
    from models.reporter import FindingInput, ReportRequest

    def crack(index: int, image: str) -> FindingInput:
        return FindingInput(
            index=index, label="crack", score=0.9, box=(1, 1, 9, 9), image_name=image,
            image_width=64, image_height=64, area_px=30.0,
        )  # fmt: skip

    request = ReportRequest(
        domain="industrial", study_uid="2.25.7", images_examined=2, image_names=["a.png", "b.png"],
        findings=[crack(1, "a.png"), crack(2, "b.png")],
    )  # fmt: skip
    findings = [{"index": i, "label": "crack", "longest_mm": None, "description": "Thin."} for i in (1, 2)]
    ok = {"finding_count": 2, "findings": findings, "impression": "a.png (1 crack), b.png (1 crack) flagged."}
    assert _problems(request, json.dumps(ok)) == []
    too_many = ok | {"impression": "a.png has 3 cracks."}
    assert "the impression states 3 crack(s), but 2 were detected" in _problems(request, json.dumps(too_many))
    all_pass = ok | {"impression": "All parts pass visual inspection."}
    assert any("passes all parts" in p for p in _problems(request, json.dumps(all_pass)))
    invented_mm = json.loads(json.dumps(ok))
    invented_mm["findings"][0]["longest_mm"] = 4.0
    assert "finding #1 has no size in mm, yet the answer states 4.0 mm" in _problems(
        request, json.dumps(invented_mm)
    )


def test_impression_sizes_must_be_measured_ones(
    medical_request: Any, good_answer: Callable[..., str]
) -> None:
    text = good_answer(medical_request, impression="2 lesions detected, one of 31.5 mm. Review.")
    assert _problems(medical_request, text) == ["the impression states 31.5 mm, which no finding measures"]
    # Any measured dimension may be quoted, within rounding; areas (mm2) are not sizes.
    fine = "2 lesions; 15.2 x 12.1 mm, area 180.2 mm2; the other 11.9 mm. Recommend review."
    assert _problems(medical_request, good_answer(medical_request, impression=fine)) == []


def test_the_largest_size_must_be_the_largest_finding(
    medical_request: Any, good_answer: Callable[..., str]
) -> None:
    # 11.9 mm is measured (finding 2), but it is not the largest: 15.2 mm is.
    text = good_answer(medical_request, impression="2 lesions detected; largest 11.9 mm. Recommend review.")
    assert _problems(medical_request, text) == [
        "the impression gives the largest size as 11.9 mm, not 15.2 mm"
    ]
    rounded = good_answer(medical_request, impression="2 lesions detected; largest 15 mm. Recommend review.")
    assert _problems(medical_request, rounded) == []
    # The prompt's summary wording ("Largest: 15.2 mm.") is checked the same way.
    summary = good_answer(medical_request, impression="2 lesions detected. Largest: 11.9 mm.")
    assert _problems(medical_request, summary) == [
        "the impression gives the largest size as 11.9 mm, not 15.2 mm"
    ]


def test_a_description_may_not_re_measure_its_finding(
    medical_request: Any, good_answer: Callable[..., str]
) -> None:
    answer = json.loads(good_answer(medical_request))
    answer["findings"][0]["description"] = "Distinct hypodense lesion, 15 mm."  # 15.2 mm, rounded: fine
    assert _problems(medical_request, json.dumps(answer)) == []
    answer["findings"][0]["description"] = "Distinct hypodense lesion, 25.2 mm."
    assert _problems(medical_request, json.dumps(answer)) == [
        "finding #1's description states 25.2 mm, which it does not measure"
    ]


def test_inspection_impressions_must_name_examined_parts_with_their_counts() -> None:
    from models.reporter import FindingInput, ReportRequest
    from models.reporter.output import impression_problems

    def defect(index: int, label: str, part: str) -> FindingInput:
        return FindingInput(
            index=index,
            label=label,
            score=0.9,
            box=(1, 1, 9, 9),
            image_name=part,
            image_width=64,
            image_height=64,
            area_px=40.0,
        )

    request = ReportRequest(
        domain="industrial",
        study_uid="batch",
        images_examined=3,
        image_names=["a.png", "b.png", "c.png"],
        findings=[defect(1, "scratch", "a.png"), defect(2, "scratch", "a.png"), defect(3, "dent", "b.png")],
    )
    good = "2 of 3 parts flagged for QC review: a.png (2 scratches); b.png (1 dent). 1 other part passes."
    assert impression_problems(good, request) == []
    wrong = "2 of 3 parts flagged for QC review: a.png (1 scratch, 1 dent); c.png (1 dent); z.png (1 crack)."
    assert impression_problems(wrong, request) == [
        "the impression gives a.png as (1 scratch, 1 dent), but it has 2 scratches",
        "the impression gives c.png as (1 dent), but it has no findings",
        "the impression names z.png, which was not examined",
    ]
    miscounted = "3 of 3 parts flagged for review: a.png (2 scratches); b.png (1 dent). 2 other parts pass."
    assert impression_problems(miscounted, request) == [
        "the impression gives 3 of 3 parts, but 2 of 3 are flagged",
        "the impression passes 2 other part(s), but 1 have no findings",
    ]


def test_the_answers_totals_are_checked_like_the_impression(
    medical_request: Any, good_answer: Callable[..., str]
) -> None:
    from models.reporter.prompts import totals_phrase

    assert totals_phrase(medical_request) == "2 lesions detected; largest 15.2 mm"
    answer = json.loads(good_answer(medical_request))
    answer["totals"] = totals_phrase(medical_request)
    assert _problems(medical_request, json.dumps(answer)) == []
    answer["totals"] = "3 lesions detected; largest 11.9 mm"
    assert _problems(medical_request, json.dumps(answer)) == [
        "the totals states 3 lesion(s), but 2 were detected",
        "the totals gives the largest size as 11.9 mm, not 15.2 mm",
    ]
    del answer["totals"]  # optional: answers to prompts before v4 have none
    assert parse_output(json.dumps(answer)).totals is None


def test_guided_strings_may_quote_only_their_own_findings_values(medical_request: Any) -> None:
    # A description quoting another lesion's size is a contradiction guided decoding rules out.
    skeleton = answer_skeleton(medical_request)
    first, second, impression = [p.quotes for p in skeleton if isinstance(p, OpenString)]
    assert "15.2" in first and "11.9" not in first
    assert "11.9" in second and "15.2" not in second
    assert impression == copyable_words(totals_phrase(medical_request)) == {"2", "15.2"}
