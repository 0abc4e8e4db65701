"""patient_directions: which patient side each image edge faces, from ImageOrientationPatient."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from argus.loading import Frame, patient_directions
from argus.loading.types import NO_PIXELS


@pytest.mark.parametrize(
    ("orientation", "expected"),
    [
        ((1, 0, 0, 0, 1, 0), ("right", "anterior")),  # standard axial, viewed from the feet
        ((-1, 0, 0, 0, -1, 0), ("left", "posterior")),  # prone axial
        ((1, 0, 0, 0, 0, -1), ("right", "superior")),  # coronal
        ((0, 1, 0, 0, 0, -1), ("anterior", "superior")),  # sagittal
        ((0, -1, 0, 0, 0, 1), ("posterior", "inferior")),
        ((0, 0, 1, -1, 0, 0), ("inferior", "left")),
        ((0, 0, -1, 1, 0, 0), ("superior", "right")),
    ],
    ids=["axial", "prone-axial", "coronal", "sagittal", "flipped-sagittal", "row-z", "row-minus-z"],
)
def test_edges_from_dominant_axis_and_sign(orientation, expected):
    assert patient_directions(orientation) == expected


def test_slightly_tilted_and_not_unit_length_cosines():
    tilt = math.radians(10)
    assert patient_directions((math.cos(tilt), math.sin(tilt), 0, -math.sin(tilt), math.cos(tilt), 0)) == (
        "right",
        "anterior",
    )
    # Some scanners write cosines that are not quite unit length.
    assert patient_directions((0.5, 0, 0, 0, 0, -0.5)) == ("right", "superior")


@pytest.mark.parametrize(
    "orientation",
    [
        (math.sqrt(0.5), math.sqrt(0.5), 0, -math.sqrt(0.5), math.sqrt(0.5), 0),  # 45 degrees in-plane
        (1, 0, 0, 0, 0.6, -0.8 + 1e-6),  # column just short of the threshold
        (0, 0, 0, 0, 1, 0),  # zero row vector
        (1, 0, 0, 1, 0, 0),  # row and column along the same axis: no plane
        (1, 0, 0, 0, math.nan, 0),
    ],
    ids=["oblique-45", "oblique-column", "zero-row", "same-axis", "nan"],
)
def test_oblique_or_invalid_orientation_gives_none(orientation):
    assert patient_directions(orientation) is None


def test_missing_orientation_gives_none():
    assert patient_directions(None) is None
    assert patient_directions((1, 0, 0)) is None


def frame(pixels: np.ndarray, shape: tuple[int, int]) -> Frame:
    return Frame(
        pixels=pixels,
        shape=shape,
        source_path=Path("x.png"),
        frame_index=0,
        sop_instance_uid=None,
        instance_number=None,
        pixel_spacing_mm=None,
        slice_location_mm=None,
    )


def test_frame_shape_must_match_kept_pixels():
    assert frame(np.zeros((3, 5), dtype=np.uint8), (3, 5)).shape == (3, 5)
    assert frame(NO_PIXELS, (3, 5)).pixels.size == 0
    with pytest.raises(ValueError, match="do not match"):
        frame(np.zeros((5, 3), dtype=np.uint8), (3, 5))


def test_no_pixels_cannot_be_written_through():
    assert NO_PIXELS.shape == (0, 0) and NO_PIXELS.dtype == np.uint8
    assert not NO_PIXELS.flags.writeable
