"""The configured object store, built once per process from the settings.

Kept free of model imports (like ``argus.db``) so that commands such as ``argus purge`` start fast.
"""

from __future__ import annotations

from functools import lru_cache

from argus.settings import get_settings
from storage.object_store import ObjectStore, open_object_store
from storage.s3_store import S3Config


@lru_cache(maxsize=4)
def object_store() -> ObjectStore:
    """The configured object store (filesystem, or S3 with the ``ARGUS_S3_*`` endpoint and keys)."""
    settings = get_settings()
    s3 = None
    if settings.s3_endpoint and settings.s3_access_key and settings.s3_secret_key:
        s3 = S3Config(
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value(),
            secure=settings.s3_secure,
            region=settings.s3_region,
        )
    return open_object_store(settings.resolved_object_store, s3)
