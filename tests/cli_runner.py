"""Running the `argus` command as a user does: a subprocess with its own data directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_argus(
    args: list[str],
    data_dir: Path,
    timeout: float = 600,
    *,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m argus ARGS`` with ``ARGUS_DATA_DIR=data_dir`` (plus ``env``); output captured as text."""
    full_env = {**os.environ, **(env or {}), "ARGUS_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "argus", *args],
        env=full_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
