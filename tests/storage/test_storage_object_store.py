"""Filesystem object store: layout, digests, key validation, atomic and idempotent writes, disk full."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from storage.object_store import (
    FilesystemObjectStore,
    ObjectNotFoundError,
    ObjectStoreError,
    StoredObject,
    open_object_store,
)


@pytest.fixture
def store(tmp_path: Path) -> FilesystemObjectStore:
    return FilesystemObjectStore(tmp_path / "objects")


def _files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_put_get_round_trip_with_sha256_at_the_exact_path(store: FilesystemObjectStore) -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    stored = store.put_bytes("runs/r1/overlay.png", data, "image/png")

    assert stored == StoredObject(
        "runs/r1/overlay.png", hashlib.sha256(data).hexdigest(), len(data), "image/png"
    )
    path = store.root / "runs" / "r1" / "overlay.png"
    assert path.read_bytes() == data
    assert store.locate("runs/r1/overlay.png") == str(path)
    assert Path(store.locate("runs/r1/overlay.png")).is_absolute()
    assert store.get_bytes("runs/r1/overlay.png", expected_sha256=stored.sha256) == data
    assert store.exists("runs/r1/overlay.png")
    assert store.stat("runs/r1/overlay.png") == stored  # content type inferred from ".png"
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


def test_put_file_streams_large_files(store: FilesystemObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "scan.dcm"
    data = os.urandom(2 * 1024 * 1024 + 12345)  # more than one write chunk
    source.write_bytes(data)

    stored = store.put_file("studies/s1/scan.dcm", source, "application/dicom")

    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data)
    assert (store.root / "studies/s1/scan.dcm").read_bytes() == data


def test_get_bytes_detects_corruption(store: FilesystemObjectStore) -> None:
    stored = store.put_bytes("a/mask.png", b"original", "image/png")
    (store.root / "a/mask.png").write_bytes(b"tampered")

    with pytest.raises(ObjectStoreError, match=r"sha256 mismatch for a/mask\.png in .*objects") as info:
        store.get_bytes("a/mask.png", expected_sha256=stored.sha256)
    assert stored.sha256 in str(info.value)
    assert store.get_bytes("a/mask.png") == b"tampered"  # without a digest there is nothing to check


def test_get_missing_object_names_key_and_store(store: FilesystemObjectStore) -> None:
    with pytest.raises(ObjectNotFoundError, match=r"no object a/none\.bin in .*objects"):
        store.get_bytes("a/none.bin")


@pytest.mark.parametrize(
    "key",
    ["", "/etc/passwd", "../escape", "a/../../b", "a\\b", "a//b", "./a", "a/", "a/./b", "a/.argus-tmp-x"],
)
def test_invalid_keys_are_rejected(store: FilesystemObjectStore, key: str) -> None:
    with pytest.raises(ValueError, match="object key"):
        store.put_bytes(key, b"x", "text/plain")
    with pytest.raises(ValueError, match="object key"):
        store.exists(key)
    assert not store.root.exists() or _files_under(store.root) == []


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


def test_delete_is_idempotent_and_list_filters_by_prefix(store: FilesystemObjectStore) -> None:
    for key in ["runs/r1/a.png", "runs/r1/b.png", "runs/r10/c.png", "studies/s/d.dcm"]:
        store.put_bytes(key, key.encode(), "application/octet-stream")

    assert store.list() == ["runs/r1/a.png", "runs/r1/b.png", "runs/r10/c.png", "studies/s/d.dcm"]
    assert store.list("runs/r1/") == ["runs/r1/a.png", "runs/r1/b.png"]
    assert store.list("runs/r1") == ["runs/r1/a.png", "runs/r1/b.png", "runs/r10/c.png"]
    assert store.list("nothing/") == []

    store.delete("runs/r1/a.png")
    store.delete("runs/r1/a.png")
    assert not store.exists("runs/r1/a.png")
    assert store.list("runs/r1/") == ["runs/r1/b.png"]


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
        ("s3://bucket/prefix", r"unsupported object store URL scheme 's3'; supported: file://"),
        ("/plain/path", r"unsupported object store URL scheme '\(none\)'"),
        ("file://server/share", "must not name a host"),
        ("file:relative/dir", "absolute path"),
    ],
)
def test_open_object_store_rejects_other_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_object_store(url)
