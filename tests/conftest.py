"""Test-wide set-up: no network, private Prefect state, and one Prefect test server per session."""

from __future__ import annotations

import ipaddress
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

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


@pytest.fixture
def argus_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh Argus data dir (SQLite + file store) for one test; returns the data dir."""
    from tasks.resources import clear_caches

    data_dir = tmp_path / "argus-data"
    monkeypatch.setenv("ARGUS_DATA_DIR", str(data_dir))
    clear_caches()
    yield data_dir
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
