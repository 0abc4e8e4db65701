"""Model cards and verified weight resolution.

Every shipped weight file ``X.pt`` has a card ``X.json`` recording what it is, how it was trained,
its held-out metrics and its sha256. Loading checks the file against the card so a truncated or
swapped file fails loudly instead of producing wrong findings.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
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
    # models.synthetic generator version of the training data and the card's metrics (cards
    # written before versions existed were all version 1).
    generator_version: int = 1
    created: str = ""
    notes: str = ""


@dataclass(frozen=True)
class WeightsRef:
    """A verified weight file plus the identity recorded with every result it produces.

    ``class_names`` come from the model card; empty for user weights without one (the loaded
    model's own names apply: YOLO's ``model.names``, a segmenter checkpoint's config).
    """

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


def require_torch_archive(path: Path, kind: str) -> None:
    """Refuse a file that cannot be a torch checkpoint: ``torch.save`` writes a zip archive, and one
    without its central directory is truncated or of another format."""
    if not zipfile.is_zipfile(path):
        raise WeightsError(
            f"{kind} weights {path} are not a torch checkpoint (no complete zip archive: "
            "a truncated file or another format)"
        )


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


def record_evaluation(weights: Path, evaluation: dict[str, Any]) -> ModelCard:
    """Store an ``argus evaluate`` result in the card of ``weights`` (metrics["evaluation"])."""
    card = read_card(weights)
    if card is None:
        raise WeightsError(f"{weights} has no model card {card_path(weights)} to record an evaluation in")
    card.metrics["evaluation"] = evaluation
    write_card(card, weights)
    return card


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
        f"- generator version: {card.generator_version}",
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


def resolve_weights(
    kind: str,
    domain: str,
    user_path: Path | None = None,
    *,
    arch: str = "unet",
    pinned_sha256: str | None = None,
) -> WeightsRef:
    """Find, verify and describe the weights for ``kind`` ("detector"/"segmenter") in ``domain``.

    ``arch`` picks the shipped segmenter. User weights are taken from a local path; if a card sits
    next to them it is checked too, else their class names are read from the weights when loaded.
    Shipped weights must match their card's sha256; any file must match ``pinned_sha256`` if given.
    """
    spec = domain_spec(domain)
    if kind not in ("detector", "segmenter"):
        raise ValueError(f"unknown model kind {kind!r}")
    shipped = user_path is None
    path = WEIGHTS_DIR / (spec.detector_file if kind == "detector" else spec.segmenter_file(arch))
    if user_path is not None:
        path = user_path.expanduser().resolve()
    if not path.is_file():
        hint = " (run `argus train` to create it)" if shipped else ""
        raise WeightsError(f"{domain} {kind} weights not found at {path}{hint}")
    digest = sha256_file(path)
    if pinned_sha256 is not None and digest != pinned_sha256.lower():
        raise WeightsError(
            f"{domain} {kind} weights {path} have sha256 {digest}, not the pinned {pinned_sha256.lower()}"
        )
    card = read_card(path)
    if card is None:
        if shipped:
            raise WeightsError(f"shipped weights {path} have no model card {card_path(path)}")
        return WeightsRef(path, digest, name=path.name, version="user", class_names=())
    if card.sha256 != digest:
        raise WeightsError(
            f"{kind} weights {path} are corrupt or replaced: sha256 {digest[:12]}… does not match "
            f"model card {card.sha256[:12]}…"
        )
    return WeightsRef(path, digest, card.name, card.version, tuple(card.class_names))
