"""API tokens: shown once, stored as sha256 only, unique names, revocation; all audited."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import Engine, select

from storage.audit_query import AuditFilter, list_events
from storage.database import session_scope
from storage.schema import ApiToken
from storage.tokens import TOKEN_PREFIX, TokenError, create_token, find_token, list_tokens, revoke_token


def test_token_is_stored_as_its_hash_only_and_found_by_secret(engine: Engine) -> None:
    with session_scope(engine) as session:
        secret = create_token(session, name="ci", role="auditor", created_by="argus:alice")
    assert secret.startswith(TOKEN_PREFIX) and len(secret) > 40
    with session_scope(engine) as session:
        (row,) = session.scalars(select(ApiToken)).all()
        assert row.token_sha256 == hashlib.sha256(secret.encode()).hexdigest()
        assert secret not in repr(list(session.execute(select(ApiToken.__table__)).one()))
        found = find_token(session, secret)
        assert found is not None and (found.name, found.role, found.created_by) == (
            "ci",
            "auditor",
            "argus:alice",
        )
        assert find_token(session, secret + "x") is None
        [event] = list_events(session, AuditFilter(action="token_created"))
        assert (event.actor, event.object_id, event.details) == ("argus:alice", "ci", {"role": "auditor"})
        assert secret not in str(event.details)


def test_names_are_unique_for_ever_and_roles_checked(engine: Engine) -> None:
    with session_scope(engine) as session:
        create_token(session, name="ci", role="viewer", created_by="a")
        revoke_token(session, name="ci", revoked_by="a")
    with (
        pytest.raises(TokenError, match="a token named 'ci' already exists"),
        session_scope(engine) as session,
    ):
        create_token(session, name="ci", role="viewer", created_by="a")
    bad_role = "role must be one of viewer, auditor, admin, got 'root'"
    with pytest.raises(TokenError, match=bad_role), session_scope(engine) as session:
        create_token(session, name="other", role="root", created_by="a")
    with pytest.raises(TokenError, match="token name 'bad name' must be"), session_scope(engine) as session:
        create_token(session, name="bad name", role="viewer", created_by="a")
    with session_scope(engine) as session:
        assert [t.name for t in list_tokens(session)] == ["ci"]


def test_revocation_is_recorded_and_not_repeated(engine: Engine) -> None:
    with session_scope(engine) as session:
        secret = create_token(session, name="ci", role="admin", created_by="a")
    with session_scope(engine) as session:
        revoke_token(session, name="ci", revoked_by="argus:bob")
    with session_scope(engine) as session:
        token = find_token(session, secret)
        assert token is not None and token.revoked_at is not None
        [event] = list_events(session, AuditFilter(action="token_revoked"))
        assert (event.actor, event.object_id) == ("argus:bob", "ci")
    with (
        pytest.raises(TokenError, match="token 'ci' was already revoked at"),
        session_scope(engine) as session,
    ):
        revoke_token(session, name="ci", revoked_by="a")
    with pytest.raises(TokenError, match="no token named 'nope'"), session_scope(engine) as session:
        revoke_token(session, name="nope", revoked_by="a")
