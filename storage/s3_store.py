"""S3 object store through the ``minio`` SDK (MinIO, SeaweedFS, AWS S3, ...).

Every write is verified by the server or against it: single-part uploads carry
``x-amz-checksum-sha256``, which the server checks before storing; multipart uploads are compared
after completion with the ETag the server computed (MD5 of the part MD5s, ``-<parts>``). Each object
keeps its sha256 as user metadata (``x-amz-meta-sha256``) so ``stat`` answers without reading it.
Multipart uploads are invisible until completed, so an interrupted upload never leaves a partial
object behind.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import io
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error
from minio.helpers import check_bucket_name
from urllib3.util import Retry, Timeout

from storage.object_store import (
    ObjectNotFoundError,
    ObjectStoreError,
    StoredObject,
    check_sha256,
    validate_key,
)

__all__ = ["S3Config", "S3ObjectStore", "open_s3_store", "parse_s3_url"]

MIB = 1024 * 1024
_SHA256_META = "sha256"
# Errors that mean the credentials are wrong, not the request: the message points at the settings.
_AUTH_CODES = {"AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidSignature"}
_MISSING_CODES = {"NoSuchKey", "NoSuchObject"}


@dataclass(frozen=True)
class S3Config:
    """How to reach an S3 endpoint; timeouts keep a dead endpoint from hanging a flow."""

    endpoint: str  # host:port, no scheme
    access_key: str
    secret_key: str = field(repr=False)
    secure: bool = True
    region: str = "us-east-1"
    part_size: int = 16 * MIB  # objects larger than this go up as a multipart upload
    connect_timeout: float = 2.0
    read_timeout: float = 60.0
    # Per request, with exponential backoff (0, 1, 2, 4 s): 5xx answers and dropped connections get a
    # few seconds (a restarting server answers 500 until its volumes are back); a refused or timed-out
    # connect fails sooner, so a dead endpoint is reported within seconds.
    retries: int = 4
    connect_retries: int = 2

    def __post_init__(self) -> None:
        if "://" in self.endpoint or "/" in self.endpoint:
            raise ValueError(
                f"S3 endpoint must be host:port without scheme or path (TLS is a separate flag), "
                f"got {self.endpoint!r}"
            )
        if self.part_size < 5 * MIB:
            raise ValueError(f"S3 part size must be at least 5 MiB (an S3 limit), got {self.part_size}")

    @property
    def endpoint_url(self) -> str:
        """``http(s)://host:port``, as error messages name the endpoint."""
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → ``("bucket", "some/prefix")``; raise ``ValueError`` when malformed."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"S3 object store URL must look like s3://bucket/prefix, got {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"S3 object store URL must not have a query or fragment, got {url!r}")
    try:
        check_bucket_name(parts.netloc, strict=True)
    except ValueError as exc:
        raise ValueError(f"invalid bucket name {parts.netloc!r} in {url!r}: {exc}") from exc
    prefix = parts.path.strip("/")
    if prefix:
        try:
            validate_key(prefix)
        except ValueError as exc:
            raise ValueError(f"invalid prefix in S3 object store URL {url!r}: {exc}") from exc
    return parts.netloc, prefix


def _http_client(config: S3Config) -> urllib3.PoolManager:
    retry = Retry(
        total=config.retries,
        connect=min(config.connect_retries, config.retries),
        read=config.retries,
        status=config.retries,
        backoff_factor=0.5,
        backoff_max=4.0,
        status_forcelist=(500, 502, 503, 504),
        # Hand the last error response to minio, which turns it into an S3Error with the server's text.
        raise_on_status=False,
        # A server asking for minutes of patience would turn a bounded retry into a hang.
        respect_retry_after_header=False,
    )
    return urllib3.PoolManager(
        timeout=Timeout(connect=config.connect_timeout, read=config.read_timeout),
        retries=retry,
        maxsize=10,
        # The system CA store (and SSL_CERT_FILE) decide which certificates are trusted.
        cert_reqs="CERT_REQUIRED",
    )


def _part_digests(chunks: Iterable[bytes]) -> tuple[str, int, str]:
    """sha256, size and the ETag an S3 server computes for these upload parts."""
    sha = hashlib.sha256()
    md5s: list[bytes] = []
    size = 0
    for chunk in chunks:
        sha.update(chunk)
        md5s.append(hashlib.md5(chunk, usedforsecurity=False).digest())
        size += len(chunk)
    if len(md5s) <= 1:
        etag = (md5s[0] if md5s else hashlib.md5(b"", usedforsecurity=False).digest()).hex()
    else:
        etag = f"{hashlib.md5(b''.join(md5s), usedforsecurity=False).hexdigest()}-{len(md5s)}"
    return sha.hexdigest(), size, etag


def _file_parts(path: Path, part_size: int) -> Iterator[bytes]:
    with path.open("rb") as fh:
        yield from iter(lambda: fh.read(part_size), b"")


