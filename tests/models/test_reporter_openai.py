"""The OpenAI-compatible backend against a local chat server: answers, repairs, retries, outages, cache."""

from __future__ import annotations

import base64
import json
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pydantic import SecretStr

from models.reporter import GenerationSettings, ReportCache, ReportContext
from models.reporter.chat import BackendError
from models.reporter.config import CropSettings
from models.reporter.crops import CropRegion, roi_crops
from models.reporter.deid import Deidentifier
from models.reporter.grounded import GroundedReporter
from models.reporter.openai_api import OpenAIBackend
from storage.object_store import FilesystemObjectStore

KEY = b"test-deid-key-0123456789abcdef!!"
GREEDY = GenerationSettings(max_new_tokens=256)


def _reporter(url: str, cache: ReportCache | None = None, **kw: Any) -> GroundedReporter:
    options = {"timeout": 5.0, "retries": 2, "backoff": 0.01} | kw
    generation = options.pop("generation", GREEDY)
    backend = OpenAIBackend(url, "tiny-vlm", generation, api_key=SecretStr("sk-test"), **options)
    return GroundedReporter(backend, generation, cache=cache, deid_key=KEY)


def _context(request: Any) -> ReportContext:
    frames = [np.full((256, 256), 40, np.uint8) for _ in range(8)]
    regions = [CropRegion(f.index, f.slice_number - 1, f.box, f.score) for f in request.findings]
    return ReportContext(crops=tuple(roi_crops(frames, regions, CropSettings())))


def test_good_answer_becomes_a_grounded_report_with_provenance(
    chat_server: Any, medical_request: Any, good_answer: Callable[..., str]
) -> None:
    chat_server.answer(good_answer(medical_request))
    report = _reporter(chat_server.url).generate(medical_request, _context(medical_request))
    assert report.reporter == "openai" and report.model == "tiny-vlm" and report.ai_generated
    assert [f.description for f in report.findings] == ["Well-defined hypodense lesion."] * 2
    # Sizes, scores and locations are the detector's, whatever the model wrote.
    assert report.findings[0].size == "15.2 x 12.1 mm, area 180.2 mm2"
    assert "Well-defined hypodense lesion." in report.text
    assert report.impression.startswith("2 lesions detected")
    p = report.provenance
    assert p is not None and p.fallback_reason is None and p.attempts == 1 and p.deidentified
    assert (p.backend, p.prompt_version, p.weights_sha256) == ("openai", "medical-v4", None)
    assert p.generation == {
        "max_new_tokens": 256,
        "temperature": 0.0,
        "top_p": 1.0,
        "guided": True,
        "do_sample": False,
    }
    (body,) = chat_server.requests
    assert body["model"] == "tiny-vlm" and body["max_tokens"] == 256
    parts = body["messages"][1]["content"]
    images = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert len(images) == 2 and all(u.startswith("data:image/png;base64,") for u in images)
    crop = cv2.imdecode(np.frombuffer(base64.b64decode(images[0].split(",", 1)[1]), np.uint8), 0)
    assert crop.shape == (32, 40)  # a 20 x 16 px box with 8-10 px of context per side, not the whole slice
    assert chat_server.headers[0]["Authorization"] == "Bearer sk-test"


def test_malformed_answer_is_repaired_once(
    chat_server: Any, medical_request: Any, good_answer: Callable[..., str]
) -> None:
    chat_server.answer("Sure! The report: {findings: two lesions}")
    chat_server.answer(good_answer(medical_request))
    report = _reporter(chat_server.url).generate(medical_request)
    assert report.reporter == "openai"
    assert report.provenance is not None and report.provenance.attempts == 2
    assert report.provenance.fallback_reason is None
    repair = chat_server.requests[1]["messages"]
    assert repair[-2] == {"role": "assistant", "content": "Sure! The report: {findings: two lesions}"}
    assert "Your answer was rejected: the answer is not valid JSON" in repair[-1]["content"]


def test_hallucinating_twice_falls_back_to_the_template_and_says_why(
    chat_server: Any, medical_request: Any, good_answer: Callable[..., str]
) -> None:
    invented = json.loads(good_answer(medical_request))
    invented["findings"].append({"index": 7, "label": "lesion", "longest_mm": 30.0, "description": "Large."})
    chat_server.answer(json.dumps(invented))
    chat_server.answer(good_answer(medical_request)[:60], finish_reason="length")
    report = _reporter(chat_server.url).generate(medical_request)
    assert report.reporter == "template" and report.ai_generated
    assert [f.description for f in report.findings] == [None, None]
    reason = report.provenance.fallback_reason if report.provenance else None
    assert reason is not None
    assert "finding #7 (lesion) was not detected: it is hallucinated" in reason
    assert "repaired answer rejected (the answer is truncated" in reason
    assert report.provenance is not None and report.provenance.attempts == 2
    assert "Well-defined" not in report.text


def test_server_errors_are_retried_then_answered(
    chat_server: Any, medical_request: Any, good_answer: Callable[..., str]
) -> None:
    chat_server.fail(500)
    chat_server.fail(503)
    chat_server.answer(good_answer(medical_request))
    report = _reporter(chat_server.url).generate(medical_request)
    assert report.reporter == "openai" and len(chat_server.requests) == 3


