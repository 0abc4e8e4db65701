"""De-identification of every text that leaves the process, in the spirit of the DICOM PS3.15 basic profile.

Prompts are built from structured findings only (no names, descriptions or notes), so this is the
second line of defence: the study's known identifiers are replaced by keyed pseudonyms (stable, so the
same study always reads the same, and not reversible without the key), anything shaped like a DICOM
UID is replaced the same way, and dates are removed. Images are sent as pixel-only PNG crops without
any header; text burned into the pixels is NOT removed (a known limit, stated in the README).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import replace

from models.reporter.chat import ChatMessage

# Four or more dot-separated numeric components: DICOM UIDs (and nothing a size or score looks like).
_UID = re.compile(r"(?<![\w.])\d+(?:\.\d+){3,}(?![\w.])")
_DATES = [
    re.compile(r"(?<!\d)(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?!\d)"),  # DICOM DA: YYYYMMDD
    re.compile(r"(?<!\d)(?:19|20)\d\d[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])(?!\d)"),
    re.compile(r"(?<!\d)(?:0?[1-9]|[12]\d|3[01])[-/.](?:0?[1-9]|[12]\d|3[01])[-/.](?:19|20)\d\d(?!\d)"),
]
DATE_REMOVED = "[date removed]"


class Deidentifier:
    """Scrubs identifiers from text with pseudonyms keyed by a secret (HMAC-SHA256)."""

    def __init__(self, key: bytes, identifiers: Iterable[str] = ()) -> None:
        if len(key) < 16:
            raise ValueError("the de-identification key must be at least 16 bytes")
        self._key = key
        terms: set[str] = set()
        for identifier in identifiers:
            value = identifier.strip()
            terms.add(value)
            # DICOM person names: "DOE^JOHN^^DR": each component is identifying on its own too.
            terms.update(part.strip() for part in re.split(r"[\^=]", value))
        # Longest first, so "DOE^JOHN" goes whole before "DOE" could split it. Numbers of under four
        # digits are no identifier but would wreck every size and slice number in the prompt.
        usable = (t for t in terms if len(t) >= (4 if t.isdigit() else 2))
        self._terms = sorted(usable, key=len, reverse=True)

    def pseudonym(self, value: str) -> str:
        """A stable stand-in for ``value``: ``UID-…`` for UIDs, ``ID-…`` for everything else."""
        digest = hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()[:12]
        return f"UID-{digest}" if _UID.fullmatch(value) else f"ID-{digest}"

    def scrub(self, text: str) -> str:
        """``text`` with known identifiers and UIDs pseudonymized and dates removed."""
        for term in self._terms:
            # Letters and digits only as boundaries: "_" and "-" separate words in file names.
            pattern = rf"(?<![^\W_]){re.escape(term)}(?![^\W_])"
            text = re.sub(pattern, self.pseudonym(term), text, flags=re.IGNORECASE)
        text = _UID.sub(lambda m: self.pseudonym(m.group(0)), text)
        for date in _DATES:
            text = date.sub(DATE_REMOVED, text)
        return text

    def scrub_messages(self, messages: list[ChatMessage]) -> list[ChatMessage]:
        """Every message with its text scrubbed; images are pixel-only crops and pass unchanged."""
        return [replace(m, text=self.scrub(m.text)) for m in messages]
