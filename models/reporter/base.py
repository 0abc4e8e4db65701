"""The interface every report backend implements (template, transformers, OpenAI-compatible)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from models.reporter.crops import RoiCrop
from models.reporter.schema import Report, ReportRequest


@dataclass(frozen=True)
class ReportContext:
    """What a reporter may use besides the request: ROI crops, and identifiers that must not leave.

    ``identifiers`` are the study's known patient identifiers and UIDs (patient ID, accession number,
    study and series UIDs); a backend that sends text out of the process scrubs them first.
    """

    crops: tuple[RoiCrop, ...] = ()
    identifiers: tuple[str, ...] = ()


class Reporter(Protocol):
    """Turns grounded findings into a structured, validated report."""

    name: str
    model: str

    def generate(self, request: ReportRequest, context: ReportContext | None = None) -> Report:
        """Write the report for one study."""
        ...
