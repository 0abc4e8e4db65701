"""Running the `argus` command as a user does: a subprocess with its own data directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_argus(args: list[str], data_dir: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``python -m argus ARGS`` with ``ARGUS_DATA_DIR=data_dir``; output captured as text."""
    env = {**os.environ, "ARGUS_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "argus", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
