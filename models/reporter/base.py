"""The interface every report backend implements (template now; transformers and OpenAI-compatible later)."""

from __future__ import annotations

from typing import Protocol

from models.reporter.schema import Report, ReportRequest


class Reporter(Protocol):
    """Turns grounded findings into a structured, validated report."""

    name: str
    model: str

    def generate(self, request: ReportRequest) -> Report:
        """Write the report for one study."""
        ...
