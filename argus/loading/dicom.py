"""Read one DICOM file into model-ready frames plus the header values used to group files into studies."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, get_decoder, iter_pixels
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from argus.loading.types import DEFAULT_LIMITS, NO_PIXELS, Frame, InputRejected, LoadLimits, Orientation
from models.preprocess import ct_to_uint8, normalize_to_uint8, to_gray

# SOP classes that never carry an image to analyse, even when they happen to hold pixel-like data
# (a SEG label map, a registration grid). Families with many members are matched by prefix below.
_NON_IMAGE_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.1.3.10",  # Media Storage Directory Storage (DICOMDIR on hospital CDs)
        "1.2.840.10008.5.1.1.27",  # Stored Print Storage
        "1.2.840.10008.5.1.4.1.1.4.2",  # MR Spectroscopy Storage
        "1.2.840.10008.5.1.4.1.1.8",  # Standalone Overlay Storage
        "1.2.840.10008.5.1.4.1.1.9",  # Standalone Curve Storage
        "1.2.840.10008.5.1.4.1.1.10",  # Standalone Modality LUT Storage
        "1.2.840.10008.5.1.4.1.1.11",  # Standalone VOI LUT Storage
        "1.2.840.10008.5.1.4.1.1.66",  # Raw Data Storage
        "1.2.840.10008.5.1.4.1.1.66.1",  # Spatial Registration Storage
        "1.2.840.10008.5.1.4.1.1.66.2",  # Spatial Fiducials Storage
        "1.2.840.10008.5.1.4.1.1.66.3",  # Deformable Spatial Registration Storage
        "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation Storage (a label map, not an acquisition)
        "1.2.840.10008.5.1.4.1.1.66.5",  # Surface Segmentation Storage
        "1.2.840.10008.5.1.4.1.1.66.6",  # Tractography Results Storage
        "1.2.840.10008.5.1.4.1.1.67",  # Real World Value Mapping Storage
        "1.2.840.10008.5.1.4.1.1.68.1",  # Surface Scan Mesh Storage
        "1.2.840.10008.5.1.4.1.1.68.2",  # Surface Scan Point Cloud Storage
        "1.2.840.10008.5.1.4.1.1.77.1.5.3",  # Stereometric Relationship Storage
        "1.2.840.10008.5.1.4.1.1.79.1",  # Macular Grid Thickness and Volume Report Storage
        "1.2.840.10008.5.1.4.1.1.80.1",  # Ophthalmic Visual Field Static Perimetry Measurements
        "1.2.840.10008.5.1.4.1.1.90.1",  # Content Assessment Results Storage
        "1.2.840.10008.5.1.4.1.1.91.1",  # Microscopy Bulk Simple Annotations Storage
        "1.2.840.10008.5.1.4.1.1.129",  # Standalone PET Curve Storage
        "1.2.840.10008.5.1.4.1.1.131",  # Basic Structured Display Storage
        "1.2.840.10008.5.1.4.1.1.201.1",  # Inventory Storage
        "1.2.840.10008.5.1.4.1.1.481.3",  # RT Structure Set Storage
        "1.2.840.10008.5.1.4.1.1.481.4",  # RT Beams Treatment Record Storage
        "1.2.840.10008.5.1.4.1.1.481.5",  # RT Plan Storage
        "1.2.840.10008.5.1.4.1.1.481.6",  # RT Brachy Treatment Record Storage
        "1.2.840.10008.5.1.4.1.1.481.7",  # RT Treatment Summary Record Storage
        "1.2.840.10008.5.1.4.1.1.481.8",  # RT Ion Plan Storage
        "1.2.840.10008.5.1.4.1.1.481.9",  # RT Ion Beams Treatment Record Storage
        "1.2.840.10008.5.1.4.1.1.481.10",  # RT Physician Intent Storage
        "1.2.840.10008.5.1.4.1.1.481.11",  # RT Segment Annotation Storage
        "1.2.840.10008.5.1.4.1.1.481.12",  # RT Radiation Set Storage
        "1.2.840.10008.5.1.4.1.1.481.13",  # C-Arm Photon-Electron Radiation Storage
        "1.2.840.10008.5.1.4.1.1.481.14",  # Tomotherapeutic Radiation Storage
        "1.2.840.10008.5.1.4.1.1.481.15",  # Robotic-Arm Radiation Storage
        "1.2.840.10008.5.1.4.1.1.481.16",  # RT Radiation Record Set Storage
        "1.2.840.10008.5.1.4.1.1.481.17",  # RT Radiation Salvage Record Storage
        "1.2.840.10008.5.1.4.1.1.481.18",  # Tomotherapeutic Radiation Record Storage
        "1.2.840.10008.5.1.4.1.1.481.19",  # C-Arm Photon-Electron Radiation Record Storage
        "1.2.840.10008.5.1.4.1.1.481.20",  # Robotic Radiation Record Storage
        "1.2.840.10008.5.1.4.1.1.481.21",  # RT Radiation Set Delivery Instruction Storage
        "1.2.840.10008.5.1.4.1.1.481.22",  # RT Treatment Preparation Storage
        "1.2.840.10008.5.1.4.1.1.481.25",  # RT Patient Position Acquisition Instruction Storage
        "1.2.840.10008.5.1.4.1.1.501.3",  # DICOS Threat Detection Report Storage
        "1.2.840.10008.5.1.4.34.7",  # RT Beams Delivery Instruction Storage
        "1.2.840.10008.5.1.4.34.10",  # RT Brachy Application Setup Delivery Instruction Storage
        "1.2.840.10008.5.1.4.38.1",  # Hanging Protocol Storage
        "1.2.840.10008.5.1.4.39.1",  # Color Palette Storage
        "1.2.840.10008.5.1.4.43.1",  # Generic Implant Template Storage
        "1.2.840.10008.5.1.4.44.1",  # Implant Assembly Template Storage
        "1.2.840.10008.5.1.4.45.1",  # Implant Template Group Storage
        "1.3.12.2.1107.5.9.1",  # Siemens CSA Non-Image Storage (private, common in Siemens exports)
    }
)
_NON_IMAGE_SOP_CLASS_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.9.",  # waveforms (ECG, audio, hemodynamic, ...)
    "1.2.840.10008.5.1.4.1.1.11.",  # presentation states
    "1.2.840.10008.5.1.4.1.1.78.",  # ophthalmic measurements
    "1.2.840.10008.5.1.4.1.1.88.",  # structured reports, key object selection, dose reports
    "1.2.840.10008.5.1.4.1.1.104.",  # encapsulated PDF / CDA / STL / OBJ / MTL
    "1.2.840.10008.5.1.4.1.1.200.",  # procedure protocols
)
# pydicom's UID dictionary only knows standard UIDs; name the private ones we refuse.
_PRIVATE_SOP_CLASS_NAMES = {"1.3.12.2.1107.5.9.1": "Siemens CSA Non-Image Storage"}
_CT_SOP_CLASSES = frozenset(
    {"1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2"}
)
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# Groups a dataset without preamble can plausibly start with: command, file meta, directory,
# identifying, ... up to the image pixel module. Text and most other formats fail this cheaply.
_MAX_FIRST_GROUP = 0x0028


@dataclass(frozen=True)
class DicomInstance:
    """One DICOM file: its frames and the header values used to group it with others."""

    path: Path
    frames: tuple[Frame, ...]
    sop_instance_uid: str | None
    study_uid: str | None
    series_uid: str | None
    modality: str | None
    patient_id: str | None
    accession_number: str | None
    study_description: str | None
    series_description: str | None
    image_type: tuple[str, ...] = ()  # ImageType values, upper case (ORIGINAL, PRIMARY, LOCALIZER, ...)


def read_dicom(path: Path, limits: LoadLimits = DEFAULT_LIMITS, *, keep_pixels: bool = True) -> DicomInstance:
    """Read a DICOM file into model-ready uint8 frames; raise InputRejected when it is unusable.

    With ``keep_pixels=False`` every frame is still decoded and converted (so damaged pixel data is
    refused just the same), but each frame's pixels are dropped as soon as they have been checked:
    the frames carry only their shape (``Frame.pixels`` is the empty NO_PIXELS array).

    An InputRejected raised once the header has been parsed carries the file's Study and Series
    Instance UIDs when the header holds them.
    """
    ds = _read_dataset(path)
    try:
        return _read_instance(path, ds, limits, keep_pixels)
    except InputRejected as exc:
        if exc.study_uid is None and exc.series_uid is None:
            exc.study_uid = _text(ds, "StudyInstanceUID")
            exc.series_uid = _text(ds, "SeriesInstanceUID")
        raise


def _read_instance(path: Path, ds: Dataset, limits: LoadLimits, keep_pixels: bool) -> DicomInstance:
    _refuse_non_image(path, ds)
    rows, columns = _int(ds, "Rows"), _int(ds, "Columns")
    if rows is None or columns is None:
        raise InputRejected(path, "the image size is missing (no Rows / Columns in the DICOM header)")
    # Checked before decoding so a huge or degenerate image never gets allocated.
    if problem := limits.size_problem(rows, columns):
        raise InputRejected(path, problem)
    _ensure_decodable(path, ds)
    sop_instance_uid = _text(ds, "SOPInstanceUID")
    frames = tuple(_decode_frames(path, ds, sop_instance_uid, keep_pixels))
    if not frames:  # Number of Frames 0: nothing to analyse, and grouping needs a first frame
        raise InputRejected(path, "no pixel data: the file contains no frames")
    return DicomInstance(
        path=path,
        frames=frames,
        sop_instance_uid=sop_instance_uid,
        study_uid=_text(ds, "StudyInstanceUID"),
        series_uid=_text(ds, "SeriesInstanceUID"),
        modality=_text(ds, "Modality"),
        patient_id=_text(ds, "PatientID"),
        accession_number=_text(ds, "AccessionNumber"),
        study_description=_text(ds, "StudyDescription"),
        series_description=_text(ds, "SeriesDescription"),
        image_type=_image_type(ds),
    )


def _image_type(ds: Dataset) -> tuple[str, ...]:
    value = ds.get("ImageType")
    if value is None:
        return ()
    values = [value] if isinstance(value, str) else list(value)
    return tuple(str(v).strip().upper() for v in values if str(v).strip())


def _read_dataset(path: Path) -> Dataset:
    try:
        with path.open("rb") as handle:
            head = handle.read(132)
    except OSError as exc:
        raise InputRejected(path, f"the file cannot be read: {exc.strerror or exc}") from exc
    has_preamble = head[128:132] == b"DICM"
    # force=True parses anything, so only hand it files whose first bytes look like a DICOM element.
    if not has_preamble and not _starts_like_dataset(head):
        raise InputRejected(path, "not a DICOM file")
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as exc:  # pydicom raises many exception types for damaged input
        if has_preamble:
            raise InputRejected(path, f"damaged DICOM file that cannot be read: {_one_line(exc)}") from exc
        raise InputRejected(path, "not a DICOM file") from exc
    if not has_preamble and not _looks_like_image_dataset(ds):
        raise InputRejected(path, "not a DICOM file")
    return ds


def _starts_like_dataset(head: bytes) -> bool:
    if len(head) < 8:
        return False
    groups = (int.from_bytes(head[:2], "little"), int.from_bytes(head[:2], "big"))
    return any(group % 2 == 0 and group <= _MAX_FIRST_GROUP for group in groups)


def _looks_like_image_dataset(ds: Dataset) -> bool:
    has_pixels = any(keyword in ds for keyword in _PIXEL_KEYWORDS)
    return "SOPClassUID" in ds or ("Rows" in ds and "Columns" in ds and has_pixels)


def _refuse_non_image(path: Path, ds: Dataset) -> None:
    sop_class = _sop_class(ds)
    if sop_class is not None and _is_non_image(sop_class):
        raise InputRejected(path, f"{_sop_class_label(sop_class)} is not an image")
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        what = f": this {_sop_class_label(sop_class)} file holds no image" if sop_class else ""
        raise InputRejected(path, f"no pixel data{what}")


def _sop_class(ds: Dataset) -> str | None:
    # DICOMDIR files carry their SOP class only in the file meta header.
    value = _text(ds, "SOPClassUID")
    if value is None and getattr(ds, "file_meta", None) is not None:
        value = _text(ds.file_meta, "MediaStorageSOPClassUID")
    return value


def _is_non_image(sop_class: str) -> bool:
    return sop_class in _NON_IMAGE_SOP_CLASSES or sop_class.startswith(_NON_IMAGE_SOP_CLASS_PREFIXES)


def _sop_class_label(sop_class: str) -> str:
    name = _PRIVATE_SOP_CLASS_NAMES.get(sop_class) or UID(sop_class).name
    return f"SOP class {sop_class}" if name == sop_class else f"{name} ({sop_class})"


def _ensure_decodable(path: Path, ds: Dataset) -> None:
    """Make sure the dataset has a transfer syntax pydicom can decode, inferring it for raw datasets."""
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = ds.file_meta = FileMetaDataset()
    if not meta.get("TransferSyntaxUID"):
        meta.TransferSyntaxUID = _infer_transfer_syntax(path, ds)
    syntax = UID(meta.TransferSyntaxUID)
    label = syntax.name if syntax.name == str(syntax) else f"{syntax.name} ({syntax})"
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as exc:
        raise InputRejected(
            path, f"the transfer syntax {label} is not supported: no decoder exists for it"
        ) from exc
    if not decoder.is_available:
        raise InputRejected(path, f"no decoder is installed for the transfer syntax {label}")


def _infer_transfer_syntax(path: Path, ds: Dataset) -> UID:
    # Without file meta the encoding is what pydicom detected while parsing; compressed pixel data
    # (undefined length) cannot be identified that way.
    if "PixelData" in ds and ds["PixelData"].is_undefined_length:
        raise InputRejected(
            path, "the pixel data is compressed but the file does not say how (no transfer syntax)"
        )
    implicit_vr, little_endian = ds.original_encoding
    if implicit_vr and little_endian:
        return ImplicitVRLittleEndian
    if implicit_vr is False and little_endian:
        return ExplicitVRLittleEndian
    if implicit_vr is False and little_endian is False:
        return ExplicitVRBigEndian
    raise InputRejected(path, "the file encoding (transfer syntax) cannot be determined")


def _decode_frames(
    path: Path, ds: Dataset, sop_instance_uid: str | None, keep_pixels: bool = True
) -> Iterator[Frame]:
    photometric = (_text(ds, "PhotometricInterpretation") or "MONOCHROME2").upper()
    is_ct = _is_ct(ds)
    frame_count = _int(ds, "NumberOfFrames") or 1
    instance_number = _int(ds, "InstanceNumber")
    try:
        # Frame by frame: a long cine or enhanced series never sits in memory at full bit depth.
        for index, raw in enumerate(iter_pixels(ds)):
            spacing, location, orientation = _geometry(ds, index, frame_count)
            pixels = _to_model_uint8(raw, ds, index, photometric, is_ct)
            rows, columns = pixels.shape
            if not keep_pixels:
                # Decoded and converted only to check them: let go before the next frame is decoded.
                del raw
                pixels = NO_PIXELS
            yield Frame(
                pixels=pixels,
                shape=(rows, columns),
                source_path=path,
                frame_index=index,
                sop_instance_uid=sop_instance_uid,
                instance_number=instance_number,
                pixel_spacing_mm=spacing,
                slice_location_mm=location,
                orientation=orientation,
            )
    except InputRejected:
        raise
    except Exception as exc:  # decoders raise ValueError, RuntimeError, ... with useful messages
        raise InputRejected(path, f"pixel data cannot be decoded: {_one_line(exc)}") from exc


def _is_ct(ds: Dataset) -> bool:
    modality = _text(ds, "Modality")
    if modality is not None:
        return modality.upper() == "CT"
    # Modality is mandatory, but some exporters drop it; the SOP class still says CT.
    return _sop_class(ds) in _CT_SOP_CLASSES


def _to_model_uint8(raw: np.ndarray, ds: Dataset, index: int, photometric: str, is_ct: bool) -> np.ndarray:
    if photometric == "PALETTE COLOR":
        raw = apply_color_lut(raw, ds)
    if raw.ndim == 3:
        # Colour (pydicom already turned YBR into RGB). These values are display colours, not
        # Hounsfield units, so even a CT screenshot is normalised rather than windowed.
        return normalize_to_uint8(to_gray(raw))
    values = _apply_modality_lut(raw, ds, index)
    if is_ct:
        # Hounsfield units are physical values and the fixed window already defines the display
        # (air black, as in training), whatever the stored photometric interpretation.
        return ct_to_uint8(values)
    pixels = normalize_to_uint8(values)
    if photometric == "MONOCHROME1":
        # MONOCHROME1 shows low values white; the models expect MONOCHROME2 (low = black).
        pixels = 255 - pixels
    return pixels


def _apply_modality_lut(raw: np.ndarray, ds: Dataset, index: int) -> np.ndarray:
    if "ModalityLUTSequence" in ds or ("RescaleSlope" in ds and "RescaleIntercept" in ds):
        return apply_modality_lut(raw, ds)
    # Enhanced multi-frame objects keep the rescale in the functional groups instead.
    transform = _functional_group_item(ds, index, "PixelValueTransformationSequence")
    if transform is not None and "RescaleSlope" in transform and "RescaleIntercept" in transform:
        return apply_modality_lut(raw, transform)
    return raw


def _geometry(
    ds: Dataset, index: int, frame_count: int
) -> tuple[tuple[float, float] | None, float | None, Orientation | None]:
    """Pixel spacing, position along the slice normal and direction cosines of frame `index`."""
    measures = _functional_group_item(ds, index, "PixelMeasuresSequence")
    spacing = _spacing(measures) if measures is not None else None
    spacing = spacing or _spacing(ds) or _spacing(ds, "ImagerPixelSpacing")

    position = _functional_group_item(ds, index, "PlanePositionSequence")
    orientation_ds = _functional_group_item(ds, index, "PlaneOrientationSequence")
    location: float | None = None
    if position is not None and orientation_ds is not None:
        location = _position_along_normal(position, orientation_ds)
    elif frame_count == 1:
        # Top-level geometry describes a single slice; for classic multi-frame files (cine, NM) it
        # would give every frame the same location, which is worse than none.
        location = _position_along_normal(ds, ds)
        if location is None:
            location = _float(ds, "SliceLocation")
    # Unlike the position, a top-level orientation holds for every frame of a classic multi-frame file.
    orientation = _orientation(orientation_ds) if orientation_ds is not None else None
    orientation = orientation or _orientation(ds)
    return spacing, location, orientation


def _orientation(ds: Dataset) -> Orientation | None:
    values = _floats(ds, "ImageOrientationPatient", 6)
    if values is None:
        return None
    return (values[0], values[1], values[2], values[3], values[4], values[5])


def _functional_group_item(ds: Dataset, index: int, keyword: str) -> Dataset | None:
    """First item of `keyword` in the per-frame functional group of frame `index`, else the shared one."""
    for container, item_index in (
        ("PerFrameFunctionalGroupsSequence", index),
        ("SharedFunctionalGroupsSequence", 0),
    ):
        try:
            groups = ds.get(container)
            if groups and len(groups) > item_index:
                inner = groups[item_index].get(keyword)
                if inner:
                    return inner[0]
        except Exception:  # malformed sequences: geometry is optional, the pixels are not
            continue
    return None


def _position_along_normal(position_ds: Dataset, orientation_ds: Dataset) -> float | None:
    position = _floats(position_ds, "ImagePositionPatient", 3)
    orientation = _floats(orientation_ds, "ImageOrientationPatient", 6)
    if position is None or orientation is None:
        return None
    normal = np.cross(orientation[:3], orientation[3:])
    length = float(np.linalg.norm(normal))
    if length == 0.0:
        return None
    # Normalised because some scanners write direction cosines that are not quite unit length.
    return float(np.dot(position, normal / length))


def _spacing(ds: Dataset, keyword: str = "PixelSpacing") -> tuple[float, float] | None:
    values = _floats(ds, keyword, 2)
    if values is None or min(values) <= 0:
        return None
    return (values[0], values[1])


def _floats(ds: Dataset, keyword: str, count: int) -> tuple[float, ...] | None:
    try:
        value: Any = ds.get(keyword)
        if value is None:
            return None
        items = value if isinstance(value, Iterable) and not isinstance(value, str | bytes) else [value]
        numbers = tuple(float(v) for v in items)
    except Exception:  # invalid DS strings: treat as absent
        return None
    if len(numbers) != count or not all(np.isfinite(numbers)):
        return None
    return numbers


def _float(ds: Dataset, keyword: str) -> float | None:
    values = _floats(ds, keyword, 1)
    return values[0] if values else None


def _int(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return None if value is None or value == "" else int(value)
    except Exception:  # invalid IS/US values: treat as absent
        return None


def _text(ds: Dataset, keyword: str) -> str | None:
    try:
        value = ds.get(keyword)
    except Exception:  # undecodable value (bad charset, bad VR): treat as absent
        return None
    if value is None:
        return None
    text = str(value).strip(" \x00")
    return text or None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
