"""Argus: orchestrated image analysis for hospitals and factories."""

__version__ = "0.1.0"
