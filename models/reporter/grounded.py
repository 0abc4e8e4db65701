"""A language-model reporter held to the detector's findings: validate, repair once, else fall back.

The model writes each finding's description and the impression; labels, scores, sizes and locations
in the report always come from the detector and segmenter (``grounded_findings``), so a model can
word a report but never change what was found.
"""

from __future__ import annotations

import logging

from models.reporter.base import ReportContext
from models.reporter.cache import CachedAnswer, ReportCache, cache_key
from models.reporter.chat import BackendError, ChatBackend, ChatMessage, Completion
from models.reporter.config import GenerationSettings
from models.reporter.deid import Deidentifier
from models.reporter.output import (
    ModelOutput,
    OutputError,
    answer_skeleton,
    grounding_problems,
    parse_output,
)
from models.reporter.prompts import build_messages, load_prompt, repair_messages
from models.reporter.schema import Report, ReportProvenance, ReportRequest
from models.reporter.template import TemplateReporter, grounded_findings, render_report

log = logging.getLogger(__name__)


def accept(completion: Completion, request: ReportRequest) -> ModelOutput:
    """The parsed answer if it agrees with the detector's findings; else ``OutputError`` saying why."""
    output = parse_output(completion.text, completion.truncated)
    problems = grounding_problems(output, request)
    if problems:
        raise OutputError(problems)
    return output


class GroundedReporter:
    """Reports through a chat backend; every report carries its provenance and is AI-generated."""

    def __init__(
        self,
        backend: ChatBackend,
        generation: GenerationSettings,
        *,
        cache: ReportCache | None = None,
        deid_key: bytes | None = None,
    ) -> None:
        if backend.external and deid_key is None:
            raise ValueError(f"the {backend.name} backend sends text out: it needs a de-identification key")
        self.backend = backend
        self.generation = generation
        self.cache = cache
        self.deid_key = deid_key
        self.fallback = TemplateReporter()
        self.name = backend.name
        self.model = backend.model

    def generate(self, request: ReportRequest, context: ReportContext | None = None) -> Report:
        """The model's report for one study, from the cache when the same question was answered before."""
        context = context or ReportContext()
        prompt = load_prompt(request.domain)
        messages = build_messages(request, list(context.crops), prompt)
        deid = (
            Deidentifier(self.deid_key, context.identifiers)
            if self.backend.external and self.deid_key
            else None
        )
        if deid is not None:
            messages = deid.scrub_messages(messages)
        key = cache_key(self.backend.identity(), prompt.version, self.generation.as_record(), messages)
        provenance = ReportProvenance(
            backend=self.backend.name,
            model=self.backend.model,
            weights_sha256=self.backend.weights_sha256,
            prompt_version=prompt.version,
            generation=self.generation.as_record(),
            cache_key=key,
            deidentified=deid is not None,
        )
        cached = self.cache.get(key) if self.cache is not None else None
        if cached is not None:
            try:
                output = accept(Completion(cached.answer, truncated=False), request)
                return self._report(request, output, provenance.model_copy(update={"cached": True}))
            except OutputError:
                log.warning("cached answer %s no longer validates; asking the model again", key)
        return self._ask(request, messages, deid, provenance)

    def _ask(
        self,
        request: ReportRequest,
        messages: list[ChatMessage],
        deid: Deidentifier | None,
        provenance: ReportProvenance,
    ) -> Report:
        attempts = 0
        skeleton = answer_skeleton(request) if self.generation.guided else None
        try:
            completion = self.backend.complete(messages, skeleton)
            attempts += 1
            try:
                output = accept(completion, request)
            except OutputError as first:
                # One repair: the model sees its answer and what was wrong with it.
                repair = repair_messages(messages, completion.text, first.problems)
                completion = self.backend.complete(deid.scrub_messages(repair) if deid else repair, skeleton)
                attempts += 1
                try:
                    output = accept(completion, request)
                except OutputError as second:
                    reason = f"answer rejected ({first}); repaired answer rejected ({second})"
                    return self._fall_back(request, provenance, attempts, reason)
        except BackendError as exc:
            return self._fall_back(request, provenance, attempts, str(exc))
        if self.cache is not None:
            self.cache.put(provenance.cache_key, CachedAnswer(answer=completion.text, attempts=attempts))
        return self._report(request, output, provenance.model_copy(update={"attempts": attempts}))

    def _report(self, request: ReportRequest, output: ModelOutput, provenance: ReportProvenance) -> Report:
        descriptions = {f.index: f.description.strip() for f in output.findings}
        findings = [
            f.model_copy(update={"description": descriptions.get(f.index)})
            for f in grounded_findings(request)
        ]
        report = render_report(request, findings, output.impression.strip(), self.name, self.model)
        return report.model_copy(update={"provenance": provenance})

    def _fall_back(
        self, request: ReportRequest, provenance: ReportProvenance, attempts: int, reason: str
    ) -> Report:
        log.warning(
            "%s reporter fell back to the template for study %s: %s", self.name, request.study_uid, reason
        )
        report = self.fallback.generate(request)
        update = {"attempts": attempts, "fallback_reason": reason}
        return report.model_copy(update={"provenance": provenance.model_copy(update=update)})
