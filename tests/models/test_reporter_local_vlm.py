"""The transformers backend with a tiny random-weight LLaVA built in the test: load, generate, fall back."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.reporter import GenerationSettings, ReportContext, ReporterConfig, get_reporter
from models.reporter.chat import BackendError, ChatMessage
from models.reporter.config import CropSettings
from models.reporter.crops import CropRegion, roi_crops
from models.reporter.local_vlm import TransformersBackend, load_vlm, weights_sha256

SHORT = GenerationSettings(max_new_tokens=24, guided=False)


def _crops(n: int) -> tuple[Any, ...]:
    frame = np.random.default_rng(0).integers(0, 255, (128, 128), dtype=np.uint8)
    regions = [CropRegion(i + 1, 0, (10.0 + 20 * i, 10.0, 30.0 + 20 * i, 30.0), 0.9) for i in range(n)]
    return tuple(roi_crops([frame], regions, CropSettings()))


def test_local_model_dir_loads_offline_and_generates(tiny_vlm_dir: Path) -> None:
    backend = TransformersBackend(tiny_vlm_dir, "cpu", SHORT)
    completion = backend.complete(
        [ChatMessage("system", "Be brief."), ChatMessage("user", "Report.", _crops(2))]
    )
    assert isinstance(completion.text, str)
    assert completion.completion_tokens is not None and 1 <= completion.completion_tokens <= 24
    # Each 32 px crop is 16 patch tokens in the prompt: the images did reach the model.
    assert completion.prompt_tokens is not None and completion.prompt_tokens > 32
    file_hash = hashlib.sha256((tiny_vlm_dir / "model.safetensors").read_bytes()).hexdigest()
    expected = hashlib.sha256(f"model.safetensors:{file_hash}\n".encode()).hexdigest()
    assert backend.weights_sha256 == expected
    assert backend.identity() == {
        "backend": "transformers",
        "model": str(tiny_vlm_dir),
        "weights_sha256": expected,
    }


def test_garbage_output_is_repaired_once_then_falls_back(tiny_vlm_dir: Path, medical_request: Any) -> None:
    config = ReporterConfig(backend="transformers", model=str(tiny_vlm_dir), generation=SHORT)
    reporter = get_reporter(config, device="cpu")
    crops = _crops(2)
    report = reporter.generate(medical_request, ReportContext(crops=crops))
    # Random weights write no valid JSON: the first answer and the repaired one are rejected.
    assert report.reporter == "template" and report.ai_generated
    p = report.provenance
    assert p is not None and p.backend == "transformers" and p.model == str(tiny_vlm_dir)
    assert p.attempts == 2 and p.weights_sha256 == weights_sha256(tiny_vlm_dir)
    assert p.fallback_reason is not None and "; repaired answer rejected (" in p.fallback_reason
    assert p.prompt_version == "medical-v4" and p.generation["max_new_tokens"] == 24
    assert not p.deidentified  # nothing left the process
    assert [f.index for f in report.findings] == [1, 2]


def test_guided_decoding_gives_the_findings_and_generates_only_the_text(
    tiny_vlm_dir: Path, medical_request: Any
) -> None:
    from models.reporter.chat import OpenString
    from models.reporter.copying import fits
    from models.reporter.output import answer_skeleton, grounding_problems, parse_output
    from models.reporter.prompts import build_messages, load_prompt

    backend = TransformersBackend(tiny_vlm_dir, "cpu", GenerationSettings(max_new_tokens=30))  # 10 a string
    messages = build_messages(medical_request, list(_crops(2)), load_prompt("medical"))
    skeleton = answer_skeleton(medical_request)
    completion = backend.complete(messages, skeleton)
    # Random weights, yet a parseable answer whose count, indices, labels and sizes are the findings'.
    output = parse_output(completion.text)
    assert output.finding_count == 2 and [(f.index, f.label) for f in output.findings] == [
        (1, "lesion"),
        (2, "lesion"),
    ]
    assert [f.longest_mm for f in output.findings] == [15.2, 11.9]
    assert not [p for p in grounding_problems(output, medical_request) if "finding #" in p]
    # Whatever it wrote, its numbers and names are copies (a cut-off one, a beginning) of its own
    # finding's values, or of the totals' in the impression.
    quotes = [p.quotes for p in skeleton if isinstance(p, OpenString)]
    written = [*(f.description for f in output.findings), output.impression]
    assert all(fits(text, q) for text, q in zip(written, quotes, strict=True))
    assert 0 < (completion.completion_tokens or 0) <= 30 and completion.prompt_tokens


def test_missing_or_broken_model_dir_names_the_directory(tiny_vlm_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(BackendError, match=f"reporter model dir {missing} does not exist"):
        TransformersBackend(missing, "cpu", SHORT)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BackendError, match=r"has no config\.json"):
        TransformersBackend(empty, "cpu", SHORT)
    no_weights = tmp_path / "no-weights"
    shutil.copytree(tiny_vlm_dir, no_weights)
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(BackendError, match=f"reporter model dir {no_weights} holds no weight files"):
        TransformersBackend(no_weights, "cpu", SHORT)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_vlm_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    backend = TransformersBackend(broken, "cpu", SHORT)
    with pytest.raises(BackendError, match=f"cannot load the reporter model from {broken}"):
        backend.complete([ChatMessage("user", "Report.")])


def test_weights_replaced_in_place_get_a_new_hash(tiny_vlm_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(tiny_vlm_dir, copy)
    before = weights_sha256(copy)
    assert before == weights_sha256(tiny_vlm_dir)  # content, not location
    (copy / "extra.bin").write_bytes(b"\x00" * 16)
    assert weights_sha256(copy) != before
    load_vlm.cache_clear()
