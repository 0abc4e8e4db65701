"""Choosing the torch device: CUDA when present, else CPU."""

from __future__ import annotations

import torch


def resolve_device(preference: str = "auto") -> str:
    """``auto`` → ``cuda`` if available else ``cpu``; an explicit ``cuda`` without a GPU is an error."""
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {preference!r}")
    if preference == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if preference == "cuda":
        raise RuntimeError("ARGUS_DEVICE=cuda but no CUDA device is available")
    return "cpu"
