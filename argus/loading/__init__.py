"""Input loader: DICOM files and plain images → studies of model-ready uint8 frames."""

from argus.loading.scan import scan_inputs
from argus.loading.types import (
    Frame,
    ImageSeries,
    InputRejected,
    LoadLimits,
    Rejection,
    ScanResult,
    StudyInput,
    patient_directions,
)

__all__ = [
    "Frame",
    "ImageSeries",
    "InputRejected",
    "LoadLimits",
    "Rejection",
    "ScanResult",
    "StudyInput",
    "patient_directions",
    "scan_inputs",
]
