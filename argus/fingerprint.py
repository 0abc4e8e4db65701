"""Which code produced a result: the package version plus a hash of every source file that runs."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import argus

PACKAGES = ("argus", "flows", "tasks", "models", "storage")
# Libraries whose upgrade can change pixels, boxes or masks: their versions are part of the fingerprint.
LIBRARIES = (
    "torch",
    "torchvision",
    "ultralytics",
    "monai",
    "numpy",
    "opencv-python-headless",
    "pillow",
    "pydicom",
    "pylibjpeg",
    "pylibjpeg-libjpeg",
    "pylibjpeg-openjpeg",
    "pylibjpeg-rle",
    "pyjpegls",
)


@lru_cache(maxsize=1)
def code_version() -> str:
    """``<version>+<12 hex>``: any change to our sources or to an imaging library's version gives a new value.

    Part of every run's idempotency key, so an upgrade never silently reuses results computed by
    older pre- or post-processing.
    """
    root = Path(argus.__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    for library in LIBRARIES:
        try:
            digest.update(f"{library}=={metadata.version(library)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{library} absent".encode())
    return f"{argus.__version__}+{digest.hexdigest()[:12]}"
