"""Object stores: the same behaviour tests on the filesystem store and on S3 (SeaweedFS), then the
filesystem specifics (layout, atomic replace, umask, disk full). S3 specifics: test_storage_s3_store.py.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import secrets
from pathlib import Path

import pytest
from minio import Minio

from storage.object_store import (
    FilesystemObjectStore,
    ObjectNotFoundError,
    ObjectStore,
    ObjectStoreError,
    StoredObject,
    content_key,
    open_object_store,
    put_content,
)
from storage.s3_store import S3ObjectStore, open_s3_store


@pytest.fixture(params=["filesystem", "s3"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """Each backend in turn; S3 tests get a prefix of their own in a shared bucket."""
    if request.param == "filesystem":
        return FilesystemObjectStore(tmp_path / "objects")
    server = request.getfixturevalue("seaweedfs")
    return open_s3_store(f"s3://argus-tests/t-{secrets.token_hex(6)}", server.config())


@pytest.fixture
def store(tmp_path: Path) -> FilesystemObjectStore:
    return FilesystemObjectStore(tmp_path / "objects")


def _overwrite_behind_its_back(store: ObjectStore, key: str, data: bytes) -> None:
    """Replace an object's bytes without going through the store (bit rot, another tool)."""
    if isinstance(store, FilesystemObjectStore):
        (store.root / key).write_bytes(data)
        return
    assert isinstance(store, S3ObjectStore)
    cfg = store.config
    raw = Minio(cfg.endpoint, cfg.access_key, cfg.secret_key, secure=cfg.secure, region=cfg.region)
    name = store.locate(key).removeprefix(f"s3://{store.bucket}/")
    raw.put_object(store.bucket, name, io.BytesIO(data), len(data))


def test_round_trip_with_sha256_on_every_backend(any_store: ObjectStore) -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    stored = any_store.put_bytes("runs/r1/overlay.png", data, "image/png")

    assert stored == StoredObject(
        "runs/r1/overlay.png", hashlib.sha256(data).hexdigest(), len(data), "image/png"
    )
    assert any_store.get_bytes("runs/r1/overlay.png", expected_sha256=stored.sha256) == data
    assert any_store.exists("runs/r1/overlay.png")
    assert any_store.stat("runs/r1/overlay.png") == stored
    assert any_store.stat("runs/r1/missing.png") is None
    assert not any_store.exists("runs/r1/missing.png")
    assert any_store.locate("runs/r1/overlay.png").endswith("/runs/r1/overlay.png")
    assert any_store.list() == ["runs/r1/overlay.png"]  # no sidecar, no temporary object


