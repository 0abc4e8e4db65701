"""Parsing a language model's answer and checking it against the detector's findings."""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.reporter.chat import OpenString, Skeleton
from models.reporter.copying import copyable_words
from models.reporter.prompts import finding_record, largest_mm, longest_mm, totals_phrase
from models.reporter.schema import FindingInput, ReportRequest
from models.reporter.template import count_labels, findings_by_part, label_counts

# A stated size may differ from the measurement by rounding, not more: 1 mm or 15 %, whichever is larger.
SIZE_TOLERANCE_MM = 1.0
SIZE_TOLERANCE_FRACTION = 0.15
_MM = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*mm\b")  # a size in mm within text

_NUMBER_WORDS = {
    "no": 0,
    "zero": 0,
    "one": 1,
    "a single": 1,
    "single": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}


class OutputFinding(BaseModel):
    """One finding as the model states it."""

    model_config = ConfigDict(extra="ignore")

    index: int
    label: str
    longest_mm: float | None = None
    description: str = Field(min_length=1, max_length=1000)


class ModelOutput(BaseModel):
    """The JSON object every prompt asks for."""

    model_config = ConfigDict(extra="ignore")

    finding_count: int
    findings: list[OutputFinding]
    # Prompts from v4 on ask for the totals before the impression; an answer without them parses.
    totals: str | None = Field(default=None, max_length=2000)
    impression: str = Field(min_length=1, max_length=2000)


class OutputError(ValueError):
    """The answer is unusable; ``problems`` say why, in words fit to send back in a repair prompt."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_output(text: str, truncated: bool = False) -> ModelOutput:
    """The first JSON object in ``text`` (code fences and chatter around it are tolerated)."""
    start = text.find("{")
    if start < 0:
        raise OutputError(["the answer holds no JSON object"])
    try:
        data, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as exc:
        # An object still open at the end is a cut-off answer, not a syntax slip: say so.
        if truncated or _unclosed(text[start:]):
            raise OutputError(["the answer is truncated: the JSON object is not closed"]) from exc
        raise OutputError([f"the answer is not valid JSON: {exc.msg} (character {exc.pos})"]) from exc
    if not isinstance(data, dict):
        raise OutputError(["the answer's JSON is not an object"])
    try:
        return ModelOutput.model_validate(data)
    except ValidationError as exc:
        fields = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise OutputError([f"the answer does not match the schema ({'; '.join(fields)})"]) from exc


def _unclosed(text: str) -> bool:
    """Whether ``text`` ends inside a string or with brackets still open."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            escaped = not escaped and char == "\\"
            if char == '"' and not escaped:
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return False  # closed: whatever broke the parse, it was not the end of the answer
    return in_string or depth > 0


def answer_skeleton(request: ReportRequest) -> Skeleton:
    """The answer JSON with every value the findings fix written out, and an ``OpenString`` where the
    model writes a string (each description, the impression): what guided decoding lets a model choose.

    A description may quote its own finding's values, the impression the totals'.
    """
    parts: list[str | OpenString] = [f'{{"finding_count": {len(request.findings)}, "findings": [']
    for n, f in enumerate(request.findings):
        head = json.dumps({"index": f.index, "label": f.label, "longest_mm": longest_mm(f)})[:-1]
        own = OpenString(copyable_words(json.dumps(finding_record(f, request.domain))))
        parts += [f'{", " if n else ""}{head}, "description": "', own, '"}']
    totals = totals_phrase(request)
    parts += [f'], "totals": {json.dumps(totals)}, "impression": "', OpenString(copyable_words(totals)), '"}']
    merged: list[str | OpenString] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return tuple(merged)


def grounding_problems(output: ModelOutput, request: ReportRequest) -> list[str]:
    """Where the answer contradicts the detector: invented, missing, relabelled or re-measured findings."""
    expected = {f.index: f for f in request.findings}
    problems = []
    seen: set[int] = set()
    for stated in output.findings:
        if stated.index in seen:
            problems.append(f"finding #{stated.index} is stated more than once")
            continue
        seen.add(stated.index)
        finding = expected.get(stated.index)
        if finding is None:
            problems.append(f"finding #{stated.index} ({stated.label}) was not detected: it is hallucinated")
            continue
        if stated.label.strip().lower() != finding.label.lower():
            problems.append(f"finding #{stated.index} is a {finding.label}, not a {stated.label}")
        problems += _size_problems(stated, longest_mm(finding))
        problems += _description_size_problems(stated, finding)
    for index in sorted(set(expected) - seen):
        problems.append(f"finding #{index} ({expected[index].label}) is missing")
    if output.finding_count != len(expected):
        problems.append(
            f"finding_count {output.finding_count} contradicts the {len(expected)} findings given"
        )
    problems += impression_problems(output.impression, request)
    if output.totals is not None:
        problems += impression_problems(output.totals, request, "totals")
    return problems


def _size_problems(stated: OutputFinding, measured: float | None) -> list[str]:
    if measured is None:
        if stated.longest_mm is not None:
            return [
                f"finding #{stated.index} has no size in mm, yet the answer states {stated.longest_mm} mm"
            ]
        return []
    if stated.longest_mm is None:
        return [f"finding #{stated.index} lacks longest_mm (measured {measured} mm)"]
    if not _agrees(stated.longest_mm, measured):
        return [f"finding #{stated.index} measures {measured} mm, not {stated.longest_mm} mm"]
    return []


def _unmeasured_sizes(text: str, measured: list[float]) -> list[str]:
    """The sizes in mm ``text`` states ("12.5 mm") that agree with none of ``measured`` (within rounding)."""
    return [
        match.group(0)
        for match in _MM.finditer(text)
        if not any(_agrees(float(match.group(1)), m) for m in measured)
    ]


