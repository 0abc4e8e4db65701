"""Demo inputs written to disk like real ones: a synthetic CT series as DICOM files, and surface photos."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import cv2
import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian

from models.synthetic import CTVolume, ct_volume, surface_image


def _uid(*parts: object) -> UID:
    # 2.25.<128-bit integer> needs no registered root; derived from a hash so reruns write identical files.
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()
    return UID(f"2.25.{int(digest[:32], 16)}")


def write_ct_series(
    volume: CTVolume, out_dir: Path, *, seed: int, patient_id: str = "ARGUS-DEMO-001"
) -> list[Path]:
    """Write a CT volume as one DICOM series (int16 stored values, RescaleIntercept -1024)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid = _uid("study", seed), _uid("series", seed)
    frame_uid = _uid("frame", seed)
    date = dt.date(2026, 1, 1).strftime("%Y%m%d")
    paths = []
    n_slices, rows, cols = volume.hounsfield.shape
    for z in range(n_slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = _uid("instance", seed, z)
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = out_dir / f"slice-{z + 1:03d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.PatientName, ds.PatientID = "DEMO^SYNTHETIC", patient_id
        ds.PatientBirthDate, ds.PatientSex = "19700101", "O"
        ds.AccessionNumber, ds.StudyID = f"ACC{seed:06d}", "1"
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = date
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
        ds.Modality, ds.Manufacturer = "CT", "Argus synthetic"
        ds.StudyDescription, ds.SeriesDescription = "Synthetic abdomen CT", "Axial soft tissue (synthetic)"
        ds.SeriesNumber, ds.InstanceNumber = 1, z + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [
            -cols * volume.pixel_spacing_mm / 2,
            -rows * volume.pixel_spacing_mm / 2,
            z * volume.slice_thickness_mm,
        ]
        ds.SliceLocation = z * volume.slice_thickness_mm
        ds.SliceThickness = volume.slice_thickness_mm
        ds.PixelSpacing = [volume.pixel_spacing_mm, volume.pixel_spacing_mm]
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.PixelData = (np.rint(volume.hounsfield[z]) + 1024).astype(np.int16).tobytes()
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def demo_ct_volume(seed: int, n_slices: int = 8) -> CTVolume:
    """The first seeded CT volume from ``seed`` on that shows at least two lesions."""
    while True:
        volume = ct_volume(np.random.default_rng(seed), n_slices=n_slices)
        if len(np.unique(volume.lesion_labels)) >= 3:
            return volume
        seed += 1


def write_demo_inputs(root: Path, seed: int = 7) -> tuple[Path, Path]:
    """A CT study folder and a folder of surface images under ``root``; rewritten identically each time."""
    ct_dir, surface_dir = root / "ct-study", root / "surfaces"
    write_ct_series(demo_ct_volume(seed), ct_dir, seed=seed)
    surface_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = 0
    while written < 4:
        sample = surface_image(rng)
        if written < 3 and not sample.masks:
            continue  # the last image may be defect-free: a passing part is part of the demo
        cv2.imwrite(str(surface_dir / f"part-{written + 1:02d}.png"), sample.image)
        written += 1
    return ct_dir, surface_dir
