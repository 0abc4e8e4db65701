"""Who the audit trail names for actions of this process (CLI user or configured service name)."""

from __future__ import annotations

import getpass
import os

from argus.settings import get_settings

__all__ = ["actor"]


def actor() -> str:
    """``ARGUS_ACTOR`` if configured, else ``argus:<os user>``."""
    configured = get_settings().actor
    if configured != "argus":
        return configured
    try:
        return f"argus:{getpass.getuser()}"
    except (KeyError, OSError):  # containers running under an arbitrary uid have no user name
        return f"argus:uid{os.getuid()}"
