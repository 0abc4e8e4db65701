"""Plain result types produced by the model adapters (no arrays of model internals)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Detection:
    """One localized finding in source-image pixels: box is (x1, y1, x2, y2)."""

    label: str
    class_id: int
    score: float
    box: tuple[float, float, float, float]

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return self.box[3] - self.box[1]
