"""Object storage for run inputs and artifacts (images, masks, overlays, reports).

The ``ObjectStore`` protocol, its filesystem implementation (the embedded default) and the factory
that opens a store from a URL; the S3 implementation lives in ``storage/s3_store.py``.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import mimetypes
import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from storage.s3_store import S3Config

__all__ = [
    "FilesystemObjectStore",
    "ObjectNotFoundError",
    "ObjectStore",
    "ObjectStoreError",
    "StoredObject",
    "content_key",
    "open_object_store",
    "put_content",
]

_CHUNK = 1024 * 1024
# Temporary files live next to their target (so os.replace stays on one filesystem) and carry this
# prefix so list() can skip them and keys can never collide with them.
_TMP_PREFIX = ".argus-tmp-"
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
_DEFAULT_CONTENT_TYPE = "application/octet-stream"
_SUPPORTED_SCHEMES = ("file", "s3")


@dataclass(frozen=True)
class StoredObject:
    """What a store knows about one object."""

    key: str
    sha256: str
    size: int
    content_type: str


class ObjectStoreError(RuntimeError):
    """An object could not be written, read or verified."""


class ObjectNotFoundError(ObjectStoreError):
    """The requested key does not exist in the store."""


class ObjectStore(Protocol):
    """Key/value storage of immutable-ish blobs addressed by slash-separated keys."""

    url: str

    def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        """Store ``data`` under ``key`` and return its digest and size."""
        ...

    def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        """Store the content of the local file ``path`` under ``key``."""
        ...

    def get_bytes(self, key: str, *, expected_sha256: str | None = None) -> bytes:
        """Return the object's bytes, verifying the digest when ``expected_sha256`` is given."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        ...

    def stat(self, key: str) -> StoredObject | None:
        """Describe the object under ``key``, or ``None`` when it does not exist."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""
        ...

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Sorted keys starting with ``prefix``."""
        ...

    def locate(self, key: str) -> str:
        """Where a human can find the object (a path, a console URL, ...)."""
        ...


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a safe relative object key, else raise ``ValueError``.

    Keys map one-to-one onto paths under the store root, so anything that could escape the root or
    alias another key (``..``, ``.``, empty segments, absolute paths, backslashes) is rejected.
    """
    if not isinstance(key, str) or not key:
        raise ValueError("object key must be a non-empty string")
    if "\\" in key:
        raise ValueError(f"object key {key!r} must use '/' separators, not backslashes")
    if "\x00" in key:
        raise ValueError(f"object key {key!r} must not contain NUL characters")
    if key.startswith("/"):
        raise ValueError(f"object key {key!r} must be relative, not absolute")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise ValueError(f"object key {key!r} must not contain empty, '.' or '..' segments")
        if part.startswith(_TMP_PREFIX):
            raise ValueError(f"object key {key!r} uses the reserved prefix {_TMP_PREFIX!r}")
    return key


def content_key(prefix: str, sha256: str, name: str) -> str:
    """``<prefix>/<sha256>/<name>``: addressed by content, yet readable where a person looks.

    The same bytes always land on the same key, so a repeated write is a no-op (never a second copy)
    and a key that was recorded can be checked against its content.
    """
    return validate_key(f"{prefix}/{sha256}/{PurePosixPath(name).name}")


def put_content(store: ObjectStore, prefix: str, name: str, data: bytes, content_type: str) -> StoredObject:
    """Store ``data`` under its :func:`content_key` below ``prefix``."""
    return store.put_bytes(content_key(prefix, hashlib.sha256(data).hexdigest(), name), data, content_type)


def check_sha256(data: bytes, expected_sha256: str | None, what: str) -> bytes:
    """``data`` itself when it matches ``expected_sha256`` (or none is given), else ObjectStoreError."""
    if expected_sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256.lower():
            raise ObjectStoreError(f"sha256 mismatch for {what}: expected {expected_sha256}, got {actual}")
    return data


def _guess_content_type(key: str) -> str:
    return mimetypes.guess_type(key, strict=False)[0] or _DEFAULT_CONTENT_TYPE


def _sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _iter_file(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        yield from iter(lambda: fh.read(_CHUNK), b"")


class FilesystemObjectStore:
    """Objects stored as plain files at ``<root>/<key>`` so users can find and open them directly.

    Writes are atomic (temporary file in the target directory, fsync, ``os.replace``), so readers see
    either the old object or the complete new one, never a partial file. Nothing besides the objects is
    stored: ``stat`` derives the content type from the key's extension.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = self.root.as_uri()

    def __repr__(self) -> str:
        return f"FilesystemObjectStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        """Store ``data`` under ``key`` atomically; identical existing content is left untouched."""
        path = self._path(key)
        stored = StoredObject(key, hashlib.sha256(data).hexdigest(), len(data), content_type)
        if self._same_content(path, stored):
            return stored
        return self._write(key, path, [data], content_type)

    def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        """Copy the local file ``path`` to ``key`` atomically; identical existing content is untouched."""
        target = self._path(key)
        source = Path(path)
        try:
            size = source.stat().st_size
        except OSError as exc:
            raise ObjectStoreError(f"cannot read {source} to store as {key} in {self.root}: {exc}") from exc
        # Only hash both files when the sizes already agree: that is the cheap filter for re-runs.
        if target.is_file() and target.stat().st_size == size:
            stored = StoredObject(key, _sha256_of_file(source), size, content_type)
            if self._same_content(target, stored):
                return stored
        return self._write(key, target, _iter_file(source), content_type)

    def _same_content(self, path: Path, expected: StoredObject) -> bool:
        try:
            if not path.is_file() or path.stat().st_size != expected.size:
                return False
            return _sha256_of_file(path) == expected.sha256
        except OSError:
            return False

    def _write(self, key: str, path: Path, chunks: Iterable[bytes], content_type: str) -> StoredObject:
        digest = hashlib.sha256()
        size = 0
        tmp: Path | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.parent / f"{_TMP_PREFIX}{path.name}.{secrets.token_hex(6)}"
            # os.open with 0o666 lets the umask decide permissions, as for any file the user creates
            # (tempfile.mkstemp would leave objects readable by their owner only).
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                for chunk in chunks:
                    view = memoryview(chunk)
                    while view:  # os.write may write less than asked
                        written = os.write(fd, view)
                        view = view[written:]
                    digest.update(chunk)
                    size += len(chunk)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            tmp = None
            self._fsync_dir(path.parent)
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                raise ObjectStoreError(f"disk full while writing {key} to {self.root}") from exc
            raise ObjectStoreError(f"cannot write {key} to {self.root}: {exc}") from exc
        finally:
            # Whatever went wrong (disk full, interrupt), never leave a partial temporary file behind.
            if tmp is not None:
                with contextlib.suppress(OSError):
                    tmp.unlink(missing_ok=True)
        return StoredObject(key, digest.hexdigest(), size, content_type)

    @staticmethod
    def _fsync_dir(directory: Path) -> None:
        # The rename is only durable once the directory entry is on disk.
        try:
            fd = os.open(directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass  # some filesystems do not support fsync on directories; the data itself is synced
        finally:
            os.close(fd)

    def get_bytes(self, key: str, *, expected_sha256: str | None = None) -> bytes:
        """Read the whole object; raise ``ObjectStoreError`` if its sha256 differs from the expected one."""
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"no object {key} in {self.root}") from exc
        except OSError as exc:
            raise ObjectStoreError(f"cannot read {key} from {self.root}: {exc}") from exc
        return check_sha256(data, expected_sha256, f"{key} in {self.root}")

    def exists(self, key: str) -> bool:
        """Whether a file is stored under ``key``."""
        return self._path(key).is_file()

    def stat(self, key: str) -> StoredObject | None:
        """Size and sha256 (computed by reading the file) of ``key``, or ``None`` if it is missing."""
        path = self._path(key)
        try:
            if not path.is_file():
                return None
            return StoredObject(key, _sha256_of_file(path), path.stat().st_size, _guess_content_type(key))
        except FileNotFoundError:
            return None  # deleted between the check and the read
        except OSError as exc:
            raise ObjectStoreError(f"cannot stat {key} in {self.root}: {exc}") from exc

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing object is fine so retries and cleanups can repeat."""
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise ObjectStoreError(f"cannot delete {key} from {self.root}: {exc}") from exc

    def locate(self, key: str) -> str:
        """The absolute filesystem path of ``key``."""
        return str(self._path(key))

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Sorted keys that start with ``prefix`` (a plain string prefix, not only a directory)."""
        # Walk only the deepest directory the prefix names instead of the whole store.
        directory, _, _ = prefix.rpartition("/")
        start = self.root / validate_key(directory) if directory else self.root
        if not start.is_dir():
            return []
        keys: builtins.list[str] = []
        for dirpath, _dirnames, filenames in os.walk(start):
            for name in filenames:
                if name.startswith(_TMP_PREFIX):
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)


def open_object_store(url: str, s3: S3Config | None = None) -> ObjectStore:
    """Open the store named by ``url``; the root directory or bucket is created if needed.

    ``file:///abs/path`` is a directory tree; ``s3://bucket/prefix`` needs ``s3`` (endpoint and keys).
    """
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if s3 is None:
            raise ValueError(
                f"{url} needs an S3 endpoint and keys (ARGUS_S3_ENDPOINT, ARGUS_S3_ACCESS_KEY, ...)"
            )
        # Imported here: s3_store builds on this module's protocol and errors.
        from storage.s3_store import open_s3_store

        return open_s3_store(url, s3)
    if parts.scheme != "file":
        scheme = parts.scheme or "(none)"
        supported = ", ".join(f"{s}://" for s in _SUPPORTED_SCHEMES)
        raise ValueError(f"unsupported object store URL scheme {scheme!r}; supported: {supported}")
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"file:// object store URL must not name a host, got {parts.netloc!r}")
    path = Path(unquote(parts.path))
    if not parts.path or not path.is_absolute():
        raise ValueError(f"file:// object store URL needs an absolute path (file:///data/argus), got {url!r}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ObjectStoreError(f"cannot create object store root {path}: {exc}") from exc
    return FilesystemObjectStore(path)
