"""The chat interface a language-model backend implements (local transformers or an HTTP endpoint)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from models.reporter.crops import RoiCrop


@dataclass(frozen=True)
class OpenString:
    """Where a guided answer has the model write a JSON string. A word in it holding a digit must be
    one of ``quotes``: the values of what the string is about (its finding's line; the totals), so a
    description cannot give one finding another's size."""

    quotes: frozenset[str]


Skeleton = tuple[str | OpenString, ...]  # fixed answer text, and the strings the model writes
# Where an image goes in a message's text. A message without slots has its images before the text.
IMAGE_SLOT = "<|crop|>"


class BackendError(RuntimeError):
    """The backend could not produce an answer (model dir unusable, endpoint down or failing)."""


@dataclass(frozen=True)
class ChatMessage:
    """One chat turn; images come before the text, as the prompts refer to them by number."""

    role: Literal["system", "user", "assistant"]
    text: str
    images: tuple[RoiCrop, ...] = ()


def message_parts(message: ChatMessage) -> list[str | RoiCrop]:
    """The message as text pieces and images in reading order (each image at its slot)."""
    pieces = message.text.split(IMAGE_SLOT)
    if len(pieces) == 1:
        return [*message.images, message.text]
    if len(pieces) - 1 != len(message.images):
        raise ValueError(f"a message has {len(pieces) - 1} image slots for {len(message.images)} images")
    parts: list[str | RoiCrop] = [pieces[0]]
    for image, text in zip(message.images, pieces[1:], strict=True):
        parts += [image, text]
    return [p for p in parts if p != ""]


@dataclass(frozen=True)
class Completion:
    """A model's answer: the generated text and whether it ended on its own or hit the token limit."""

    text: str
    truncated: bool
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class ChatBackend(Protocol):
    """Answers a chat with images; ``external`` backends send it out of the process."""

    name: str
    model: str
    weights_sha256: str | None
    external: bool

    def identity(self) -> dict[str, str | None]:
        """What identifies the model that answers (for cache keys and provenance)."""
        ...

    def complete(self, messages: list[ChatMessage], skeleton: Skeleton | None = None) -> Completion:
        """The model's answer to ``messages``; raises ``BackendError`` when none can be had.

        With a ``skeleton`` (``output.answer_skeleton``), a backend that can guide its decoding writes
        the fixed parts as given and generates only the strings; others ignore it.
        """
        ...
