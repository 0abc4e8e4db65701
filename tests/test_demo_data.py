from pathlib import Path

import numpy as np

from argus.demo_data import write_demo_inputs
from argus.loading import scan_inputs
from models.preprocess import ct_to_uint8


def test_demo_inputs_are_real_dicom_and_images_and_rewrite_identically(tmp_path: Path) -> None:
    ct_dir, surface_dir = write_demo_inputs(tmp_path)
    first = {p.name: p.read_bytes() for p in sorted(ct_dir.iterdir())}
    write_demo_inputs(tmp_path)
    assert {p.name: p.read_bytes() for p in sorted(ct_dir.iterdir())} == first
    result = scan_inputs([ct_dir, surface_dir])
    assert result.rejected == []
    ct, surfaces = sorted(result.studies, key=lambda s: s.kind)
    assert ct.kind == "dicom" and ct.patient_id == "ARGUS-DEMO-001"
    (series,) = ct.series
    assert series.modality == "CT" and len(series.frames) == 8
    assert series.frames[0].pixel_spacing_mm == (1.484, 1.484)
    locations = [f.slice_location_mm for f in series.frames]
    assert locations == sorted(locations)
    assert surfaces.kind == "image" and len(surfaces.series[0].frames) == 4
    # The stored HU survive the DICOM round trip: air is black and soft tissue mid-gray after windowing.
    pixels = series.frames[0].pixels
    assert pixels[0, 0] == ct_to_uint8(np.array([-1000.0]))[0] == 0
    assert 100 < np.median(pixels[100:150, 100:150]) < 170
