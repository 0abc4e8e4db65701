"""Our own reporter VLM: tokenizer, encoding, a short training run, its card and verification."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from user_models import TINY_VLM

from models.registry import WeightsError, read_card
from models.reporter.config import GenerationSettings
from models.reporter.local_vlm import TransformersBackend
from models.reporter.shipped import verify_reporter_dir
from models.reporter.studies import reporter_examples
from models.reporter.tiny_vlm import build_tiny_vlm, train_tokenizer
from models.reporter.train_vlm import (
    IGNORE,
    TrainSettings,
    corrupted_answer,
    encode,
    tokenizer_corpus,
    train_reporter,
)

TINY = TINY_VLM


def test_tokenizer_splits_digits_and_encoding_learns_only_the_answer() -> None:
    examples = reporter_examples("medical", 1, 4)
    tokenizer = train_tokenizer(tokenizer_corpus(examples), vocab_size=600)
    pieces = tokenizer.tokenize('"longest_mm": 46.3')
    assert pieces[-4:] == ["4", "6", ".", "3"]  # numbers are copied digit by digit
    _model, processor = build_tiny_vlm(TINY, tokenizer)
    example = next(e for e in examples if e.crops)
    encoded = encode(example, processor, prompt_weight=0.3, digit_weight=3.0)
    learned = [t for t in encoded.labels if t != IGNORE]
    assert tokenizer.decode(learned) == example.answer + tokenizer.eos_token
    assert encoded.labels[: len(encoded.labels) - len(learned)] == [IGNORE] * (
        len(encoded.labels) - len(learned)
    )
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    assert encoded.input_ids.count(image_id) == TINY.image_tokens * len(example.crops)
    assert encoded.pixel_values.shape == (len(example.crops), 3, TINY.image_size, TINY.image_size)
    # Prompt text at 0.3, images never, answer digits at 3: the weights the loss uses.
    prompt_weights = {w for w, t in zip(encoded.weights, encoded.labels, strict=True) if t == IGNORE}
    assert prompt_weights == {0.0, 0.3}
    assert all(w == 0.0 for w, t in zip(encoded.weights, encoded.input_ids, strict=True) if t == image_id)
    assert {encoded.weights[i] for i, t in enumerate(encoded.labels) if t != IGNORE} <= {1.0, 3.0}
    # A repair turn: the rejected answer and the problems in the prompt, which is not learned.
    import random

    wrong, problems = corrupted_answer(example, random.Random(0)) or ("", [])
    assert problems and wrong != example.answer
    repair = encode(example, processor, rejected=(wrong, problems))
    assert len(repair.input_ids) > len(encoded.input_ids)
    assert all(w == 0.0 for w, t in zip(repair.weights, repair.labels, strict=True) if t == IGNORE)
    assert tokenizer.decode([t for t in repair.labels if t != IGNORE]) == example.answer + tokenizer.eos_token


def test_a_short_training_run_writes_a_loadable_model_with_a_verified_card(tmp_path: Path) -> None:
    out = tmp_path / "medical_reporter"
    settings = TrainSettings(domain="medical", minutes=0.1, n_train=12, warmup_steps=2)
    card = train_reporter(settings, eval_studies=1, output=out, config=TINY, log=lambda _line: None)
    assert card.training["steps"] >= 1 and card.training["final_answer_loss"] is not None
    held_out = card.metrics["held_out"]
    assert held_out["studies"] == 1 and held_out["held_out_seed"] == 10_000
    # Both decodings are scored: guided (what production runs) and free (the model on its own).
    assert (held_out["decoding"], card.metrics["held_out_free"]["decoding"]) == ("guided", "free")
    assert card.input["prompt"] == "medical-v4"
    assert read_card(out) == card and verify_reporter_dir(out) == card
    backend = TransformersBackend(out, "cpu", GenerationSettings(max_new_tokens=8))
    example = reporter_examples("medical", 7, 1)[0]
    completion = backend.complete(example.messages())
    assert completion.completion_tokens is not None and 1 <= completion.completion_tokens <= 8
    # Training further starts from the saved model and keeps its tokenizer; never into its own directory.
    further = replace(settings, minutes=0.05, init_from=out)
    quiet: dict[str, Any] = {"eval_studies": 1, "config": TINY, "log": lambda _line: None}
    with pytest.raises(ValueError, match="both the model to train further and the output"):
        train_reporter(further, output=out, **quiet)
    again = train_reporter(
        further, eval_studies=1, output=tmp_path / "further", config=TINY, log=lambda _l: None
    )
    assert again.training["continued_from"] == str(out) and again.training["steps"] >= 1
    assert (tmp_path / "further" / "tokenizer.json").read_bytes() == (out / "tokenizer.json").read_bytes()
    assert again.sha256 != card.sha256  # the weights moved on
    weights = out / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-16])  # truncated on disk
    with pytest.raises(WeightsError, match="corrupt or replaced"):
        verify_reporter_dir(out)


def test_a_directory_without_a_card_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="has no model card"):
        verify_reporter_dir(tmp_path / "nothing")
