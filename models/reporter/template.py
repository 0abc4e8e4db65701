"""Deterministic template reporter: the reference backend and the fallback of every other one."""

from __future__ import annotations

from models.reporter.schema import FindingInput, Report, ReportFinding, ReportRequest


def describe_location(finding: FindingInput, domain: str) -> str:
    """Where a finding lies, in words: patient directions for medical images, image regions otherwise."""
    x1, y1, x2, y2 = finding.box
    cx, cy = (x1 + x2) / 2 / finding.image_width, (y1 + y2) / 2 / finding.image_height
    if domain == "medical":
        # Axial images are viewed from the feet: image left is the patient's right.
        side = "right" if cx < 0.5 else "left"
        depth = "anterior" if cy < 0.5 else "posterior"
        where = f"{side} {depth}"
        if finding.slice_number is not None:
            total = f" of {finding.slices_in_series}" if finding.slices_in_series else ""
            where += f", slice {finding.slice_number}{total}"
        return where
    vertical = "upper" if cy < 1 / 3 else "lower" if cy > 2 / 3 else "middle"
    horizontal = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "centre"
    region = "centre" if vertical == "middle" and horizontal == "centre" else f"{vertical} {horizontal}"
    where = f"{region} at ({(x1 + x2) / 2:.0f}, {(y1 + y2) / 2:.0f}) px"
    return f"{finding.image_name}, {where}" if finding.image_name else where


def describe_size(finding: FindingInput) -> str:
    """Extent and area, in mm where the image has a pixel spacing, else in pixels."""
    x1, y1, x2, y2 = finding.box
    if finding.area_px == 0:
        return f"detection box {x2 - x1:.0f} x {y2 - y1:.0f} px (segmentation found no mask to measure)"
    if finding.width_mm is not None and finding.height_mm is not None and finding.area_mm2 is not None:
        return f"{finding.width_mm:.1f} x {finding.height_mm:.1f} mm, area {finding.area_mm2:.1f} mm2"
    return f"{x2 - x1:.0f} x {y2 - y1:.0f} px, area {finding.area_px:.0f} px"


class TemplateReporter:
    """Reports exactly the detector's findings, phrased from fixed templates."""

    name = "template"
    model = "argus-template-v1"

    def generate(self, request: ReportRequest) -> Report:
        """Structured report and text for one study."""
        findings = [
            ReportFinding(
                index=f.index,
                label=f.label,
                score=round(f.score, 3),
                location=describe_location(f, request.domain),
                size=describe_size(f),
                area_mm2=None if f.area_mm2 is None else round(f.area_mm2, 1),
                area_px=round(f.area_px, 1),
            )
            for f in request.findings
        ]
        impression = self._impression(request)
        kind = "Diagnostic imaging" if request.domain == "medical" else "Surface inspection"
        title = f"{kind} report"
        lines = [title, "", f"Study: {request.study_uid}"]
        if request.modality:
            lines.append(f"Modality: {request.modality}")
        lines.append(f"Images examined: {request.images_examined}")
        lines += ["", "Findings:"]
        if not findings:
            lines.append("- None detected.")
        lines += [
            f"- #{f.index} {f.label} (confidence {f.score:.2f}): {f.location}; {f.size}." for f in findings
        ]
        lines += ["", f"Impression: {impression}"]
        return Report(
            title=title,
            domain=request.domain,
            findings=findings,
            impression=impression,
            text="\n".join(lines),
            reporter=self.name,
            model=self.model,
        )

    @staticmethod
    def _impression(request: ReportRequest) -> str:
        if not request.findings:
            if request.domain == "medical":
                return "No focal lesion detected."
            return "No surface defect detected; part passes visual inspection."
        counts: dict[str, int] = {}
        for f in request.findings:
            counts[f.label] = counts.get(f.label, 0) + 1
        listed = ", ".join(f"{n} {label}{'s' if n > 1 else ''}" for label, n in sorted(counts.items()))
        if request.domain == "medical":
            largest = max(request.findings, key=lambda f: f.area_mm2 or f.area_px)
            size = describe_size(largest)
            return f"{listed} detected; largest {size}. Recommend radiologist review."
        return f"{listed} detected; part flagged for QC review."
