"""HTTP API tokens: created with a role, shown once, stored as sha256 only, revoked by name; all audited."""

from __future__ import annotations

import hashlib
import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.audit import record_event
from storage.schema import API_ROLES, ApiToken, utcnow

__all__ = ["TOKEN_PREFIX", "TokenError", "create_token", "find_token", "list_tokens", "revoke_token"]

# A recognisable prefix lets secret scanners and people tell an Argus token from other secrets.
TOKEN_PREFIX = "argus_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class TokenError(ValueError):
    """A token cannot be created or revoked as asked (bad name or role, duplicate, unknown, revoked)."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(session: Session, *, name: str, role: str, created_by: str) -> str:
    """Store a new token (its sha256 only) and audit it; return the secret, which is never stored."""
    if not _NAME.fullmatch(name):
        raise TokenError(
            f"token name {name!r} must be 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if role not in API_ROLES:
        raise TokenError(f"token role must be one of {', '.join(API_ROLES)}, got {role!r}")
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        # Names stay taken after revocation: an actor name in the audit trail must mean one token.
        raise TokenError(f"a token named {name!r} already exists (names cannot be reused, even revoked)")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_sha256=_digest(secret), role=role, created_by=created_by))
    session.flush()
    record_event(
        session,
        actor=created_by,
        action="token_created",
        object_type="token",
        object_id=name,
        details={"role": role},
    )
    return secret


def revoke_token(session: Session, *, name: str, revoked_by: str) -> ApiToken:
    """Revoke the token called ``name`` (it stops working at once) and audit it."""
    token = session.scalars(select(ApiToken).where(ApiToken.name == name).with_for_update()).one_or_none()
    if token is None:
        raise TokenError(f"no token named {name!r}")
    if token.revoked_at is not None:
        raise TokenError(f"token {name!r} was already revoked at {token.revoked_at.isoformat()}")
    token.revoked_at = utcnow()
    session.flush()
    record_event(
        session,
        actor=revoked_by,
        action="token_revoked",
        object_type="token",
        object_id=name,
        details={"role": token.role},
    )
    return token


def find_token(session: Session, secret: str) -> ApiToken | None:
    """The token whose secret this is (revoked or not), or ``None`` for an unknown secret."""
    # Looked up by digest: the comparison happens on hashes, so timing reveals nothing about the secret.
    return session.scalars(select(ApiToken).where(ApiToken.token_sha256 == _digest(secret))).one_or_none()


def list_tokens(session: Session) -> list[ApiToken]:
    """All tokens, oldest first (secrets are not stored, so none is shown)."""
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))
