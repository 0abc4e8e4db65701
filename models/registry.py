"""Model cards and verified weight resolution.

Every shipped weight file ``X.pt`` has a card ``X.json`` recording what it is, how it was trained,
its held-out metrics and its sha256. Loading checks the file against the card so a truncated or
swapped file fails loudly instead of producing wrong findings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from models.domains import domain_spec

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


class WeightsError(RuntimeError):
    """Weights are missing, corrupt or do not match their model card."""


class ModelCard(BaseModel):
    """What a weight file is, how it was made and how well it does on held-out data."""

    name: str
    version: str
    task: str  # "detection" or "segmentation"
    architecture: str
    domain: str
    class_names: list[str]
    weights_file: str
    sha256: str
    size_bytes: int
    input: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    created: str = ""
    notes: str = ""


@dataclass(frozen=True)
class WeightsRef:
    """A verified weight file plus the identity recorded with every result it produces."""

    path: Path
    sha256: str
    name: str
    version: str
    class_names: tuple[str, ...]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def card_path(weights: Path) -> Path:
    """Where the model card of a weight file lives (same name, ``.json``)."""
    return weights.with_suffix(".json")


def read_card(weights: Path) -> ModelCard | None:
    """The card next to a weight file, or None if there is none."""
    path = card_path(weights)
    if not path.exists():
        return None
    return ModelCard.model_validate_json(path.read_text())


def write_card(card: ModelCard, weights: Path) -> Path:
    """Write a card as JSON next to its weights, plus a Markdown rendering for humans."""
    path = card_path(weights)
    path.write_text(card.model_dump_json(indent=2) + "\n")
    weights.with_suffix(".md").write_text(render_card_markdown(card))
    return path


def render_card_markdown(card: ModelCard) -> str:
    """A short human-readable model card."""
    lines = [
        f"# {card.name} {card.version}",
        "",
        f"- Task: {card.task} ({card.domain}); architecture: {card.architecture}",
        f"- Classes: {', '.join(card.class_names)}",
        f"- Weights: `{card.weights_file}`, {card.size_bytes} bytes, sha256 `{card.sha256}`",
        f"- Created: {card.created}",
        "",
        "## Data",
        "",
        *[f"- {k}: {v}" for k, v in card.training.items()],
        "",
        "## Held-out metrics",
        "",
        *[f"- {k}: {json.dumps(v)}" for k, v in card.metrics.items()],
        "",
        "## Input",
        "",
        *[f"- {k}: {v}" for k, v in card.input.items()],
        "",
        "Synthetic data only. Not for clinical use.",
        "",
    ]
    if card.notes:
        lines += [card.notes, ""]
    return "\n".join(lines)


def resolve_weights(kind: str, domain: str, user_path: Path | None = None) -> WeightsRef:
    """Find, verify and describe the weights for ``kind`` ("detector"/"segmenter") in ``domain``.

    User weights are taken from a local path; if a card sits next to them it is checked too.
    Shipped weights must match their card's sha256.
    """
    spec = domain_spec(domain)
    if kind not in ("detector", "segmenter"):
        raise ValueError(f"unknown model kind {kind!r}")
    shipped = user_path is None
    path = WEIGHTS_DIR / (spec.detector_file if kind == "detector" else spec.segmenter_file)
    if user_path is not None:
        path = user_path.expanduser().resolve()
    if not path.is_file():
        hint = " (run `argus train` to create it)" if shipped else ""
        raise WeightsError(f"{domain} {kind} weights not found at {path}{hint}")
    digest = sha256_file(path)
    card = read_card(path)
    if card is None:
        if shipped:
            raise WeightsError(f"shipped weights {path} have no model card {card_path(path)}")
        return WeightsRef(path, digest, name=path.stem, version="user", class_names=spec.class_names)
    if card.sha256 != digest:
        raise WeightsError(
            f"{kind} weights {path} are corrupt or replaced: sha256 {digest[:12]}… does not match "
            f"model card {card.sha256[:12]}…"
        )
    return WeightsRef(path, digest, card.name, card.version, tuple(card.class_names))
