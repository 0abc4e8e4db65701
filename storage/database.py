"""Database engines, sessions and schema migrations for SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

__all__ = ["DatabaseError", "get_engine", "migrate", "normalize_url", "safe_url", "session_scope"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
CONNECT_TIMEOUT_S = 5
SQLITE_BUSY_TIMEOUT_S = 30
# Arbitrary constant ("ArgusMig") for pg_advisory_xact_lock: concurrent migrate() calls from several
# workers take turns instead of racing to create the same tables.
_PG_MIGRATION_LOCK = 0x4172677573_4D6967

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


class DatabaseError(RuntimeError):
    """The database cannot be reached or migrated."""


def normalize_url(url: str | URL) -> URL:
    """Parse ``url`` and pin the driver: psycopg 3 for PostgreSQL, the standard sqlite3 module for SQLite.

    Raises ``ValueError`` for anything else, so a typo fails early with the list of supported schemes.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError(f"not a database URL: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        # Plain postgresql:// would select psycopg2, which is not installed; psycopg 3 is.
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite" and parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return parsed
    raise ValueError(
        f"unsupported database URL {safe_url(parsed)!r}: use sqlite:///path/to/argus.db or postgresql://..."
    )


def safe_url(url: str | URL) -> str:
    """``url`` as text with any password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def get_engine(url: str) -> Engine:
    """The process-wide engine for ``url`` (created on first use, then reused: one pool per database)."""
    parsed = normalize_url(url)
    key = parsed.render_as_string(hide_password=False)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = (
                _create_sqlite_engine(parsed)
                if parsed.get_backend_name() == "sqlite"
                else _create_postgres_engine(parsed)
            )
            _engines[key] = engine
        return engine


def _create_postgres_engine(url: URL, **kwargs: Any) -> Engine:
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        # libpq waits indefinitely by default; a pipeline must fail fast when the server is away.
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    # pre_ping replaces connections the server closed (restarts, idle timeouts) instead of failing a run.
    return create_engine(url, connect_args=connect_args, pool_pre_ping=True, **kwargs)


def _create_sqlite_engine(url: URL) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (it would not BEGIN before SELECTs
        # or DDL); SQLAlchemy emits BEGIN itself in _on_begin below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")
            # WAL lets readers proceed while a writer commits; the setting persists in the file.
            cursor.execute("PRAGMA journal_mode = WAL")
            # SQLite ignores foreign keys (and ON DELETE CASCADE) unless enabled on every connection.
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock at the start of the transaction, waiting up to the busy timeout.
        # A deferred transaction that reads and then writes fails at once with "database is locked" when
        # another connection wrote in between, and two deferred writers could read the same audit
        # chain head; taking the lock first serializes writers cleanly.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _connect_error(engine: Engine, exc: DBAPIError) -> DatabaseError:
    reason = " ".join(str(exc.orig).split())  # drivers put newlines and tabs in their messages
    return DatabaseError(f"cannot connect to database {safe_url(engine.url)}: {reason}")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session for one unit of work: commit if the block succeeds, roll back if it raises, always close.

    Objects stay readable after the block (``expire_on_commit=False``) so callers can use returned rows.
    Raises ``DatabaseError`` if the database cannot be reached, or if the connection is lost during the unit
    of work (nothing of it is then written; the pool replaces the connection for the next one).
    """
    session = Session(engine, expire_on_commit=False)
    try:
        try:
            session.connection()  # connect now so an unreachable database is reported as such
        except DBAPIError as exc:
            raise _connect_error(engine, exc) from exc
        yield session
        session.commit()
    except DBAPIError as exc:
        session.rollback()
        if not exc.connection_invalidated:
            raise
        reason = " ".join(str(exc.orig).split())
        raise DatabaseError(
            f"lost the connection to database {safe_url(engine.url)} during a transaction: {reason}; "
            "the transaction was rolled back, nothing of it was written"
        ) from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def migrate(url: str) -> None:
    """Bring the database at ``url`` to the newest schema (Alembic ``upgrade head``).

    Uses the migration scripts shipped inside this package, so no ``alembic.ini`` is needed. Creates the
    parent directory of a SQLite file, and on PostgreSQL the first schema of ``search_path`` (e.g. from
    ``?options=-csearch_path%3Dargus``) when it does not exist yet.
    """
    parsed = normalize_url(url)
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite:
        _make_sqlite_parent_dir(parsed)
    else:
        _create_search_path_schema(parsed)
    engine = get_engine(url)

    config = Config()
    # ConfigParser treats '%' as interpolation; escape it in case the install path contains one.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))

    try:
        connection = engine.connect()
        if is_sqlite:
            _disable_sqlite_foreign_keys(connection)
    except DBAPIError as exc:
        raise _connect_error(engine, exc) from exc
    try:
        with connection.begin():
            # On SQLite, BEGIN IMMEDIATE (see _on_begin) already serializes concurrent migrations.
            if not is_sqlite:
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            # The connection travels through config.attributes rather than sqlalchemy.url, which would
            # go through ConfigParser and break on the '%' of URL-encoded options.
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            if is_sqlite:
                _check_sqlite_foreign_keys(connection, url)
    finally:
        if is_sqlite:
            # Discard rather than pool this connection: it runs with foreign keys off.
            connection.invalidate()
        connection.close()


def _make_sqlite_parent_dir(url: URL) -> None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    parent = Path(database).expanduser().resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseError(f"cannot create the directory of database {safe_url(url)}: {exc}") from exc


def _disable_sqlite_foreign_keys(connection: Connection) -> None:
    # Batch migrations rebuild tables (copy, DROP, rename); with foreign keys on, dropping a parent table
    # would cascade-delete its children. The pragma only works outside a transaction, hence on the raw
    # DBAPI connection before SQLAlchemy emits BEGIN.
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys = OFF")
    finally:
        cursor.close()


def _check_sqlite_foreign_keys(connection: Connection, url: str) -> None:
    violations = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if violations:
        raise DatabaseError(
            f"migrating {safe_url(url)} left {len(violations)} foreign key violations, first: {violations[0]}"
        )


def _create_search_path_schema(url: URL) -> None:
    # Unqualified CREATE TABLE goes to the first existing schema of search_path. If the schema the URL
    # asks for does not exist, PostgreSQL silently uses the next one (often public) or fails with "no
    # schema has been selected to create in"; create it so the tables land where they were asked.
    # This runs on a throwaway engine: the cached engine records current_schema() on its first connect,
    # and must not record NULL because the schema did not exist yet.
    engine = _create_postgres_engine(url, poolclass=NullPool)
    try:
        try:
            connection = engine.connect()
        except DBAPIError as exc:
            raise _connect_error(engine, exc) from exc
        with connection, connection.begin():
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            search_path = connection.exec_driver_sql("SHOW search_path").scalar_one()
            first = _first_search_path_entry(str(search_path))
            if first is None:
                return
            exists = connection.execute(
                text("SELECT 1 FROM pg_namespace WHERE nspname = :name"), {"name": first}
            ).first()
            if exists is None:
                quoted = connection.dialect.identifier_preparer.quote_identifier(first)
                connection.exec_driver_sql(f"CREATE SCHEMA {quoted}")
    finally:
        engine.dispose()


def _first_search_path_entry(search_path: str) -> str | None:
    entry = search_path.split(",")[0].strip()
    if entry.startswith('"') and entry.endswith('"') and len(entry) >= 2:
        entry = entry[1:-1].replace('""', '"')
    # "$user" resolves to a schema named after the role only if one exists; never create it implicitly.
    if not entry or entry == "$user":
        return None
    return entry
