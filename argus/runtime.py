"""Process environment for Prefect and the ML libraries, applied before they are imported.

Prefect reads its settings and ultralytics its config directory at import time, so the CLI calls
:func:`configure_environment` first and imports flows afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

from argus.settings import Settings
from models.offline import configure_offline_ml


def configure_prefect(prefect_home: Path) -> None:
    """Keep Prefect's state in our data dir and give the ephemeral server time to start cold."""
    prefect_home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(prefect_home))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "false")


def configure_environment(settings: Settings) -> None:
    """Apply all process-level configuration derived from settings (idempotent)."""
    data_dir = settings.resolved_data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    configure_offline_ml(data_dir / "ultralytics")
    configure_prefect(data_dir / "prefect")
