"""Process environment for Prefect and the ML libraries, applied before they are imported.

Prefect reads its settings and ultralytics its config directory at import time, so the CLI calls
:func:`configure_environment` first and imports flows afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

from argus.settings import Settings

# What keeps ultralytics and the Hugging Face hub from ever reaching for the network.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "False",
    "YOLO_VERBOSE": "False",
    "DO_NOT_TRACK": "1",
}


def configure_offline_ml(config_dir: Path) -> None:
    """Point ultralytics at a private config dir, with a local font and every integration off."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))
    ul_dir = Path(os.environ["YOLO_CONFIG_DIR"])
    ul_dir.mkdir(parents=True, exist_ok=True)
    # ultralytics downloads Arial.ttf for plots on every train/val; any TTF under that name will do.
    font = ul_dir / "Ultralytics" / "Arial.ttf"
    if not font.exists():
        import matplotlib

        source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        font.parent.mkdir(parents=True, exist_ok=True)
        font.write_bytes(source.read_bytes())


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
