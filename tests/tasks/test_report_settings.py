"""Reporter settings: validated up front, keyed into runs, and a de-identification key per installation."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from argus.settings import Settings


def test_language_model_backends_need_their_model_and_endpoint() -> None:
    with pytest.raises(ValidationError, match="ARGUS_REPORTER=openai needs ARGUS_REPORTER_URL"):
        Settings(reporter="openai", reporter_model="m")
    with pytest.raises(ValidationError, match="must be an http"):
        Settings(reporter="openai", reporter_model="m", reporter_url="ftp://host/v1")
    ok = Settings(
        reporter="openai",
        reporter_model="m",
        reporter_url="http://127.0.0.1:8000/v1/",
        reporter_api_key="sk-secret-123",
    )
    assert ok.reporter_url == "http://127.0.0.1:8000/v1" and "sk-secret-123" not in repr(ok)


def test_a_different_reporter_gives_a_different_run(argus_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.study import run_parameters
    from tasks.resources import clear_caches

    monkeypatch.setenv("ARGUS_REPORTER", "template")
    clear_caches()
    template = run_parameters("medical")
    assert template["reporter"] == "template" and "reporter_model" not in template
    monkeypatch.setenv("ARGUS_REPORTER", "openai")
    monkeypatch.setenv("ARGUS_REPORTER_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("ARGUS_REPORTER_MODEL", "qwen2-vl")
    clear_caches()
    remote = run_parameters("medical")
    assert remote["reporter"] == "openai" and remote["reporter_prompt"].startswith("medical-v4:")
    assert remote["reporter_generation"] == {
        "max_new_tokens": 768,
        "temperature": 0.0,
        "top_p": 1.0,
        "guided": True,
        "do_sample": False,
    }
    # A timeout changes no text; a temperature or a crop setting does.
    monkeypatch.setenv("ARGUS_REPORTER_TIMEOUT", "5")
    clear_caches()
    assert run_parameters("medical") == remote
    monkeypatch.setenv("ARGUS_REPORTER_TEMPERATURE", "0.7")
    monkeypatch.setenv("ARGUS_REPORTER_MAX_CROPS", "2")
    clear_caches()
    changed = run_parameters("medical")
    assert changed["reporter_generation"]["do_sample"] is True and changed["reporter_crops"]["max_crops"] == 2


def test_deid_key_is_created_once_and_private(argus_env: Path) -> None:
    from tasks.resources import clear_caches, deid_key

    key = deid_key()
    path = argus_env / "secrets" / "deid.key"
    assert len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    clear_caches()
    assert deid_key() == key


def test_transformers_without_a_model_means_our_own_verified_model(
    argus_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.study import run_parameters
    from models.registry import read_card
    from models.reporter.shipped import shipped_reporter_dir
    from tasks.resources import clear_caches, reporter_config

    monkeypatch.setenv("ARGUS_REPORTER", "transformers")
    clear_caches()
    for domain in ("medical", "industrial"):
        shipped = shipped_reporter_dir(domain)
        assert reporter_config(domain).model == str(shipped)
        card = read_card(shipped)
        assert card is not None
        params = run_parameters(domain)
        assert params["reporter_model"] == str(shipped) and params["reporter_weights_sha256"] == card.sha256


def test_by_default_our_model_reports_where_its_card_earns_it(
    argus_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.study import run_parameters
    from models.registry import ModelCard
    from models.reporter.shipped import meets_default_bar, verified_shipped_reporter
    from tasks.resources import clear_caches, reporter_config

    def card(**held_out: float) -> ModelCard:
        _dir, shipped = verified_shipped_reporter("medical")
        return shipped.model_copy(update={"metrics": {"held_out": held_out}})

    assert meets_default_bar(card(studies=1000, well_formed=1.0, no_contradiction=1.0))
    once = card(studies=1000, well_formed=1.0, no_contradiction=0.999)
    assert not meets_default_bar(once)  # one contradiction in 1 000 is one too many
    assert not meets_default_bar(card(studies=1000, well_formed=0.98, no_contradiction=1.0))
    assert not meets_default_bar(card(studies=200, well_formed=1.0, no_contradiction=1.0))  # too few to tell
    assert not meets_default_bar(card())
    # Both shipped cards earn it (1 000 of 1 000 each, README): auto means our own model in both domains.
    for domain in ("medical", "industrial"):
        shipped_dir, shipped = verified_shipped_reporter(domain)
        assert meets_default_bar(shipped)
        assert reporter_config(domain).backend == "transformers"
        assert reporter_config(domain).model == str(shipped_dir)
        params = run_parameters(domain)
        assert params["reporter"] == "transformers" and params["reporter_weights_sha256"] == shipped.sha256
    # A card below the bar (here one whose held-out split shows one contradiction) leaves the template.
    monkeypatch.setattr("tasks.resources.read_card", lambda _model_dir: once)
    clear_caches()
    assert reporter_config("industrial").backend == "template"
    assert run_parameters("industrial")["reporter"] == "template"
