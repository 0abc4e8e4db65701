"""The configured database: one migrated engine per process and a session per unit of work.

Kept free of model imports so that listing commands (`argus runs`, `argus audit`) start fast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import lru_cache

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from argus.settings import get_settings
from storage.database import get_engine, migrate, session_scope


@lru_cache(maxsize=8)
def migrated_engine(url: str) -> Engine:
    """The engine of the database at ``url``, migrated to the current schema on first use."""
    migrate(url)
    return get_engine(url)


@lru_cache(maxsize=4)
def engine() -> Engine:
    """The configured database, migrated to the current schema on first use."""
    return migrated_engine(get_settings().resolved_database_url)


@contextlib.contextmanager
def db_session() -> Iterator[Session]:
    """One unit of work on the configured database."""
    with session_scope(engine()) as session:
        yield session
