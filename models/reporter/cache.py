"""Report cache: an accepted model answer stored in the object store under its content hash.

The key covers everything that shapes the answer (backend, model and weights, prompt version, the
exact messages sent, the crops' sha256 and the generation settings), so a hit is the answer the model
would be asked for again. Only answers that passed validation are stored.
"""

from __future__ import annotations

import hashlib
import json
from typing import Protocol

from pydantic import BaseModel

from models.reporter.chat import ChatMessage

CACHE_PREFIX = "cache/reporter"


class BlobStore(Protocol):
    """The part of the object store (``storage.object_store.ObjectStore``) the cache needs."""

    def put_bytes(self, key: str, data: bytes, content_type: str) -> object:
        """Store ``data`` under ``key``."""
        ...

    def get_bytes(self, key: str, *, expected_sha256: str | None = None) -> bytes:
        """Read the object under ``key``."""
        ...

    def exists(self, key: str) -> bool:
        """Whether ``key`` is stored."""
        ...


class CachedAnswer(BaseModel):
    """What a cache entry holds: the accepted answer and how it was obtained."""

    answer: str
    attempts: int


def cache_key(
    identity: dict[str, str | None],
    prompt_version: str,
    generation: dict[str, float | int | bool],
    messages: list[ChatMessage],
) -> str:
    """sha256 over the canonical JSON of everything the answer depends on."""
    content = {
        "identity": identity,
        "prompt_version": prompt_version,
        "generation": generation,
        "messages": [
            {"role": m.role, "text": m.text, "images": [c.sha256 for c in m.images]} for m in messages
        ],
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


class ReportCache:
    """Accepted answers in an object store under ``cache/reporter/<key>.json``."""

    def __init__(self, store: BlobStore, prefix: str = CACHE_PREFIX) -> None:
        self.store = store
        self.prefix = prefix

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key[:2]}/{key}.json"

    def get(self, key: str) -> CachedAnswer | None:
        """The cached answer for ``key``, or None (also for an unreadable entry, which is re-made)."""
        if not self.store.exists(self._key(key)):
            return None
        try:
            return CachedAnswer.model_validate_json(self.store.get_bytes(self._key(key)))
        except ValueError:
            return None

    def put(self, key: str, answer: CachedAnswer) -> None:
        """Store an accepted answer."""
        self.store.put_bytes(self._key(key), answer.model_dump_json().encode(), "application/json")
