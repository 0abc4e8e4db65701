"""Cached loaders for heavy objects (models, stores, engines): built on first use, never at import."""

from __future__ import annotations

import getpass
import os
from functools import lru_cache
from pathlib import Path

from argus.db import engine
from argus.settings import get_settings
from models.detector import Detector, load_detector
from models.device import resolve_device
from models.domains import domain_spec
from models.offline import configure_offline_ml
from models.registry import WeightsRef, resolve_weights
from models.segmenter import Segmenter, load_segmenter
from storage.object_store import ObjectStore, open_object_store
from tasks.types import ModelRef


@lru_cache(maxsize=1)
def device() -> str:
    """The torch device every model runs on."""
    return resolve_device(get_settings().device)


@lru_cache(maxsize=4)
def object_store() -> ObjectStore:
    """The configured object store."""
    return open_object_store(get_settings().resolved_object_store)


def actor() -> str:
    """Who the audit trail records for actions of this process."""
    configured = get_settings().actor
    if configured != "argus":
        return configured
    try:
        return f"argus:{getpass.getuser()}"
    except (KeyError, OSError):  # containers running under an arbitrary uid have no user name
        return f"argus:uid{os.getuid()}"


@lru_cache(maxsize=16)
def _weights(kind: str, domain: str, user_path: Path | None, mtime_ns: int) -> WeightsRef:
    # mtime in the key: a user weights file replaced in place is re-verified (shipped ones are read-only).
    return resolve_weights(kind, domain, user_path)


def weights(kind: str, domain: str) -> WeightsRef:
    """Verified weights for a model kind in a domain (user path from settings, else shipped)."""
    settings = get_settings()
    user = settings.detector_weights(domain) if kind == "detector" else settings.segmenter_weights(domain)
    mtime = user.stat().st_mtime_ns if user is not None and user.exists() else 0
    return _weights(kind, domain, user, mtime)


def model_identity(kind: str, domain: str) -> dict[str, str]:
    """What a stage records about the model it ran: name, version, weights sha256, device."""
    w = weights(kind, domain)
    return {"model": w.name, "model_version": w.version, "weights_sha256": w.sha256, "device": device()}


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
    return load_detector(w.path, w.sha256, device(), domain_spec(domain).image_size)


def segmenter(domain: str) -> Segmenter:
    """The loaded segmenter of a domain."""
    w = weights("segmenter", domain)
    return load_segmenter(w.path, w.sha256, device())


def clear_caches() -> None:
    """Forget cached settings-derived resources (tests and long-lived workers after a settings change)."""
    for fn in (device, object_store, engine, _weights, load_detector, load_segmenter, get_settings):
        fn.cache_clear()
