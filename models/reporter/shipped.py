"""Our own reporter VLMs, shipped per domain as ``weights/<domain>_reporter/`` with a model card."""

from __future__ import annotations

from pathlib import Path

from models.registry import WEIGHTS_DIR, ModelCard, WeightsError, card_path, read_card
from models.reporter.chat import BackendError
from models.reporter.local_vlm import weights_sha256

# What our own model must show on its card's held-out split (``metrics.held_out``: first answers with
# the decoding production runs) to write its domain's reports by default (ARGUS_REPORTER=auto):
# well-formed at least this often, never contradicting the findings, on at least this many studies
# (none in 200 only bounds the rate under 1.5 %, none in 1 000 under 0.3 %, at 95 % confidence).
DEFAULT_BAR_WELL_FORMED = 0.99
DEFAULT_BAR_STUDIES = 1000


def shipped_reporter_dir(domain: str) -> Path:
    """Where the domain's own reporter model directory lives."""
    if domain not in ("medical", "industrial"):
        raise ValueError(f"unknown domain {domain!r}")
    return WEIGHTS_DIR / f"{domain}_reporter"


def verify_reporter_dir(model_dir: Path) -> ModelCard:
    """The card of a reporter model directory, after checking the directory's weights against it."""
    card = read_card(model_dir)
    if card is None:
        raise WeightsError(
            f"reporter model {model_dir} has no model card {card_path(model_dir)} "
            "(run `argus train reporter` to create it)"
        )
    try:
        digest = weights_sha256(model_dir)
    except BackendError as exc:
        raise WeightsError(f"reporter model {model_dir} is unusable: {exc}") from exc
    if digest != card.sha256:
        raise WeightsError(
            f"reporter weights in {model_dir} are corrupt or replaced: sha256 {digest[:12]}… does not "
            f"match model card {card.sha256[:12]}…"
        )
    return card


def verified_shipped_reporter(domain: str) -> tuple[Path, ModelCard]:
    """The shipped reporter of ``domain`` and its verified card."""
    model_dir = shipped_reporter_dir(domain)
    return model_dir, verify_reporter_dir(model_dir)


def meets_default_bar(card: ModelCard) -> bool:
    """Whether a reporter's card shows it good enough to be its domain's default reporter."""
    held_out = card.metrics.get("held_out") or {}
    return (
        held_out.get("studies", 0) >= DEFAULT_BAR_STUDIES
        and held_out.get("well_formed", 0.0) >= DEFAULT_BAR_WELL_FORMED
        and held_out.get("no_contradiction", 0.0) == 1.0
    )
