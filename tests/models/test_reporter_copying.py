"""Copy-only values in guided decoding: which words may hold a digit, and the tokens that are banned."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from models.reporter.copying import CopyConstraint, copyable_words, fits, token_texts
from models.reporter.shipped import shipped_reporter_dir

SHOWN = "Largest: 14.2 mm. Flagged parts (1 of 3): cam2_00068.tif (2 cracks); slices 3-5, volume 512 mm3."


def test_copyable_words_are_the_digit_bearing_words_without_a_full_stop() -> None:
    assert copyable_words(SHOWN) == {"14.2", "1", "3", "cam2_00068.tif", "2", "3-5", "512", "mm3"}


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("largest 14.2 mm", True),
        ("largest 14.2 mm.", True),
        ("largest 14.2. mm", False),  # a full stop glued to a value: not a value the prompt shows
        ("largest 1. mm", False),
        ("largest 14", True),  # still being written: a beginning of 14.2
        ("largest 14 mm", False),  # ended short of 14.2
        ("largest 15", False),
        ("cam2_00068.tif (2 cracks)", True),
        ("cam2_00069.tif", False),
        ("cam", True),  # no digit yet: any word
        ("3-5", True),
        ("4 lesions", False),
        ("no focal lesion", True),
    ],
)
def test_fits_accepts_copied_values_and_their_beginnings_only(text: str, ok: bool) -> None:
    assert fits(text, copyable_words(SHOWN)) is ok


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    # The shipped reporter's own vocabulary: digits are single tokens, words carry their space.
    return AutoTokenizer.from_pretrained(shipped_reporter_dir("medical"), local_files_only=True)


def _scores(constraint: CopyConstraint, tokenizer: Any, text: str) -> Any:
    """The constraint's scores for the token after ``text`` (0 open, -inf banned)."""
    ids = torch.tensor([tokenizer.encode(text, add_special_tokens=False)])
    return constraint(ids, torch.zeros(1, len(tokenizer)))[0]


def _allowed(constraint: CopyConstraint, tokenizer: Any, text: str) -> set[str]:
    """The digit tokens the constraint leaves open after ``text``."""
    scores = _scores(constraint, tokenizer, text)
    return {str(d) for d in range(10) if scores[tokenizer.convert_tokens_to_ids(str(d))] == 0}


def test_only_the_digits_that_spell_a_copyable_value_stay_open(tokenizer: Any) -> None:
    constraint = CopyConstraint(tokenizer, {"14.2", "512", "3-5"}, start=0)
    assert _allowed(constraint, tokenizer, "largest") == set()  # a digit glued to a word: no such value
    assert _allowed(constraint, tokenizer, "largest ") == {"1", "5", "3"}
    assert _allowed(constraint, tokenizer, "largest 1") == {"4"}
    assert _allowed(constraint, tokenizer, "largest 14.") == {"2"}
    unit = tokenizer.convert_tokens_to_ids("Ġmm")
    assert _scores(constraint, tokenizer, "largest 14")[unit] == float("-inf")  # a value ends only whole
    assert _scores(constraint, tokenizer, "largest 14.2")[unit] == 0


def test_text_before_start_is_not_constrained(tokenizer: Any) -> None:
    # The prompt and the fixed answer parts hold numbers of their own: only the generated string counts.
    prompt = tokenizer.encode('"longest_mm": 99.9, "impression": "', add_special_tokens=False)
    constraint = CopyConstraint(tokenizer, {"14.2"}, start=len(prompt))
    ids = torch.tensor([[*prompt, *tokenizer.encode("largest 1", add_special_tokens=False)]])
    scores = constraint(ids, torch.zeros(1, len(tokenizer)))
    assert scores[0, tokenizer.convert_tokens_to_ids("4")] == 0
    assert scores[0, tokenizer.convert_tokens_to_ids("9")] == float("-inf")


def test_token_texts_keep_the_space_a_token_starts_with(tokenizer: Any) -> None:
    texts = token_texts(tokenizer)
    assert texts[tokenizer.convert_tokens_to_ids("Ġmm")] == " mm"
    assert texts[tokenizer.convert_tokens_to_ids("7")] == "7"
