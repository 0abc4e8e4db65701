"""What each analysis domain detects and which shipped weights serve it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DomainName = Literal["medical", "industrial"]


@dataclass(frozen=True)
class DomainSpec:
    """Class names and shipped weight files of one domain."""

    name: DomainName
    class_names: tuple[str, ...]
    detector_file: str
    image_size: int  # side of the square images the detector was trained at

    def segmenter_file(self, arch: str = "unet") -> str:
        """File name of the shipped segmenter of an architecture (``unet``, ``deeplabv3plus``)."""
        return f"{self.name}_{arch}.pt"


DOMAINS: dict[str, DomainSpec] = {
    "medical": DomainSpec(
        name="medical",
        class_names=("lesion",),
        detector_file="medical_detector.pt",
        image_size=256,
    ),
    "industrial": DomainSpec(
        name="industrial",
        class_names=("scratch", "dent", "crack"),
        detector_file="industrial_detector.pt",
        image_size=256,
    ),
}


def domain_spec(name: str) -> DomainSpec:
    """The spec of a domain, with a clear error for an unknown name."""
    try:
        return DOMAINS[name]
    except KeyError:
        raise ValueError(f"unknown domain {name!r}; expected one of {sorted(DOMAINS)}") from None
