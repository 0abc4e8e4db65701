from pathlib import Path

import pytest

from models.domains import DOMAINS, domain_spec
from models.registry import ModelCard, WeightsError, read_card, resolve_weights, sha256_file, write_card


@pytest.mark.parametrize("domain", sorted(DOMAINS))
@pytest.mark.parametrize(
    ("kind", "arch"), [("detector", "unet"), ("segmenter", "unet"), ("segmenter", "deeplabv3plus")]
)
def test_shipped_weights_match_their_cards(domain: str, kind: str, arch: str) -> None:
    ref = resolve_weights(kind, domain, arch=arch)
    card = read_card(ref.path)
    assert card is not None and card.sha256 == ref.sha256 == sha256_file(ref.path)
    assert card.domain == domain and card.metrics
    assert ref.path.stat().st_size < 20 * 1024 * 1024
    if kind == "detector":
        assert tuple(card.class_names) == domain_spec(domain).class_names
    else:
        assert ref.path.name == f"{domain}_{arch}.pt" and card.name == f"argus-{domain}-{arch}"


def _card(path: Path) -> ModelCard:
    return ModelCard(
        name="x",
        version="1",
        task="detection",
        architecture="a",
        domain="medical",
        class_names=["lesion"],
        weights_file=path.name,
        sha256=sha256_file(path),
        size_bytes=path.stat().st_size,
    )


def test_user_weights_missing_corrupt_and_carded(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        resolve_weights("detector", "medical", tmp_path / "nope.pt")
    weights = tmp_path / "mine.pt"
    weights.write_bytes(b"weights v1")
    ref = resolve_weights("detector", "medical", weights)
    assert ref.version == "user" and ref.sha256 == sha256_file(weights)
    write_card(_card(weights), weights)
    assert resolve_weights("detector", "medical", weights).name == "x"
    weights.write_bytes(b"weights v2, truncated")
    with pytest.raises(WeightsError, match="corrupt or replaced"):
        resolve_weights("detector", "medical", weights)
    with pytest.raises(ValueError, match="unknown domain"):
        resolve_weights("detector", "dental")
