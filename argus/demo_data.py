"""Demo inputs written to disk like real ones: a synthetic CT series as DICOM files, and surface photos.

The CT volume can also be written as one Enhanced CT (multi-frame) file, the form modern scanners use."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import cv2
import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, EnhancedCTImageStorage, ExplicitVRLittleEndian

from models.synthetic import CTVolume, ct_volume, surface_image


def _uid(*parts: object) -> UID:
    # 2.25.<128-bit integer> needs no registered root; derived from a hash so reruns write identical files.
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()
    return UID(f"2.25.{int(digest[:32], 16)}")


def _ct_dataset(
    path: Path, volume: CTVolume, *, seed: int, patient_id: str, sop_class: UID, instance: object
) -> FileDataset:
    """Header shared by every CT file of the demo study: patient, study, series, pixel format."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = _uid("instance", seed, instance)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.FrameOfReferenceUID = _uid("study", seed), _uid("frame", seed)
    # One series per storage form, so both forms of the same volume can sit in one study.
    ds.SeriesInstanceUID = (
        _uid("series", seed) if sop_class == CTImageStorage else _uid("series", seed, sop_class)
    )
    date = dt.date(2026, 1, 1).strftime("%Y%m%d")
    ds.PatientName, ds.PatientID = "DEMO^SYNTHETIC", patient_id
    ds.PatientBirthDate, ds.PatientSex = "19700101", "O"
    ds.AccessionNumber, ds.StudyID = f"ACC{seed:06d}", "1"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.Modality, ds.Manufacturer = "CT", "Argus synthetic"
    ds.StudyDescription, ds.SeriesDescription = "Synthetic abdomen CT", "Axial soft tissue (synthetic)"
    ds.SeriesNumber = 1 if sop_class == CTImageStorage else 2
    _, rows, cols = volume.hounsfield.shape
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    return ds


def _position(volume: CTVolume, z: int) -> list[float]:
    """ImagePositionPatient of slice ``z``: the volume centred in x and y, slices stacked along +z."""
    _, rows, cols = volume.hounsfield.shape
    return [
        -cols * volume.pixel_spacing_mm / 2,
        -rows * volume.pixel_spacing_mm / 2,
        z * volume.slice_thickness_mm,
    ]


def _stored_values(hounsfield: np.ndarray) -> bytes:
    return (np.rint(hounsfield) + 1024).astype(np.int16).tobytes()  # RescaleIntercept -1024


def write_ct_series(
    volume: CTVolume, out_dir: Path, *, seed: int, patient_id: str = "ARGUS-DEMO-001"
) -> list[Path]:
    """Write a CT volume as one DICOM series, a file per slice (int16 values, RescaleIntercept -1024)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for z in range(volume.hounsfield.shape[0]):
        path = out_dir / f"slice-{z + 1:03d}.dcm"
        ds = _ct_dataset(path, volume, seed=seed, patient_id=patient_id, sop_class=CTImageStorage, instance=z)
        ds.InstanceNumber = z + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = _position(volume, z)
        ds.SliceLocation = z * volume.slice_thickness_mm
        ds.SliceThickness = volume.slice_thickness_mm
        ds.PixelSpacing = [volume.pixel_spacing_mm, volume.pixel_spacing_mm]
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.PixelData = _stored_values(volume.hounsfield[z])
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_ct_multiframe(
    volume: CTVolume, path: Path, *, seed: int, patient_id: str = "ARGUS-DEMO-001"
) -> Path:
    """Write a CT volume as one Enhanced CT file: every slice a frame, geometry in functional groups."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = _ct_dataset(
        path, volume, seed=seed, patient_id=patient_id, sop_class=EnhancedCTImageStorage, instance="mf"
    )
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.NumberOfFrames = volume.hounsfield.shape[0]
    ds.SharedFunctionalGroupsSequence = [
        _item(
            PlaneOrientationSequence=[_item(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])],
            PixelMeasuresSequence=[
                _item(
                    PixelSpacing=[volume.pixel_spacing_mm, volume.pixel_spacing_mm],
                    SliceThickness=volume.slice_thickness_mm,
                )
            ],
            PixelValueTransformationSequence=[
                _item(RescaleIntercept=-1024, RescaleSlope=1, RescaleType="HU")
            ],
            FrameVOILUTSequence=[_item(WindowCenter=40, WindowWidth=400)],
        )
    ]
    ds.PerFrameFunctionalGroupsSequence = [
        _item(PlanePositionSequence=[_item(ImagePositionPatient=_position(volume, z))])
        for z in range(volume.hounsfield.shape[0])
    ]
    ds.PixelData = b"".join(_stored_values(plane) for plane in volume.hounsfield)
    ds.save_as(path, enforce_file_format=True)
    return path


def _item(**values: object) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def demo_ct_volume(seed: int, n_slices: int = 8) -> CTVolume:
    """The first seeded CT volume from ``seed`` on that shows at least two distinct lesions.

    Distinct: each spans several slices and no two lesions' sections come within a few pixels of
    each other, so the number of lesions a reader would count is unambiguous (the generator may
    otherwise place two lesions into one blob).
    """
    while True:
        volume = ct_volume(np.random.default_rng(seed), n_slices=n_slices)
        if _distinct_lesions(volume.lesion_sections()) >= 2:
            return volume
        seed += 1


def _distinct_lesions(sections: dict[int, dict[int, tuple[int, int, int, int]]], margin: int = 4) -> int:
    """How many lesions there are when they are all distinct (see demo_ct_volume), else 0."""
    if any(len(by_slice) < 2 for by_slice in sections.values()):
        return 0
    labels = sorted(sections)
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            for z in sections[a].keys() & sections[b].keys():
                (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = sections[a][z], sections[b][z]
                if ax1 < bx2 + margin and bx1 < ax2 + margin and ay1 < by2 + margin and by1 < ay2 + margin:
                    return 0
    return len(labels)


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
