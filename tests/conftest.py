"""Test-wide set-up: no network, private Prefect state, one Prefect test server and one fresh
PostgreSQL database per session.

PostgreSQL: set TEST_POSTGRES_URL to use another server (not ARGUS_*: those are cleared here); tests
that need it fail if it is unreachable (`make test` starts the local cluster first).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from s3_server import SeaweedFS

# Before prefect or ultralytics is imported anywhere: private homes, offline, no telemetry.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="argus-tests-"))
os.environ.update(
    {
        "PREFECT_HOME": str(_SESSION_DIR / "prefect"),
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(_SESSION_DIR / "prefect-results"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "YOLO_CONFIG_DIR": str(_SESSION_DIR / "ultralytics"),
    }
)
os.environ.pop("PREFECT_API_URL", None)
for _key in [k for k in os.environ if k.startswith("ARGUS_")]:
    del os.environ[_key]

from models.offline import configure_offline_ml  # noqa: E402

configure_offline_ml(_SESSION_DIR / "ultralytics")

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check_address(address: object) -> None:
    if isinstance(address, tuple) and address:
        host = str(address[0])
        try:
            ip = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            if host != "localhost":
                raise ConnectionRefusedError(f"test network guard: refusing connection to {host}") from None
            return
        if not ip.is_loopback:
            raise ConnectionRefusedError(f"test network guard: refusing connection to {host}")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _check_address(address)
    _real_connect(self, address)  # type: ignore[arg-type]


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _check_address(address)
    return _real_connect_ex(self, address)  # type: ignore[arg-type]


_real_getaddrinfo = socket.getaddrinfo
_real_sendto = socket.socket.sendto


def _guarded_getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
    # Name lookups are network traffic too (ultralytics' is_online() resolves public DNS names).
    if host not in (None, "localhost", "") and isinstance(host, str | bytes):
        name = host.decode() if isinstance(host, bytes) else host
        try:
            if not ipaddress.ip_address(name.split("%")[0]).is_loopback:
                raise OSError(f"test network guard: refusing lookup of {name}")
        except ValueError:
            raise OSError(f"test network guard: refusing lookup of {name}") from None
    return _real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]


def _guarded_sendto(self: socket.socket, data: bytes, *args: object) -> int:
    _check_address(args[-1])
    return _real_sendto(self, data, *args)  # type: ignore[arg-type]


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
socket.socket.sendto = _guarded_sendto  # type: ignore[method-assign]
socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]


PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """URL of a database created for this test session and dropped (WITH (FORCE)) afterwards."""
    admin = create_engine(
        PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool, connect_args={"connect_timeout": 5}
    )
    name = f"argus_test_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL not reachable at {admin.url!r}: {exc.orig}; start it (infra/start-postgres.sh)"
        )
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def argus_env(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A fresh Argus data dir with a file store for one test; returns the data dir.

    The database is SQLite in the data dir, or with ``indirect`` parametrization "postgresql", a
    schema of its own in the session's PostgreSQL database.
    """
    from tasks.resources import clear_caches

    data_dir = tmp_path / "argus-data"
    monkeypatch.setenv("ARGUS_DATA_DIR", str(data_dir))
    if getattr(request, "param", "sqlite") == "postgresql":
        base = request.getfixturevalue("pg_database_url")
        monkeypatch.setenv("ARGUS_DATABASE_URL", f"{base}?options=-csearch_path%3De2e_{secrets.token_hex(6)}")
    clear_caches()
    yield data_dir
    from argus.db import engine

    engine().dispose()  # PostgreSQL allows ~100 connections per server
    clear_caches()


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One Prefect test server for the whole session (it costs ~15-20 s to start)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with (
        prefect_test_harness(server_startup_timeout=180),
        temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        yield


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS S3 server on free loopback ports for the session (~2 s to start), with its own
    access key; stopped at the end. Tests take a fresh bucket or prefix each."""
    from s3_server import SeaweedFS

    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
