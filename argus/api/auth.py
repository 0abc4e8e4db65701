"""Bearer-token authentication and role checks for the HTTP API.

A missing, unknown or revoked token gets 401, a token whose role may not use an endpoint 403. The caller's
name (``token:<name>``) and the reason for a refusal are left on ``request.state`` for the request audit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request, status

from argus.api.state import engine_of, set_actor, set_reason
from storage.database import session_scope
from storage.tokens import find_token

__all__ = ["AUDIT_READERS", "DATA_READERS", "Caller", "authenticated", "require"]

DATA_READERS = ("viewer", "auditor", "admin")
AUDIT_READERS = ("auditor", "admin")


@dataclass(frozen=True)
class Caller:
    """Who made an authenticated request."""

    name: str
    role: str

    @property
    def actor(self) -> str:
        """How the audit trail names this caller."""
        return f"token:{self.name}"


def _unauthorized(request: Request, reason: str) -> HTTPException:
    set_reason(request, reason)
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=reason, headers={"WWW-Authenticate": "Bearer"})


def authenticated(request: Request) -> Caller:
    """The caller named by the ``Authorization: Bearer <token>`` header; 401 unless it is a valid token."""
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise _unauthorized(request, "missing API token: send the header 'Authorization: Bearer <token>'")
    with session_scope(engine_of(request)) as session:
        token = find_token(session, secret.strip())
    if token is None:
        raise _unauthorized(request, "invalid API token")
    set_actor(request, f"token:{token.name}")
    if token.revoked_at is not None:
        revoked = token.revoked_at.isoformat()
        raise _unauthorized(request, f"API token {token.name!r} was revoked at {revoked}")
    return Caller(name=token.name, role=token.role)


def require(roles: tuple[str, ...]) -> Callable[..., Caller]:
    """A dependency that admits only callers with one of ``roles`` (403 for the others)."""

    def dependency(request: Request, caller: Caller = Depends(authenticated)) -> Caller:  # noqa: B008
        if caller.role not in roles:
            allowed = ", ".join(roles)
            reason = f"role {caller.role!r} may not use {request.url.path}; it needs one of: {allowed}"
            set_reason(request, reason)
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=reason)
        return caller

    return dependency