def _description_size_problems(stated: OutputFinding, finding: FindingInput) -> list[str]:
    """Sizes in mm a finding's description states that the finding does not measure."""
    measured = [m for m in (finding.width_mm, finding.height_mm, finding.depth_mm) if m is not None]
    return [
        f"finding #{stated.index}'s description states {size}, which it does not measure"
        for size in _unmeasured_sizes(stated.description, measured)
    ]


def _stated_counts(impression: str, label: str) -> list[int]:
    words = "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True))
    # "2 lesions", "two hypodense lesions", "no focal lesion": a count, up to two words, the label.
    pattern = rf"\b(\d+|{words})\s+(?:[a-z-]+\s+){{0,2}}?{re.escape(label.lower())}(?:s|es)?\b"
    return [
        int(m.group(1)) if m.group(1).isdigit() else _NUMBER_WORDS[m.group(1)]
        for m in re.finditer(pattern, impression.lower())
    ]


def _impression_size_problems(impression: str, request: ReportRequest, field: str) -> list[str]:
    """Sizes in mm the impression (or ``field``) states that no finding measures (within rounding)."""
    measured = [
        value
        for f in request.findings
        for value in (longest_mm(f), f.width_mm, f.height_mm, f.depth_mm)
        if value is not None
    ]
    problems = [
        f"the {field} states {size}, which no finding measures"
        for size in _unmeasured_sizes(impression, measured)
    ]
    largest = re.search(r"\blargest:?\s+(?:is\s+|of\s+)?(\d+(?:\.\d+)?)\s*mm\b", impression, re.IGNORECASE)
    measured_largest = largest_mm(request)
    # "Largest" picks one finding: its size stated to the rounding of a whole mm, not another's.
    if largest and measured_largest is not None and abs(float(largest.group(1)) - measured_largest) > 0.5:
        stated = largest.group(1)
        problems.append(f"the {field} gives the largest size as {stated} mm, not {measured_largest} mm")
    return problems


_FILE_NAME = re.compile(r"[\w.-]+\.(?:png|jpe?g|tiff?|bmp|dcm)\b", re.IGNORECASE)
_COUNT = re.compile(r"(\d+)\s+([a-z-]+)")


def _part_problems(impression: str, request: ReportRequest, field: str) -> list[str]:
    """Parts the impression (or ``field``) names that were not examined, and per-part counts
    ("name (2 cracks)") that are not the part's findings."""
    examined = set(request.image_names) | {f.image_name for f in request.findings if f.image_name}
    by_part = findings_by_part(request)
    truth = {name: {k.lower(): v for k, v in label_counts(items).items()} for name, items in by_part.items()}
    labels = {f.label.lower() for f in request.findings}
    problems = []
    for match in _FILE_NAME.finditer(impression):
        name = match.group(0)
        if name not in examined:
            problems.append(f"the {field} names {name}, which was not examined")
            continue
        stated = re.match(r"\s*\(([^)]*)\)", impression[match.end() :])
        if stated is None:
            continue
        counts = {_singular(word, labels): int(n) for n, word in _COUNT.findall(stated.group(1).lower())}
        if counts != truth.get(name, {}):
            found = count_labels(by_part.get(name, [])) or "no findings"
            problems.append(f"the {field} gives {name} as ({stated.group(1)}), but it has {found}")
    return problems


def _part_count_problems(impression: str, request: ReportRequest, field: str) -> list[str]:
    """Part counts ("2 of 3 parts flagged", "1 other part passes") that are not the study's."""
    flagged = len(findings_by_part(request))
    examined = request.images_examined
    passing = examined - flagged
    text = impression.lower()
    problems = []
    for n, of in re.findall(r"\b(\d+) of (\d+) parts?\b", text):
        if (int(n), int(of)) != (flagged, examined):
            problems.append(f"the {field} gives {n} of {of} parts, but {flagged} of {examined} are flagged")
    for n in re.findall(r"\b(\d+) other parts? pass", text):
        if int(n) != passing:
            problems.append(f"the {field} passes {n} other part(s), but {passing} have no findings")
    return problems


def _singular(word: str, labels: set[str]) -> str:
    """The label ``word`` names, singular or plural ("scratches" -> "scratch"), else the word."""
    return next((label for label in labels if word in (label, f"{label}s", f"{label}es")), word)


def _agrees(stated: float, measured: float) -> bool:
    return abs(stated - measured) <= max(SIZE_TOLERANCE_MM, SIZE_TOLERANCE_FRACTION * measured)


def impression_problems(impression: str, request: ReportRequest, field: str = "impression") -> list[str]:
    """Counts the impression states that contradict the findings (and 'all parts pass' with defects);
    ``field`` names the answer field the text is (``totals`` is checked the same way)."""
    totals: dict[str, int] = {}
    for f in request.findings:
        totals[f.label] = totals.get(f.label, 0) + 1
    labels = set(totals) | ({"lesion"} if request.domain == "medical" else set())
    problems = []
    for label in sorted(labels):
        total = totals.get(label, 0)
        for count in _stated_counts(impression, label):
            # Inspection impressions count per part, so a part may state fewer than the study total,
            # and "no crack" may be said of a part that passes; more than detected is always wrong.
            wrong = count != total if request.domain == "medical" else count > total
            if wrong:
                problems.append(f"the {field} states {count} {label}(s), but {total} were detected")
    problems += _impression_size_problems(impression, request, field)
    if request.domain == "industrial":
        problems += _part_problems(impression, request, field)
        problems += _part_count_problems(impression, request, field)
    passes_all = re.search(r"\ball\b[^.]*\bpass", impression.lower())
    if request.domain == "industrial" and request.findings and passes_all:
        problems.append(f"the {field} passes all parts, but {len(request.findings)} defects were detected")
    return problems
