"""Helpers shared by the loader tests: writing real DICOM files with pydicom."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"

WriteDicom = Callable[..., Path]


def build_dataset(
    pixels: np.ndarray | None,
    *,
    modality: str = "MR",
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    sop_class: str = MR_IMAGE,
    study_uid: str = "1.2.826.0.1.3680043.2.1125.1",
    series_uid: str = "1.2.826.0.1.3680043.2.1125.1.1",
    sop_instance_uid: str | None = None,
    **attributes: Any,
) -> Dataset:
    """A minimal but valid image dataset (file meta included) around `pixels`."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = modality
    ds.PatientID = "PAT-1"
    ds.AccessionNumber = "ACC-1"
    ds.StudyDescription = "Test study"
    ds.SeriesDescription = f"{modality} series"
    if pixels is not None:
        ds.set_pixel_data(pixels, photometric, bits_stored or pixels.dtype.itemsize * 8)
    ds.SOPInstanceUID = sop_instance_uid or generate_uid()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def write_dicom_file(
    path: Path, pixels: np.ndarray | None, *, compress: str | None = None, **kwargs: Any
) -> Path:
    """Write a DICOM file (preamble + file meta) and return its path."""
    ds = build_dataset(pixels, **kwargs)
    if compress is not None:
        ds.compress(compress, generate_instance_uid=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    dcmwrite(path, ds, enforce_file_format=True)
    return path


@pytest.fixture
def write_dicom() -> WriteDicom:
    """:func:`write_dicom_file` as a fixture, so test modules need not import from conftest."""
    return write_dicom_file


@pytest.fixture
def build_dicom() -> Callable[..., Dataset]:
    """:func:`build_dataset` as a fixture, for tests that write the dataset themselves."""
    return build_dataset
