"""Deterministic template reporter: the reference backend and the fallback of every other one."""

from __future__ import annotations

from models.reporter.base import ReportContext
from models.reporter.schema import FindingInput, Report, ReportFinding, ReportRequest


def plural(n: int, word: str) -> str:
    """ "1 scratch", "2 scratches", "3 dents"."""
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word}{'es' if word.endswith(('s', 'sh', 'ch', 'x', 'z')) else 's'}"


def label_counts(findings: list[FindingInput]) -> dict[str, int]:
    """How many findings carry each label."""
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.label] = counts.get(f.label, 0) + 1
    return counts


def count_labels(findings: list[FindingInput]) -> str:
    """ "2 cracks, 1 dent"-style summary of findings by label."""
    return ", ".join(plural(n, label) for label, n in sorted(label_counts(findings).items()))


def findings_by_part(request: ReportRequest) -> dict[str, list[FindingInput]]:
    """The findings of each image that has any, in order of first finding."""
    by_image: dict[str, list[FindingInput]] = {}
    for f in request.findings:
        by_image.setdefault(f.image_name or "image", []).append(f)
    return by_image


def flagged_parts(request: ReportRequest) -> list[str]:
    """ "part-003.png (1 dent, 1 scratch)" for every image with findings, in order of first finding."""
    return [f"{name} ({count_labels(items)})" for name, items in findings_by_part(request).items()]


OPPOSITE = {
    "right": "left",
    "left": "right",
    "anterior": "posterior",
    "posterior": "anterior",
    "superior": "inferior",
    "inferior": "superior",
}


def describe_location(finding: FindingInput, domain: str) -> str:
    """Where a finding lies, in words: patient directions for medical images, image regions otherwise."""
    x1, y1, x2, y2 = finding.box
    cx, cy = (x1 + x2) / 2 / finding.image_width, (y1 + y2) / 2 / finding.image_height
    if domain == "medical":
        if finding.patient_directions is not None:
            left_edge, top_edge = finding.patient_directions
            # From the image halves: assumes the patient is centred in the field of view.
            side = left_edge if cx < 0.5 else OPPOSITE[left_edge]
            depth = top_edge if cy < 0.5 else OPPOSITE[top_edge]
            where = f"{side} {depth} image quadrant"
        else:
            # No orientation in the file: say where in the image, never guess the patient's side.
            where = f"image {'upper' if cy < 0.5 else 'lower'} {'left' if cx < 0.5 else 'right'}"
        if finding.slice_range is not None and finding.slice_range[0] != finding.slice_range[1]:
            first, last = finding.slice_range
            where += f", slices {first}-{last} (largest on slice {finding.slice_number})"
        elif finding.slice_number is not None:
            where += f", slice {finding.slice_number}"
        return where
    vertical = "upper" if cy < 1 / 3 else "lower" if cy > 2 / 3 else "middle"
    horizontal = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "centre"
    region = "centre" if vertical == "middle" and horizontal == "centre" else f"{vertical} {horizontal}"
    where = f"{region} at ({(x1 + x2) / 2:.0f}, {(y1 + y2) / 2:.0f}) px"
    return f"{finding.image_name}, {where}" if finding.image_name else where


def describe_size(finding: FindingInput) -> str:
    """Extent and area (a lesion in a volume: extent in 3-D and volume), in mm where known, else in pixels."""
    x1, y1, x2, y2 = finding.box
    if finding.area_px == 0:
        return f"detection box {x2 - x1:.0f} x {y2 - y1:.0f} px (segmentation found no mask to measure)"
    if finding.slice_count is not None:
        return _describe_volume(finding)
    if finding.width_mm is not None and finding.height_mm is not None and finding.area_mm2 is not None:
        return f"{finding.width_mm:.1f} x {finding.height_mm:.1f} mm, area {finding.area_mm2:.1f} mm2"
    return f"{x2 - x1:.0f} x {y2 - y1:.0f} px, area {finding.area_px:.0f} px"


