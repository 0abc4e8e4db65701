"""Our shipped reporter VLMs: verified against their cards, and as good on held-out studies as they say."""

from __future__ import annotations

import pytest

from models.reporter.evaluation import evaluate_reporter_model
from models.reporter.shipped import verified_shipped_reporter

pytestmark = pytest.mark.slow

STUDIES = 12


@pytest.mark.parametrize("domain", ["medical", "industrial"])
def test_shipped_reporter_matches_its_card_on_held_out_studies(domain: str) -> None:
    model_dir, card = verified_shipped_reporter(domain)
    recorded = card.metrics["held_out"]
    assert recorded["studies"] >= 100 and recorded["generator_version"] == card.generator_version
    # Another part of the held-out range than the card's split (seed 10 000): studies never trained on.
    rates = evaluate_reporter_model(
        model_dir, domain, studies=STUDIES, seed=777, generator_version=card.generator_version
    )
    assert rates["weights_sha256"] == card.sha256
    # Greedy decoding is deterministic; a dozen studies can only approximate 200, hence the margins.
    assert rates["well_formed"] >= recorded["well_formed"] - 0.1
    assert rates["class_agrees"] >= recorded["class_agrees"] - 0.25
    assert rates["accepted_first"] >= recorded["accepted_first"] - 0.3
