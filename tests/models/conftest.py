"""Reporter test fixtures: a tiny random-weight VLM on disk, a local chat server, a CT request."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from chat_server import ChatServer, serve_chat
from user_models import TINY_VLM


def build_tiny_llava(out: Path) -> Path:
    """A LLaVA-style VLM from configs with random weights, its own BPE tokenizer and processor."""
    from models.reporter.tiny_vlm import build_tiny_vlm, save_tiny_vlm, train_tokenizer

    corpus = ['{"finding_count": 1, "findings": [{"index": 1, "label": "lesion"}], "impression": "1 lesion"}']
    tokenizer = train_tokenizer(corpus * 20, vocab_size=400)
    return save_tiny_vlm(*build_tiny_vlm(TINY_VLM, tokenizer), out)


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny VLM directory (random weights: it writes garbage, quickly)."""
    return build_tiny_llava(tmp_path_factory.mktemp("tiny-vlm") / "model")


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    """A local OpenAI-compatible chat server on 127.0.0.1, stopped after the test."""
    with serve_chat() as server:
        yield server


@pytest.fixture
def medical_request() -> Any:
    """Two measured lesions on two slices of a CT study."""
    from models.reporter import FindingInput, ReportRequest

    common = {
        "label": "lesion",
        "image_width": 256,
        "image_height": 256,
        "patient_directions": ("right", "anterior"),
    }
    return ReportRequest(
        domain="medical",
        study_uid="1.2.826.0.1.3680043.8.498.111",
        modality="CT",
        images_examined=8,
        findings=[
            FindingInput(
                index=1,
                score=0.93,
                box=(40, 40, 60, 56),
                slice_number=3,
                area_px=250.0,
                area_mm2=180.2,
                width_mm=15.2,
                height_mm=12.1,
                **common,
            ),
            FindingInput(
                index=2,
                score=0.71,
                box=(180, 170, 196, 184),
                slice_number=5,
                area_px=160.0,
                area_mm2=110.0,
                width_mm=11.9,
                height_mm=10.4,
                **common,
            ),
        ],
    )


def answer_for(request: Any, **changes: Any) -> str:
    """A correct model answer for ``request`` as JSON, with top-level ``changes`` applied."""
    findings = [
        {
            "index": f.index,
            "label": f.label,
            "longest_mm": None if f.width_mm is None else round(max(f.width_mm, f.height_mm), 1),
            "description": f"Well-defined hypodense {f.label}.",
        }
        for f in request.findings
    ]
    n = len(findings)
    answer = {
        "finding_count": n,
        "findings": findings,
        "impression": f"{n} lesions detected; largest 15.2 mm. Recommend radiologist review.",
    } | changes
    return json.dumps(answer)


@pytest.fixture
def good_answer() -> Callable[..., str]:
    """``answer_for`` as a fixture (test modules cannot import conftest)."""
    return answer_for
