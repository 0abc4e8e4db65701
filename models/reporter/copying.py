"""Copy-only values in guided decoding: a model may write a number or a name only as its prompt does.

A small model asked to restate "Largest: 14.2 mm" or a flagged part's file name often writes a
plausible other value instead; no amount of output validation makes it copy. Constrained decoding
does: while a model writes a free-text string, every word holding a digit ("14.2", "cam2_00068.tif",
"2-5") must be one of the words holding a digit in the prompt's data, so a value can be chosen but
not invented. Which value it picks (the largest, the flagged part) is still the model's, and the
validator still checks it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

# A "word" here: what numbers, measurements, ranges and file names are made of.
_WORD_CHAR = r"[A-Za-z0-9_.\-]"
_WORD = re.compile(f"{_WORD_CHAR}+")
_TAIL = re.compile(f"{_WORD_CHAR}*$")  # the word a text ends in, possibly empty
_DIGIT = re.compile(r"\d")


def copyable_words(text: str) -> frozenset[str]:
    """The words of ``text`` that hold a digit, without a sentence's full stop."""
    return frozenset(w.rstrip(".") for w in _WORD.findall(text) if _DIGIT.search(w))


def fits(text: str, copyable: frozenset[str]) -> bool:
    """Whether every digit-bearing word of ``text`` is a copyable word; the last word, which may
    still grow, need only begin one ("14." of "14.2").

    A full stop right after a value is refused: "3." cannot be told from a cut "3.5", and a size
    written "3. mm" would escape the validator's reading of sizes.
    """
    for match in _WORD.finditer(text):
        word = match.group()
        if not _DIGIT.search(word):
            continue
        if match.end() == len(text):
            if not any(c.startswith(word) for c in copyable):
                return False
        elif word not in copyable:
            return False
    return True


@lru_cache(maxsize=4)
def token_texts(tokenizer: Any) -> tuple[str, ...]:
    """Each token's text as it reads after other text (a leading space kept): decoded after an
    anchor token, since a lone token's decoding drops the space in SentencePiece vocabularies."""
    anchor = tokenizer.encode("a", add_special_tokens=False)
    base = tokenizer.decode(anchor, clean_up_tokenization_spaces=False)
    size = len(tokenizer)
    return tuple(
        tokenizer.decode([*anchor, i], clean_up_tokenization_spaces=False)[len(base) :] for i in range(size)
    )


class CopyConstraint:
    """A logits processor (``generate(logits_processor=[...])``) that bans the tokens which would
    write a digit-bearing word not in ``copyable``, in the text generated after position ``start``."""

    def __init__(self, tokenizer: Any, copyable: Iterable[str], start: int) -> None:
        self.tokenizer = tokenizer
        self.copyable = frozenset(copyable)
        self.start = start
        self._texts = token_texts(tokenizer)
        self._with_digit = [i for i, t in enumerate(self._texts) if _DIGIT.search(t)]
        self._banned: dict[str, list[int]] = {}

    def banned(self, tail: str) -> list[int]:
        """Token ids that may not follow a text ending in the word ``tail``."""
        if tail not in self._banned:
            # Without a digit so far, only a token holding one can make a word that must be copied.
            candidates = range(len(self._texts)) if _DIGIT.search(tail) else self._with_digit
            banned = [i for i in candidates if not fits(tail + self._texts[i], self.copyable)]
            # Never ban everything: a vocabulary that cannot spell a value leaves decoding free here.
            self._banned[tail] = [] if len(banned) == len(self._texts) else banned
        return self._banned[tail]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        for row in range(input_ids.shape[0]):
            text = self.tokenizer.decode(
                input_ids[row, self.start :], skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
            tail = _TAIL.search(text)
            banned = self.banned(tail.group() if tail else "")
            if banned:
                scores[row, banned] = float("-inf")
        return scores
