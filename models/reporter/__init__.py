"""Report backends behind one interface."""

from models.reporter.base import Reporter
from models.reporter.schema import FindingInput, Report, ReportFinding, ReportRequest
from models.reporter.template import TemplateReporter


def get_reporter(name: str) -> Reporter:
    """The reporter backend called ``name``."""
    if name == "template":
        return TemplateReporter()
    raise ValueError(f"unknown reporter {name!r}; available: template")


__all__ = [
    "FindingInput",
    "Report",
    "ReportFinding",
    "ReportRequest",
    "Reporter",
    "TemplateReporter",
    "get_reporter",
]
