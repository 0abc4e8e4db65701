"""Linking per-slice detections into lesions, and their depth and volume, on constructed cases."""

from __future__ import annotations

import pytest

from models.volumes import (
    SliceDetection,
    SliceGeometry,
    link_detections,
    measure_volume,
    order_slices,
    same_lesion,
)


def _det(slice_: int, box: tuple[float, float, float, float], label: str = "lesion", score: float = 0.8):
    return SliceDetection(slice=slice_, label=label, score=score, box=box)


def _spans(lesions) -> list[tuple[int, int]]:
    return [(lesion.first, lesion.last) for lesion in lesions]


def test_a_lesion_on_consecutive_slices_is_one_lesion_with_a_3d_box() -> None:
    # A round lesion: small at its poles, largest in the middle, all centred on (50, 50).
    lesion_boxes = [(45, 45, 55, 55), (40, 40, 60, 60), (35, 35, 65, 65), (40, 41, 60, 61), (47, 47, 53, 53)]
    (lesion,) = link_detections([_det(z + 2, b, score=0.5 + z / 10) for z, b in enumerate(lesion_boxes)])
    assert (lesion.first, lesion.last) == (2, 6)
    assert lesion.box == (35, 35, 65, 65)
    assert lesion.score == pytest.approx(0.9)
    assert [s.detection is not None for s in lesion.slices()] == [True] * 5


def test_pole_sections_link_although_their_iou_with_the_equator_is_small() -> None:
    equator, pole = (30, 30, 60, 60), (42, 42, 48, 48)  # IoU 36/900 = 0.04
    assert same_lesion(equator, pole) and same_lesion(pole, equator)
    assert len(link_detections([_det(0, equator), _det(1, pole)])) == 1


def test_two_lesions_side_by_side_stay_two() -> None:
    left = [(10, 10, 30, 30), (8, 8, 32, 32), (10, 10, 30, 30)]
    right = [(31, 10, 51, 30), (33, 8, 57, 32), (31, 10, 51, 30)]  # touching the left one
    detections = [_det(z, b) for z, b in enumerate(left)] + [_det(z, b) for z, b in enumerate(right)]
    lesions = link_detections(detections)
    assert _spans(lesions) == [(0, 2), (0, 2)]
    assert [lesion.box[0] for lesion in lesions] == [8, 31]
    assert all(len(lesion.detections) == 3 for lesion in lesions)


def test_one_missed_slice_is_bridged_and_segmented_with_an_interpolated_box() -> None:
    (lesion,) = link_detections([_det(3, (10, 10, 30, 30)), _det(5, (12, 12, 36, 36))])
    slices = lesion.slices()
    assert [s.slice for s in slices] == [3, 4, 5]
    assert slices[1].detection is None and slices[1].box == (11, 11, 33, 33)


def test_two_missed_slices_split_the_lesion() -> None:
    lesions = link_detections([_det(3, (10, 10, 30, 30)), _det(6, (10, 10, 30, 30))])
    assert _spans(lesions) == [(3, 3), (6, 6)]


def test_different_labels_are_never_merged() -> None:
    box = (10, 10, 30, 30)
    lesions = link_detections([_det(0, box, "lesion"), _det(1, box, "cyst"), _det(2, box, "lesion")])
    assert sorted((lesion.label, lesion.first, lesion.last) for lesion in lesions) == [
        ("cyst", 1, 1),
        ("lesion", 0, 2),
    ]


def test_two_detections_near_one_lesion_on_a_slice_start_a_second_lesion() -> None:
    # One detection per lesion and slice: the closer one continues the lesion.
    lesions = link_detections(
        [_det(0, (10, 10, 30, 30)), _det(1, (11, 11, 31, 31)), _det(1, (18, 10, 38, 30))]
    )
    assert _spans(lesions) == [(0, 1), (1, 1)]
    assert lesions[0].detections[1].box == (11, 11, 31, 31)


def test_uneven_spacing_gives_each_slice_half_the_gap_on_each_side() -> None:
    # Stored out of order (as frames of a multi-frame file may be); 10 -> 20 skips a missing slice.
    order, geometry = order_slices([5.0, 0.0, 2.5, 20.0, 10.0])
    assert order == [1, 2, 0, 4, 3]
    assert geometry == SliceGeometry((2.5, 2.5, 3.75, 7.5, 10.0))
    measured = measure_volume(1, [100.0, 200.0, 50.0], 3, geometry)  # slices at 2.5, 5 and 10 mm
    assert measured.depth_mm == 2.5 + 3.75 + 7.5
    assert measured.volume_mm3 == 100 * 2.5 + 200 * 3.75 + 50 * 7.5


@pytest.mark.parametrize(
    ("positions", "why"),
    [
        ([0.0, None, 10.0], "slice positions missing"),
        ([0.0, 5.0, 5.0], "two slices share a position"),
        ([3.0], "a single slice"),
    ],
)
def test_without_usable_positions_depth_is_a_slice_count(positions, why) -> None:
    order, geometry = order_slices(positions)
    assert order == list(range(len(positions)))  # the stored order is kept
    assert geometry.slabs_mm is None and geometry.note is not None and why in geometry.note
    measured = measure_volume(0, [10.0], 1, geometry)
    assert (measured.slice_count, measured.depth_mm, measured.volume_mm3) == (1, None, None)


def test_depth_without_pixel_spacing_has_no_volume() -> None:
    _, geometry = order_slices([0.0, 5.0, 10.0])
    measured = measure_volume(0, None, 2, geometry)
    assert (measured.depth_mm, measured.volume_mm3) == (10.0, None)


def test_areas_must_match_the_slices_spanned() -> None:
    _, geometry = order_slices([0.0, 5.0, 10.0])
    with pytest.raises(ValueError, match="2 mask areas for 3 slices"):
        measure_volume(0, [1.0, 2.0], 3, geometry)
    with pytest.raises(ValueError, match="outside a series of 3"):
        measure_volume(2, [1.0, 2.0], 2, geometry)
