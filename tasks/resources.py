"""Cached loaders for heavy objects (models, stores, engines): built on first use, never at import."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

from argus.db import engine
from argus.identity import actor as actor  # re-exported: the tasks import it from here
from argus.objects import object_store as object_store  # re-exported, likewise
from argus.settings import get_settings
from models.detector import Detector, load_detector
from models.device import resolve_device
from models.offline import configure_offline_ml
from models.registry import WeightsRef, read_card, resolve_weights
from models.reporter import CropSettings, GenerationSettings, ReportCache, Reporter, ReporterConfig
from models.reporter import get_reporter as build_reporter
from models.reporter.local_vlm import weights_sha256 as reporter_weights_sha256
from models.reporter.prompts import load_prompt
from models.reporter.shipped import meets_default_bar, shipped_reporter_dir, verified_shipped_reporter
from models.segmenter import Segmenter, load_segmenter
from tasks.types import ModelRef


@lru_cache(maxsize=1)
def device() -> str:
    """The torch device every model runs on."""
    return resolve_device(get_settings().device)


@lru_cache(maxsize=16)
def _weights(
    kind: str, domain: str, user_path: Path | None, mtime_ns: int, arch: str, pin: str | None
) -> WeightsRef:
    # mtime in the key: a user weights file replaced in place is re-verified (shipped ones are read-only).
    return resolve_weights(kind, domain, user_path, arch=arch, pinned_sha256=pin)


def weights(kind: str, domain: str) -> WeightsRef:
    """Verified weights for a model kind in a domain (user path from settings, else shipped)."""
    settings = get_settings()
    user = settings.detector_weights(domain) if kind == "detector" else settings.segmenter_weights(domain)
    mtime = user.stat().st_mtime_ns if user is not None and user.exists() else 0
    pin = settings.weights_pin(kind, domain)
    return _weights(kind, domain, user, mtime, settings.segmenter_arch(domain), pin)


def model_identity(kind: str, domain: str) -> dict[str, str]:
    """What a stage records about the model it ran: name, version, weights sha256, device
    (and a segmenter's architecture, which a user checkpoint may choose)."""
    w = weights(kind, domain)
    identity = {"model": w.name, "model_version": w.version, "weights_sha256": w.sha256, "device": device()}
    if kind == "segmenter":
        identity["architecture"] = segmenter(domain).config.arch
    return identity


def model_refs(domain: str) -> tuple[ModelRef, ...]:
    """Identity of the detector and segmenter a domain's runs use (for idempotency and audit)."""
    refs = []
    for kind in ("detector", "segmenter"):
        w = weights(kind, domain)
        refs.append(ModelRef(kind=kind, name=w.name, version=w.version, sha256=w.sha256))
    return tuple(refs)


def detector(domain: str) -> Detector:
    """The loaded detector of a domain."""
    configure_offline_ml(get_settings().resolved_data_dir / "ultralytics")
    w = weights("detector", domain)
    return load_detector(w.path, w.sha256, device())  # at the size the weights were trained at


def segmenter(domain: str) -> Segmenter:
    """The loaded segmenter of a domain."""
    w = weights("segmenter", domain)
    return load_segmenter(w.path, w.sha256, device(), get_settings().segmenter_arch(domain))


@lru_cache(maxsize=2)
def shipped_reporter_model(domain: str) -> Path:
    """Our own reporter VLM of a domain, verified against its model card once per process."""
    return verified_shipped_reporter(domain)[0]


@lru_cache(maxsize=2)
def own_reporter_is_default(domain: str) -> bool:
    """Whether our own reporter of a domain has earned the default (its card, read once per process).

    Only the card is read: the weights are verified when the model is used, so a domain the template
    reports does not hash them.
    """
    card = read_card(shipped_reporter_dir(domain))
    return card is not None and meets_default_bar(card)


def reporter_config(domain: str | None = None) -> ReporterConfig:
    """The report backend and its generation and crop settings, from the settings.

    ``transformers`` without ARGUS_REPORTER_MODEL means our own shipped model of ``domain``; ``auto``
    (the default) means that model where its card meets the default bar, else the template.
    """
    s = get_settings()
    backend, model = s.reporter, s.reporter_model
    if backend == "auto":
        own = domain is not None and own_reporter_is_default(domain)
        backend, model = ("transformers" if own else "template"), None
    if backend == "transformers" and model is None and domain is not None:
        model = str(shipped_reporter_model(domain))
    return ReporterConfig(
        backend=backend,
        model=model,
        url=s.reporter_url,
        api_key=s.reporter_api_key,
        timeout=s.reporter_timeout,
        retries=s.reporter_retries,
        generation=GenerationSettings(
            max_new_tokens=s.reporter_max_new_tokens,
            temperature=s.reporter_temperature,
            top_p=s.reporter_top_p,
            guided=s.reporter_guided,
        ),
        crops=CropSettings(
            max_crops=s.reporter_max_crops, margin=s.reporter_crop_margin, max_side=s.reporter_crop_size
        ),
    )


@lru_cache(maxsize=1)
def deid_key() -> bytes:
    """This installation's secret for de-identification pseudonyms, created once in the data dir.

    A key (not a plain hash) so that a short patient ID cannot be recovered from its pseudonym by
    trying every candidate; kept, so the same patient reads the same across runs.
    """
    path = get_settings().resolved_data_dir / "secrets" / "deid.key"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_bytes(32))
    return path.read_bytes()


@lru_cache(maxsize=2)
def _reporter(config: ReporterConfig, device: str, weights: str | None) -> Reporter:
    # weights in the key: a local model replaced in place gets a fresh reporter (and is loaded anew).
    cache = ReportCache(object_store())
    return build_reporter(config, device=device, cache=cache, deid_key=deid_key())


def reporter(domain: str) -> Reporter:
    """The configured reporter for a domain's studies (language-model backends cache answers in the
    object store)."""
    config = reporter_config(domain)
    return _reporter(config, device(), _reporter_weights(config))


def _reporter_weights(config: ReporterConfig) -> str | None:
    if config.backend != "transformers" or config.model is None:
        return None
    return reporter_weights_sha256(Path(config.model).expanduser().resolve())


def _prompt_identity(domain: str | None) -> str | None:
    if domain is None:
        return None
    prompt = load_prompt(domain)
    return f"{prompt.version}:{prompt.sha256[:16]}"


def reporter_parameters(domain: str | None) -> dict[str, object]:
    """What about the reporter changes a run's results (for its idempotency key).

    The template is named only, as before; a language model adds its model, weights, endpoint, prompt
    version and generation and crop settings. Timeout, retries and the API key change no text.
    """
    config = reporter_config(domain)
    if config.backend == "template":
        return {"reporter": "template"}
    return {
        "reporter": config.backend,
        "reporter_model": config.model,
        "reporter_url": config.url,
        "reporter_weights_sha256": _reporter_weights(config),
        "reporter_prompt": _prompt_identity(domain),
        "reporter_generation": config.generation.as_record(),
        "reporter_crops": config.crops.model_dump(),
    }


def clear_caches() -> None:
    """Forget cached settings-derived resources (tests and long-lived workers after a settings change)."""
    for fn in (
        device,
        object_store,
        engine,
        _weights,
        load_detector,
        load_segmenter,
        get_settings,
        deid_key,
        _reporter,
        shipped_reporter_model,
        own_reporter_is_default,
    ):
        fn.cache_clear()