def test_client_errors_are_not_retried(chat_server: Any, medical_request: Any) -> None:
    chat_server.fail(400, "unknown model tiny-vlm")
    backend = OpenAIBackend(chat_server.url, "tiny-vlm", GREEDY, retries=3, backoff=0.01)
    with pytest.raises(
        BackendError, match=r"/v1/chat/completions refused the request: HTTP 400: unknown model"
    ):
        backend.complete([])
    assert len(chat_server.requests) == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_endpoint_down_gives_a_clear_error_and_the_template_report(medical_request: Any) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    backend = OpenAIBackend(url, "tiny-vlm", GREEDY, retries=1, backoff=0.01)
    with pytest.raises(
        BackendError, match=rf"{url}/chat/completions failed after 2 attempt\(s\): cannot connect"
    ):
        backend.complete([])
    report = _reporter(url, retries=1).generate(medical_request)
    assert report.reporter == "template"
    assert report.provenance is not None and url in (report.provenance.fallback_reason or "")
    assert report.provenance.attempts == 0


def test_slow_endpoint_times_out(
    chat_server: Any, medical_request: Any, good_answer: Callable[..., str]
) -> None:
    chat_server.delay = 1.0
    chat_server.answer(good_answer(medical_request))
    chat_server.answer(good_answer(medical_request))
    started = time.monotonic()
    report = _reporter(chat_server.url, timeout=0.3, retries=1).generate(medical_request)
    assert time.monotonic() - started < 2.5  # two 0.3 s attempts, not two full answers
    assert report.reporter == "template"
    assert "failed after 2 attempt(s): no answer within 0.3 s" in (report.provenance.fallback_reason or "")


def test_no_identifier_reaches_the_server(
    chat_server: Any, medical_request: Any, good_answer: Callable[..., str]
) -> None:
    study_uid = medical_request.study_uid
    series_uid = "1.2.826.0.1.3680043.8.498.222"
    # Identifiers in the one free-text field a prompt carries (an image name) and echoed by the model.
    f = medical_request.findings[0]
    named = f.model_copy(update={"image_name": "DOE^JOHN_PAT-778899_19700101.png"})
    request = medical_request.model_copy(
        update={"domain": "industrial", "findings": [named.model_copy(update={"label": "dent"})]}
    )
    chat_server.answer(f"Patient DOE^JOHN (PAT-778899, born 1970-01-01, acc ACC-4455, study {study_uid}) has")
    chat_server.answer("still nothing")
    identifiers = ("PAT-778899", "ACC-4455", "DOE^JOHN", study_uid, series_uid)
    report = _reporter(chat_server.url).generate(request, ReportContext(identifiers=identifiers))
    assert report.reporter == "template"  # the answers were useless; what matters is what was sent
    sent = json.dumps(chat_server.requests)
    for secret in ("PAT-778899", "ACC-4455", "DOE", "JOHN", study_uid, "19700101", "1970-01-01"):
        assert secret not in sent, secret
    # Pseudonyms are stable: the image name reads the same in the first request and in the repair.
    first = chat_server.requests[0]["messages"][1]["content"]
    pseudonyms = set(re.findall(r"ID-[0-9a-f]{12}", first))
    assert len(pseudonyms) == 2  # the name and the patient ID in the image name
    repair = chat_server.requests[1]["messages"]
    assert pseudonyms <= set(re.findall(r"ID-[0-9a-f]{12}", json.dumps(repair)))
    name = Deidentifier(KEY).pseudonym("DOE^JOHN")
    assert name in first and repair[2]["content"].startswith(f"Patient {name} (")
    assert "[date removed]" in sent


def test_same_question_is_answered_from_the_cache(
    chat_server: Any, medical_request: Any, good_answer: Callable[..., str], tmp_path: Path
) -> None:
    cache = ReportCache(FilesystemObjectStore(tmp_path / "objects"))
    chat_server.answer(good_answer(medical_request))
    first = _reporter(chat_server.url, cache).generate(medical_request, _context(medical_request))
    again = _reporter(chat_server.url, cache).generate(medical_request, _context(medical_request))
    assert len(chat_server.requests) == 1
    assert again.text == first.text and again.reporter == "openai"
    assert again.provenance is not None and again.provenance.cached and again.provenance.attempts == 0
    key = again.provenance.cache_key
    assert (tmp_path / "objects" / "cache" / "reporter" / key[:2] / f"{key}.json").is_file()
    # Other crops or other generation settings are another question.
    chat_server.answer(good_answer(medical_request))
    chat_server.answer(good_answer(medical_request))
    sampled = GenerationSettings(max_new_tokens=256, temperature=0.7)
    _reporter(chat_server.url, cache, generation=sampled).generate(medical_request, _context(medical_request))
    _reporter(chat_server.url, cache).generate(medical_request)  # no crops
    assert len(chat_server.requests) == 3


def test_fallbacks_are_not_cached(chat_server: Any, medical_request: Any, tmp_path: Path) -> None:
    cache = ReportCache(FilesystemObjectStore(tmp_path / "objects"))
    chat_server.fail(400, "bad request")
    assert _reporter(chat_server.url, cache).generate(medical_request).reporter == "template"
    assert not (tmp_path / "objects" / "cache").exists()
