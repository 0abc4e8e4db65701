"""What the API keeps on the app and on each request: the engine, and what the request audit records."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy import Engine

__all__ = [
    "actor_of",
    "add_audit_details",
    "audit_details",
    "engine_of",
    "reason_of",
    "set_actor",
    "set_audit_study",
    "set_reason",
    "study_of",
]


def engine_of(request: Request) -> Engine:
    """The database engine the app was created with."""
    engine: Engine = request.app.state.engine
    return engine


def set_actor(request: Request, actor: str) -> None:
    """Name the caller for the request's audit event (set once the token is known)."""
    request.state.actor = actor


def actor_of(request: Request) -> str:
    """The caller's name, or ``anonymous`` when no known token came with the request."""
    return str(getattr(request.state, "actor", "anonymous"))


def set_reason(request: Request, reason: str) -> None:
    """Why the request was refused, for its audit event."""
    request.state.reason = reason


def reason_of(request: Request) -> str | None:
    """The refusal reason set by ``set_reason``, if any."""
    reason = getattr(request.state, "reason", None)
    return None if reason is None else str(reason)


def add_audit_details(request: Request, **details: Any) -> None:
    """What a route read (filters, counts), for the request's audit event."""
    current: dict[str, Any] = getattr(request.state, "audit_details", {})
    request.state.audit_details = {**current, **details}


def audit_details(request: Request) -> dict[str, Any]:
    """Everything routes added with ``add_audit_details``."""
    return dict(getattr(request.state, "audit_details", {}))


def set_audit_study(request: Request, study_uid: str) -> None:
    """The study a request read, so the study's own trail shows who looked at it."""
    request.state.study_uid = study_uid


def study_of(request: Request) -> str | None:
    """The study set by ``set_audit_study``, if any."""
    study_uid = getattr(request.state, "study_uid", None)
    return None if study_uid is None else str(study_uid)