def test_put_file_on_every_backend(any_store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "scan.dcm"
    data = os.urandom(2 * 1024 * 1024 + 12345)  # more than one read chunk
    source.write_bytes(data)

    stored = any_store.put_file("studies/s1/scan.dcm", source, "application/dicom")

    assert stored == StoredObject(
        "studies/s1/scan.dcm", hashlib.sha256(data).hexdigest(), len(data), "application/dicom"
    )
    assert any_store.get_bytes("studies/s1/scan.dcm", expected_sha256=stored.sha256) == data
    assert any_store.stat("studies/s1/scan.dcm") == stored
    with pytest.raises(ObjectStoreError, match=r"cannot read .*missing\.dcm to store as studies/s1/x\.dcm"):
        any_store.put_file("studies/s1/x.dcm", tmp_path / "missing.dcm", "application/dicom")
    assert not any_store.exists("studies/s1/x.dcm")


def test_read_detects_changed_content(any_store: ObjectStore) -> None:
    stored = any_store.put_bytes("a/mask.png", b"original", "image/png")
    _overwrite_behind_its_back(any_store, "a/mask.png", b"tampered")

    with pytest.raises(ObjectStoreError, match=r"sha256 mismatch for a/mask\.png in \S+") as info:
        any_store.get_bytes("a/mask.png", expected_sha256=stored.sha256)
    assert stored.sha256 in str(info.value)
    assert any_store.get_bytes("a/mask.png") == b"tampered"  # without a digest there is nothing to check


def test_missing_object_names_key_and_store(any_store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFoundError, match=r"no object a/none\.bin in \S+"):
        any_store.get_bytes("a/none.bin")


@pytest.mark.parametrize(
    "key",
    ["", "/etc/passwd", "../escape", "a/../../b", "a\\b", "a//b", "./a", "a/", "a/./b", "a/.argus-tmp-x"],
)
def test_invalid_keys_are_rejected(any_store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError, match="object key"):
        any_store.put_bytes(key, b"x", "text/plain")
    with pytest.raises(ValueError, match="object key"):
        any_store.exists(key)
    assert any_store.list() == []


def test_rewrite_same_or_new_content(any_store: ObjectStore) -> None:
    first = any_store.put_bytes("a/x.txt", b"version 1", "text/plain")
    assert any_store.put_bytes("a/x.txt", b"version 1", "text/plain") == first

    second = any_store.put_bytes("a/x.txt", b"version 2, longer", "text/plain")

    assert second.sha256 != first.sha256
    assert any_store.get_bytes("a/x.txt", expected_sha256=second.sha256) == b"version 2, longer"
    assert any_store.stat("a/x.txt") == second
    assert any_store.list() == ["a/x.txt"]


def test_delete_and_list_on_every_backend(any_store: ObjectStore) -> None:
    for key in ["runs/r1/a.png", "runs/r1/b.png", "runs/r10/c.png", "studies/s/d.dcm"]:
        any_store.put_bytes(key, key.encode(), "application/octet-stream")

    assert any_store.list() == ["runs/r1/a.png", "runs/r1/b.png", "runs/r10/c.png", "studies/s/d.dcm"]
    assert any_store.list("runs/r1/") == ["runs/r1/a.png", "runs/r1/b.png"]
    assert any_store.list("runs/r1") == ["runs/r1/a.png", "runs/r1/b.png", "runs/r10/c.png"]
    assert any_store.list("nothing/") == []

    any_store.delete("runs/r1/a.png")
    any_store.delete("runs/r1/a.png")  # deleting twice is fine (retries, cleanups)
    assert not any_store.exists("runs/r1/a.png")
    assert any_store.list("runs/r1/") == ["runs/r1/b.png"]


def test_content_addressed_keys(any_store: ObjectStore) -> None:
    data = b"mask bytes"
    digest = hashlib.sha256(data).hexdigest()

    stored = put_content(
        any_store, "studies/1.2.3/runs/r/attempt-1/masks", "dir/finding-001.png", data, "image/png"
    )
    again = put_content(
        any_store, "studies/1.2.3/runs/r/attempt-1/masks", "finding-001.png", data, "image/png"
    )

    assert (
        stored.key == f"studies/1.2.3/runs/r/attempt-1/masks/{digest}/finding-001.png"
    )  # readable name kept
    assert again == stored and any_store.list() == [stored.key]  # same bytes, same key: no second copy
    other = put_content(
        any_store, "studies/1.2.3/runs/r/attempt-1/masks", "finding-001.png", b"x", "image/png"
    )
    assert other.key != stored.key and any_store.get_bytes(stored.key) == data
    with pytest.raises(ValueError, match="object key"):
        content_key("../up", digest, "x.png")


def _files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_filesystem_objects_are_plain_files_at_the_exact_path(store: FilesystemObjectStore) -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    store.put_bytes("runs/r1/overlay.png", data, "image/png")

    path = store.root / "runs" / "r1" / "overlay.png"
    assert path.read_bytes() == data
    assert store.locate("runs/r1/overlay.png") == str(path)
    assert Path(store.locate("runs/r1/overlay.png")).is_absolute()
    assert _files_under(store.root) == ["runs/r1/overlay.png"]  # no sidecar, no temp file


def test_stat_infers_content_type_and_reports_missing(store: FilesystemObjectStore) -> None:
    store.put_bytes("a/report.json", b"{}", "application/json")
    store.put_bytes("a/blob.weird", b"x", "application/x-custom")

    report = store.stat("a/report.json")
    blob = store.stat("a/blob.weird")
    assert report is not None and report.content_type == "application/json"
    assert blob is not None and blob.content_type == "application/octet-stream"
    assert blob.size == 1
    assert store.stat("a/missing.png") is None
    assert not store.exists("a/missing.png")


def test_same_bytes_again_is_a_no_op(store: FilesystemObjectStore, tmp_path: Path) -> None:
    first = store.put_bytes("a/x.bin", b"same content", "application/octet-stream")
    before = os.stat(store.root / "a/x.bin")

    again = store.put_bytes("a/x.bin", b"same content", "application/octet-stream")
    source = tmp_path / "x.bin"
    source.write_bytes(b"same content")
    from_file = store.put_file("a/x.bin", source, "application/octet-stream")

    after = os.stat(store.root / "a/x.bin")
    assert again == first == from_file
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten


def test_overwrite_replaces_the_file_atomically(store: FilesystemObjectStore) -> None:
    store.put_bytes("a/x.txt", b"version 1", "text/plain")
    old_inode = os.stat(store.root / "a/x.txt").st_ino

    stored = store.put_bytes("a/x.txt", b"version 2, longer", "text/plain")

    # os.replace swaps in a new inode: a reader holding the old file never sees a mix of both versions.
    assert os.stat(store.root / "a/x.txt").st_ino != old_inode
    assert store.get_bytes("a/x.txt", expected_sha256=stored.sha256) == b"version 2, longer"
    assert _files_under(store.root) == ["a/x.txt"]


def test_new_objects_follow_the_umask(store: FilesystemObjectStore) -> None:
    store.put_bytes("a/x.txt", b"x", "text/plain")
    umask = os.umask(0)
    os.umask(umask)
    assert (store.root / "a/x.txt").stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_disk_full_leaves_nothing_partial(
    store: FilesystemObjectStore, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    store.put_bytes("a/keep.bin", b"previous version", "application/octet-stream")
    real_write = os.write
    calls = {"n": 0}

    def write_then_fill_disk(fd: int, data: bytes | memoryview) -> int:
        # The first chunk lands on disk, then the disk fills up: a partial temp file exists at that point.
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data)[:1024])
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "write", write_then_fill_disk)
    with pytest.raises(ObjectStoreError, match=r"disk full while writing a/new\.bin to .*objects"):
        store.put_bytes("a/new.bin", b"z" * 4096, "application/octet-stream")
    with pytest.raises(ObjectStoreError, match=r"disk full while writing a/keep\.bin"):
        store.put_bytes("a/keep.bin", b"replacement", "application/octet-stream")
    monkeypatch.undo()

    assert calls["n"] >= 2
    assert not store.exists("a/new.bin")
    assert store.get_bytes("a/keep.bin") == b"previous version"
    assert sorted(os.listdir(store.root / "a")) == ["keep.bin"]  # no temporary file left behind


def test_open_object_store_from_file_url(tmp_path: Path) -> None:
    root = tmp_path / "new" / "store dir"
    store = open_object_store(root.as_uri())

    assert root.is_dir()
    assert store.url == root.as_uri()
    stored = store.put_bytes("k.txt", b"hello", "text/plain")
    assert stored.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert store.locate("k.txt") == str(root / "k.txt")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://bucket/prefix", r"s3://bucket/prefix needs an S3 endpoint and keys \(ARGUS_S3_ENDPOINT"),
        ("ftp://host/x", r"unsupported object store URL scheme 'ftp'; supported: file://, s3://"),
        ("/plain/path", r"unsupported object store URL scheme '\(none\)'"),
        ("file://server/share", "must not name a host"),
        ("file:relative/dir", "absolute path"),
    ],
)
def test_open_object_store_rejects_other_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_object_store(url)
