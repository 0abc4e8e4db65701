"""Keeping ultralytics and the Hugging Face stack off the network.

Applied at the one place each library is imported (``models.detector``, ``models.train``), so any
entry point (CLI, Prefect worker, notebook) gets it, not only the CLI.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from types import ModuleType

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "False",
    "YOLO_VERBOSE": "False",
    "DO_NOT_TRACK": "1",
}

# Every ultralytics integration that could phone home, switched off in its persisted settings.
_ULTRALYTICS_OFF = {
    "sync": False,
    "clearml": False,
    "comet": False,
    "dvc": False,
    "mlflow": False,
    "raytune": False,
    "tensorboard": False,
    "wandb": False,
}


def configure_offline_ml(config_dir: Path | None = None) -> None:
    """Offline flags in the environment, a private ultralytics config dir, and a local plot font.

    Values already in the environment win, so an operator can still point things elsewhere.
    """
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    if config_dir is not None:
        os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))
    base = os.environ.get("YOLO_CONFIG_DIR")
    user_dir = Path(base) if base else Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    # ultralytics fetches Arial.ttf for plots on every train/val; any TTF under that name will do.
    font = user_dir / "Ultralytics" / "Arial.ttf"
    if not font.exists():
        import matplotlib

        source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        font.parent.mkdir(parents=True, exist_ok=True)
        font.write_bytes(source.read_bytes())


@lru_cache(maxsize=1)
def ultralytics_module() -> ModuleType:
    """``ultralytics``, imported offline (flags set first) with sync and integrations off."""
    configure_offline_ml()
    import ultralytics
    from ultralytics.utils import SETTINGS

    if any(SETTINGS.get(k) != v for k, v in _ULTRALYTICS_OFF.items()):
        SETTINGS.update(_ULTRALYTICS_OFF)
    return ultralytics