def _describe_volume(finding: FindingInput) -> str:
    """ "W x H x D mm, volume V mm3", or as much of it as the series' geometry allows, saying why."""
    x1, y1, x2, y2 = finding.box
    if finding.width_mm is not None and finding.height_mm is not None:
        in_plane = f"{finding.width_mm:.1f} x {finding.height_mm:.1f}"
        unit = "mm"
    else:
        in_plane, unit = f"{x2 - x1:.0f} x {y2 - y1:.0f}", "px"
    if finding.depth_mm is not None and unit == "mm":
        size = f"{in_plane} x {finding.depth_mm:.1f} mm"
    else:
        size = f"{in_plane} {unit} over {finding.slice_count} slice{'s' if finding.slice_count != 1 else ''}"
    if finding.volume_mm3 is not None:
        size += f", volume {finding.volume_mm3:.0f} mm3"
    return f"{size} ({finding.geometry_note})" if finding.geometry_note else size


def grounded_findings(request: ReportRequest) -> list[ReportFinding]:
    """The detector's findings as report entries: labels, scores and sizes exactly as measured."""
    return [
        ReportFinding(
            index=f.index,
            label=f.label,
            score=f.score,  # unrounded: the text and the CLI format the same number the same way
            location=describe_location(f, request.domain),
            size=describe_size(f),
            area_mm2=None if f.area_mm2 is None else round(f.area_mm2, 1),
            area_px=round(f.area_px, 1),
            slice_range=f.slice_range,
            depth_mm=f.depth_mm,
            volume_mm3=f.volume_mm3,
        )
        for f in request.findings
    ]


def render_report(
    request: ReportRequest, findings: list[ReportFinding], impression: str, reporter: str, model: str
) -> Report:
    """The structured report and its text; limitations make the impression say INCOMPLETE first."""
    kind = "Diagnostic imaging" if request.domain == "medical" else "Surface inspection"
    title = f"{kind} report"
    lines = [title, "", f"Study: {request.study_uid}"]
    if request.modality:
        lines.append(f"Modality: {request.modality}")
    lines.append(f"Images examined: {request.images_examined}")
    lines += ["", "Findings:"]
    if not findings:
        lines.append("- None detected.")
    for f in findings:
        line = f"- #{f.index} {f.label} (confidence {f.score:.2f}): {f.location}; {f.size}."
        lines.append(f"{line} {f.description}" if f.description else line)
    if request.notes:
        lines += ["", "Limitations:", *[f"- {note}" for note in request.notes]]
        impression = f"INCOMPLETE: {len(request.notes)} limitation(s), see above. {impression}"
    lines += ["", f"Impression: {impression}"]
    return Report(
        title=title,
        domain=request.domain,
        findings=findings,
        impression=impression,
        limitations=list(request.notes),
        text="\n".join(lines),
        reporter=reporter,
        model=model,
    )


class TemplateReporter:
    """Reports exactly the detector's findings, phrased from fixed templates."""

    name = "template"
    model = "argus-template-v1"

    def generate(self, request: ReportRequest, context: ReportContext | None = None) -> Report:
        """Structured report and text for one study (the template has no use for crops)."""
        return render_report(
            request, grounded_findings(request), self._impression(request), self.name, self.model
        )

    @staticmethod
    def _impression(request: ReportRequest) -> str:
        if request.domain == "medical":
            if not request.findings:
                return "No focal lesion detected."
            # Lesions in a volume compare by volume first: their key-slice areas are sections only.
            largest = max(request.findings, key=lambda f: (f.volume_mm3 or 0.0, f.area_mm2 or f.area_px))
            size = describe_size(largest)
            return f"{count_labels(request.findings)} detected; largest {size}. Recommend radiologist review."
        # Inspection: every part gets its own verdict; a batch verdict would fail good parts with bad ones.
        names = request.image_names or sorted({f.image_name or "image" for f in request.findings})
        by_image: dict[str, list[FindingInput]] = {name: [] for name in names}
        for f in request.findings:
            by_image.setdefault(f.image_name or "image", []).append(f)
        flagged = [f"{name} ({count_labels(items)})" for name, items in by_image.items() if items]
        passed = [name for name, items in by_image.items() if not items]
        if not flagged:
            return f"No surface defect detected; all {len(passed)} parts pass visual inspection."
        verdict = f"{len(flagged)} of {len(by_image)} parts flagged for QC review: {', '.join(flagged)}."
        return verdict + (f" Passed: {', '.join(passed)}." if passed else "")
