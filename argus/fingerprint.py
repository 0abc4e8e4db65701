"""Which code produced a result: the package version plus a hash of every source file that runs."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import argus

PACKAGES = ("argus", "flows", "tasks", "models", "storage")


@lru_cache(maxsize=1)
def code_version() -> str:
    """``<version>+<12 hex>``: any change to the Python sources gives a new value.

    Part of every run's idempotency key, so an upgrade never silently reuses results computed by
    older pre- or post-processing.
    """
    root = Path(argus.__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return f"{argus.__version__}+{digest.hexdigest()[:12]}"
