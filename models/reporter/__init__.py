"""Report backends behind one interface: the template, and language models held to the findings."""

from pathlib import Path

from models.reporter.base import ReportContext, Reporter
from models.reporter.cache import ReportCache
from models.reporter.config import CropSettings, GenerationSettings, ReporterConfig
from models.reporter.grounded import GroundedReporter
from models.reporter.schema import FindingInput, Report, ReportFinding, ReportProvenance, ReportRequest
from models.reporter.template import TemplateReporter


def get_reporter(
    config: ReporterConfig,
    *,
    device: str = "cpu",
    cache: ReportCache | None = None,
    deid_key: bytes | None = None,
) -> Reporter:
    """The reporter ``config`` names; language-model backends fall back to the template themselves."""
    if config.backend == "template":
        return TemplateReporter()
    if not config.model:
        raise ValueError(f"the {config.backend} reporter needs a model (ARGUS_REPORTER_MODEL)")
    if config.backend == "transformers":
        from models.reporter.local_vlm import TransformersBackend

        local = TransformersBackend(Path(config.model).expanduser(), device, config.generation)
        return GroundedReporter(local, config.generation, cache=cache)
    if not config.url:
        raise ValueError("the openai reporter needs an endpoint URL (ARGUS_REPORTER_URL)")
    from models.reporter.openai_api import OpenAIBackend

    remote = OpenAIBackend(
        config.url,
        config.model,
        config.generation,
        api_key=config.api_key,
        timeout=config.timeout,
        retries=config.retries,
    )
    return GroundedReporter(remote, config.generation, cache=cache, deid_key=deid_key)


__all__ = [
    "CropSettings",
    "FindingInput",
    "GenerationSettings",
    "Report",
    "ReportCache",
    "ReportContext",
    "ReportFinding",
    "ReportProvenance",
    "ReportRequest",
    "Reporter",
    "ReporterConfig",
    "TemplateReporter",
    "get_reporter",
]
