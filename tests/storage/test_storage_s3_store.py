"""S3 store specifics against a real SeaweedFS: bucket creation, credentials, dead and hung endpoints,
transient 5xx, multipart uploads, write verification, and the server killed in the middle of an upload.

Faults a real server cannot be told to produce (a 503, a byte flipped in transit) come from a small
proxy in front of it (tests/s3_server.py); the crash is a real SIGKILL of a private server.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3
from minio import Minio
from minio.error import S3Error
from s3_server import FaultyProxy, SeaweedFS, free_ports

from storage.object_store import ObjectStoreError, StoredObject, open_object_store
from storage.s3_store import MIB, S3Config, open_s3_store, parse_s3_url


def _raw(config: S3Config) -> Minio:
    return Minio(config.endpoint, config.access_key, config.secret_key, secure=False, region=config.region)


def _prefix() -> str:
    return f"t-{secrets.token_hex(6)}"


@pytest.fixture
def proxy(seaweedfs: SeaweedFS) -> Iterator[FaultyProxy]:
    p = FaultyProxy(seaweedfs.endpoint)
    yield p
    p.close()


def test_open_creates_the_bucket_and_keeps_sha256_as_metadata(seaweedfs: SeaweedFS) -> None:
    bucket = f"argus-new-{secrets.token_hex(4)}"
    raw = _raw(seaweedfs.config())
    assert not raw.bucket_exists(bucket)

    store = open_object_store(f"s3://{bucket}/deploy/a", seaweedfs.config())
    stored = store.put_bytes("k/report.json", b"{}", "application/json")

    assert raw.bucket_exists(bucket)
    assert store.url == f"s3://{bucket}/deploy/a"
    assert store.locate("k/report.json") == f"s3://{bucket}/deploy/a/k/report.json"
    info = raw.stat_object(bucket, "deploy/a/k/report.json")
    assert info.metadata["x-amz-meta-sha256"] == stored.sha256 == hashlib.sha256(b"{}").hexdigest()
    assert info.content_type == "application/json"
    # Opening again (bucket exists) is fine; the same keys are visible.
    assert open_object_store(f"s3://{bucket}/deploy/a", seaweedfs.config()).list() == ["k/report.json"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://", "must look like s3://bucket/prefix"),
        ("s3://Bad_Bucket/x", "invalid bucket name 'Bad_Bucket'"),
        ("s3://bucket/a/../b", "invalid prefix"),
        ("s3://bucket/x?versionId=1", "must not have a query"),
    ],
)
def test_malformed_s3_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_s3_url(url)


def test_config_refuses_a_url_as_endpoint_and_small_parts() -> None:
    with pytest.raises(ValueError, match="host:port without scheme"):
        S3Config(endpoint="http://127.0.0.1:9000", access_key="a", secret_key="b")
    with pytest.raises(ValueError, match="at least 5 MiB"):
        S3Config(endpoint="127.0.0.1:9000", access_key="a", secret_key="b", part_size=MIB)


def test_anonymous_requests_are_refused(seaweedfs: SeaweedFS) -> None:
    store = open_s3_store(f"s3://argus-tests/{_prefix()}", seaweedfs.config())
    store.put_bytes("secret.txt", b"patient data", "text/plain")
    name = store.locate("secret.txt").removeprefix("s3://argus-tests/")
    http = urllib3.PoolManager()

    for method, body in [("GET", None), ("PUT", b"overwrite"), ("DELETE", None)]:
        response = http.request(method, f"http://{seaweedfs.endpoint}/argus-tests/{name}", body=body)
        assert response.status == 403, method
        assert b"AccessDenied" in response.data
    with pytest.raises(S3Error, match="AccessDenied"):
        list(Minio(seaweedfs.endpoint, secure=False).list_objects("argus-tests"))
    assert store.get_bytes("secret.txt") == b"patient data"


def test_wrong_secret_is_a_clear_error(seaweedfs: SeaweedFS) -> None:
    config = seaweedfs.config(secret_key="wrong")
    with pytest.raises(ObjectStoreError) as info:
        open_s3_store("s3://argus-tests/x", config)
    message = str(info.value)
    assert f"S3 endpoint http://{seaweedfs.endpoint} answered" in message
    assert "AccessDenied" in message or "SignatureDoesNotMatch" in message
    assert "check ARGUS_S3_ACCESS_KEY and ARGUS_S3_SECRET_KEY" in message
    assert "wrong" not in message  # the secret itself is never printed
    assert "wrong" not in repr(config)


def test_dead_endpoint_fails_fast_naming_it() -> None:
    (port,) = free_ports(1)  # nothing listens there
    config = S3Config(endpoint=f"127.0.0.1:{port}", access_key="a", secret_key="b", secure=False)
    started = time.monotonic()
    with pytest.raises(ObjectStoreError, match=rf"S3 endpoint http://127\.0\.0\.1:{port} unreachable"):
        open_s3_store("s3://argus-tests/x", config)
    assert time.monotonic() - started < 5


def test_silent_endpoint_times_out_instead_of_hanging() -> None:
    # Accepts connections (the kernel completes the handshake) but never answers a request.
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = S3Config(
        endpoint=f"127.0.0.1:{port}",
        access_key="a",
        secret_key="b",
        secure=False,
        read_timeout=0.5,
        retries=1,
    )
    try:
        started = time.monotonic()
        with pytest.raises(ObjectStoreError, match=rf"127\.0\.0\.1:{port} unreachable.*timed out"):
            open_s3_store("s3://argus-tests/x", config)
        assert time.monotonic() - started < 5
    finally:
        listener.close()


def test_transient_503s_are_retried(seaweedfs: SeaweedFS, proxy: FaultyProxy) -> None:
    config = seaweedfs.config(endpoint=proxy.endpoint, retries=2)
    store = open_s3_store(f"s3://argus-tests/{_prefix()}", config)
    proxy.requests.clear()
    proxy.fail_next = 2

    stored = store.put_bytes("a/x.bin", b"payload", "application/octet-stream")

    assert store.get_bytes("a/x.bin", expected_sha256=stored.sha256) == b"payload"
    assert proxy.fail_next == 0 and len(proxy.requests) >= 5  # 2 refused + existence check + PUT + GET
    # A server that keeps failing gives a bounded, clear error instead.
    proxy.fail_next = 100
    started = time.monotonic()
    with pytest.raises(ObjectStoreError, match=rf"S3 endpoint http://{proxy.endpoint} .*503"):
        store.get_bytes("a/x.bin")
    assert time.monotonic() - started < 5


def test_same_content_is_not_uploaded_again(seaweedfs: SeaweedFS, proxy: FaultyProxy) -> None:
    config = seaweedfs.config(endpoint=proxy.endpoint)
    store = open_s3_store(f"s3://argus-tests/{_prefix()}", config)
    first = store.put_bytes("a/x.bin", b"same", "application/octet-stream")
    proxy.requests.clear()

    assert store.put_bytes("a/x.bin", b"same", "application/octet-stream") == first

    assert [r.split()[0] for r in proxy.requests] == ["HEAD"]  # looked, did not write


def test_multipart_round_trip(seaweedfs: SeaweedFS, tmp_path: Path) -> None:
    config = seaweedfs.config(part_size=5 * MIB)
    store = open_s3_store(f"s3://argus-tests/{_prefix()}", config)
    data = os.urandom(12 * 1000 * 1000)
    source = tmp_path / "volume.nii"
    source.write_bytes(data)

    from_file = store.put_file("big/volume.nii", source, "application/octet-stream")
    from_bytes = store.put_bytes("big/copy.nii", data, "application/octet-stream")

    expected = StoredObject(
        "big/volume.nii", hashlib.sha256(data).hexdigest(), len(data), "application/octet-stream"
    )
    assert from_file == expected and store.stat("big/volume.nii") == expected
    assert from_bytes.sha256 == expected.sha256
    for key in ("big/volume.nii", "big/copy.nii"):
        assert store.get_bytes(key, expected_sha256=expected.sha256) == data
        name = store.locate(key).removeprefix("s3://argus-tests/")
        assert _raw(config).stat_object("argus-tests", name).etag.endswith("-3")  # three parts went up


def test_corruption_in_transit_is_caught(seaweedfs: SeaweedFS, proxy: FaultyProxy) -> None:
    config = seaweedfs.config(endpoint=proxy.endpoint, part_size=5 * MIB)
    store = open_s3_store(f"s3://argus-tests/{_prefix()}", config)

    # A single PUT carries its sha256; the server refuses bytes that do not match it.
    proxy.corrupt = "small.bin"
    with pytest.raises(ObjectStoreError, match=r"cannot write small\.bin .* answered BadDigest"):
        store.put_bytes("small.bin", b"x" * 1000, "application/octet-stream")
    # A multipart upload is checked after completion against the ETag the server computed.
    proxy.corrupt = "partNumber=2&"
    with pytest.raises(ObjectStoreError, match=r"checksum mismatch after writing big\.bin .* was removed"):
        store.put_bytes("big.bin", os.urandom(11 * MIB), "application/octet-stream")

    assert store.list() == []  # nothing wrong is left looking valid
    proxy.corrupt = None
    data = os.urandom(11 * MIB)
    assert (
        store.put_bytes("big.bin", data, "application/octet-stream").sha256
        == hashlib.sha256(data).hexdigest()
    )


def test_objects_written_by_other_tools_are_hashed_on_stat(seaweedfs: SeaweedFS) -> None:
    store = open_s3_store(f"s3://argus-tests/{_prefix()}", seaweedfs.config())
    name = store.locate("foreign.txt").removeprefix("s3://argus-tests/")
    _raw(seaweedfs.config()).put_object("argus-tests", name, io.BytesIO(b"from rclone"), 11)

    stat = store.stat("foreign.txt")

    assert stat is not None and stat.sha256 == hashlib.sha256(b"from rclone").hexdigest() and stat.size == 11


@pytest.mark.slow
def test_server_killed_mid_upload_loses_nothing_and_the_put_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = SeaweedFS(tmp_path / "private-seaweedfs")  # its own process: this test kills it
    server.start()
    try:
        store = open_s3_store("s3://argus-crash/p", server.config(part_size=5 * MIB))
        kept = store.put_bytes("kept/report.json", b'{"ok": true}', "application/json")
        data = os.urandom(30 * MIB)
        source = tmp_path / "big.bin"
        source.write_bytes(data)
        real_upload_part = Minio._upload_part

        def crash_before_part_3(self, bucket, name, part, headers, upload_id, number):  # type: ignore[no-untyped-def]
            if number == 3:
                server.kill()  # the fault: the server dies with parts 1-2 uploaded
            return real_upload_part(self, bucket, name, part, headers, upload_id, number)

        monkeypatch.setattr(Minio, "_upload_part", crash_before_part_3)
        started = time.monotonic()
        with pytest.raises(
            ObjectStoreError,
            match=rf"cannot write big\.bin in s3://argus-crash/p: S3 endpoint http://{server.endpoint}",
        ):
            store.put_file("big.bin", source, "application/octet-stream")
        assert time.monotonic() - started < 15
        monkeypatch.undo()

        server.start()  # same data directory and ports
        assert store.stat("big.bin") is None  # the interrupted upload is not half-visible
        assert store.list() == ["kept/report.json"]
        assert store.get_bytes("kept/report.json", expected_sha256=kept.sha256) == b'{"ok": true}'
        stored = store.put_file("big.bin", source, "application/octet-stream")
        assert store.get_bytes("big.bin", expected_sha256=stored.sha256) == data
        assert store.list() == ["big.bin", "kept/report.json"]
    finally:
        server.stop()


def test_settings_name_what_an_s3_store_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from argus.settings import Settings

    monkeypatch.setenv("ARGUS_OBJECT_STORE", "s3://argus/objects")
    monkeypatch.setenv("ARGUS_S3_ENDPOINT", "127.0.0.1:9000")
    with pytest.raises(ValidationError, match="needs ARGUS_S3_ACCESS_KEY, ARGUS_S3_SECRET_KEY"):
        Settings()
    monkeypatch.setenv("ARGUS_OBJECT_STORE", "ftp://host/objects")
    with pytest.raises(ValidationError, match=r"must be a file:// or s3://bucket/prefix URL"):
        Settings()
    monkeypatch.setenv("ARGUS_OBJECT_STORE", "s3://argus/objects")
    monkeypatch.setenv("ARGUS_S3_ACCESS_KEY", "argus")
    monkeypatch.setenv("ARGUS_S3_SECRET_KEY", "s3cret-value")
    settings = Settings()
    assert settings.s3_secure is True and settings.s3_region == "us-east-1"  # TLS unless turned off
    assert "s3cret-value" not in repr(settings)