class S3ObjectStore:
    """Objects at ``s3://<bucket>/<prefix>/<key>``; same keys and semantics as the filesystem store."""

    def __init__(self, bucket: str, prefix: str, config: S3Config) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.config = config
        self.url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        try:
            self._client = Minio(
                config.endpoint,
                access_key=config.access_key,
                secret_key=config.secret_key,
                secure=config.secure,
                region=config.region,  # known region: no GetBucketLocation round trip per bucket
                http_client=_http_client(config),
            )
        except ValueError as exc:
            raise ValueError(f"invalid S3 endpoint {config.endpoint!r} (expected host:port): {exc}") from exc

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.url!r} at {self.config.endpoint_url})"

    def _name(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextmanager
    def _errors(self, action: str, key: str | None = None) -> Iterator[None]:
        """Turn SDK and transport errors into ObjectStoreErrors naming the object, store and endpoint."""
        what = f"{action} {key} in {self.url}" if key else f"{action} {self.url}"
        where = f"S3 endpoint {self.config.endpoint_url}"
        try:
            yield
        except S3Error as exc:
            if exc.code in _MISSING_CODES and key is not None:
                raise ObjectNotFoundError(f"no object {key} in {self.url}") from exc
            hint = " (check ARGUS_S3_ACCESS_KEY and ARGUS_S3_SECRET_KEY)" if exc.code in _AUTH_CODES else ""
            raise ObjectStoreError(
                f"cannot {what}: {where} answered {exc.code}: {exc.message}{hint}"
            ) from exc
        except MinioException as exc:  # non-XML error responses, e.g. a proxy's 502 page
            raise ObjectStoreError(f"cannot {what}: {where} failed: {exc}") from exc
        except urllib3.exceptions.HTTPError as exc:  # connection refused / reset, timeouts after retries
            reason = getattr(exc, "reason", None) or exc
            raise ObjectStoreError(f"cannot {what}: {where} unreachable: {reason}") from exc

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (another process creating it at the same time is fine)."""
        with self._errors("create bucket of"):
            if self._client.bucket_exists(self.bucket):
                return
            try:
                self._client.make_bucket(self.bucket, location=self.config.region)
            except S3Error as exc:
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        """Store ``data`` under ``key``, verified; identical existing content is left untouched."""
        size = self.config.part_size
        sha, length, etag = _part_digests(data[i : i + size] for i in range(0, len(data), size))
        return self._put(key, io.BytesIO(data), StoredObject(key, sha, length, content_type), etag)

    def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        """Stream the local file ``path`` to ``key`` (multipart when large); same content is untouched."""
        source = Path(path)
        try:
            sha, length, etag = _part_digests(_file_parts(source, self.config.part_size))
            with source.open("rb") as fh:
                return self._put(key, fh, StoredObject(key, sha, length, content_type), etag)
        except OSError as exc:
            raise ObjectStoreError(f"cannot read {source} to store as {key} in {self.url}: {exc}") from exc

    def _put(self, key: str, stream: BinaryIO, stored: StoredObject, expected_etag: str) -> StoredObject:
        name = self._name(key)
        existing = self.stat(key)
        if existing is not None and (existing.sha256, existing.size) == (stored.sha256, stored.size):
            return stored
        headers: dict[str, str | list[str] | tuple[str]] = {_SHA256_META: stored.sha256}
        if stored.size <= self.config.part_size:
            # One PUT: the server recomputes the sha256 and refuses the object (BadDigest) on mismatch.
            headers["x-amz-checksum-sha256"] = base64.b64encode(bytes.fromhex(stored.sha256)).decode()
        with self._errors("write", key):
            result = self._client.put_object(
                self.bucket,
                name,
                stream,
                stored.size,
                content_type=stored.content_type,
                metadata=headers,
                part_size=self.config.part_size,
            )
        if (result.etag or "").strip('"') != expected_etag:
            # What the server assembled is not what was sent: never leave it looking valid.
            self.delete(key)
            raise ObjectStoreError(
                f"checksum mismatch after writing {key} to {self.url}: {self.config.endpoint_url} "
                f"reports ETag {result.etag}, expected {expected_etag}; the object was removed"
            )
        return stored

    def get_bytes(self, key: str, *, expected_sha256: str | None = None) -> bytes:
        """Read the whole object; raise ``ObjectStoreError`` if its sha256 differs from the expected one."""
        name = self._name(key)
        with self._errors("read", key):
            response = self._client.get_object(self.bucket, name)
            try:
                data = response.read()
            finally:
                response.close()
                response.release_conn()
        return check_sha256(data, expected_sha256, f"{key} in {self.url}")

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        return self.stat(key) is not None

    def stat(self, key: str) -> StoredObject | None:
        """Size, content type and sha256 (from the object's metadata) of ``key``, or ``None``."""
        name = self._name(key)
        try:
            with self._errors("stat", key):
                info = self._client.stat_object(self.bucket, name)
        except ObjectNotFoundError:
            return None
        sha = (info.metadata or {}).get(f"x-amz-meta-{_SHA256_META}")
        if sha is None:  # written by another tool: hash it once by reading it
            sha = hashlib.sha256(self.get_bytes(key)).hexdigest()
        return StoredObject(
            key, str(sha), int(info.size or 0), info.content_type or "application/octet-stream"
        )

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing object is fine so retries and cleanups can repeat."""
        name = self._name(key)
        with self._errors("delete", key):
            self._client.remove_object(self.bucket, name)

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Sorted keys that start with ``prefix`` (a plain string prefix, not only a directory)."""
        base = f"{self.prefix}/" if self.prefix else ""
        with self._errors("list", prefix or "(all keys)"):
            names = [
                o.object_name
                for o in self._client.list_objects(self.bucket, prefix=base + prefix, recursive=True)
                if o.object_name and not o.is_dir
            ]
        return sorted(name[len(base) :] for name in names)

    def locate(self, key: str) -> str:
        """``s3://bucket/prefix/key``."""
        return f"s3://{self.bucket}/{self._name(key)}"


def open_s3_store(url: str, config: S3Config) -> S3ObjectStore:
    """Open ``s3://bucket/prefix`` at the configured endpoint, creating the bucket if it is missing."""
    bucket, prefix = parse_s3_url(url)
    store = S3ObjectStore(bucket, prefix, config)
    store.ensure_bucket()
    return store
