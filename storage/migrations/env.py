"""Alembic environment for the Argus schema.

``storage.database.migrate`` passes an open connection in ``config.attributes["connection"]``. The
Alembic CLI works too: ``alembic -c <ini with script_location = storage/migrations> -x url=<database URL>
upgrade head``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from storage.database import get_engine, normalize_url
from storage.schema import Base

config = context.config
target_metadata = Base.metadata
# No logging.config.fileConfig here: migrations run inside the application, whose logging setup must
# not be replaced.


def _database_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: pass -x url=<database URL> or set sqlalchemy.url")
    return url


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit the migration SQL without a database (``alembic upgrade head --sql``)."""
    url = normalize_url(_database_url())
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.get_backend_name() == "sqlite",
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the connection handed over by ``migrate()`` or on a new one."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    with get_engine(_database_url()).connect() as new_connection:
        _configure_and_run(new_connection)
        new_connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
