"""Our mAP50 and Dice on cases whose answer is known by hand."""

import numpy as np
import pytest

from models.boxes import box_iou
from models.evaluation import (
    Prediction,
    Truth,
    average_precision,
    detection_ap,
    dice_score,
    found_by_size,
    map50_interval,
    match_class,
    size_band,
)

NAMES = ("scratch", "dent")


def _gt(image: int, box: tuple[float, float, float, float], cls: int = 0) -> Truth:
    return Truth(image, cls, box)


def _pred(image: int, box: tuple[float, float, float, float], score: float, cls: int = 0) -> Prediction:
    return Prediction(image, cls, score, box)


def test_perfect_predictions_score_one_per_class() -> None:
    truths = [_gt(0, (10, 10, 30, 30)), _gt(0, (50, 50, 70, 90), 1), _gt(1, (0, 0, 8, 8))]
    preds = [_pred(t.image, t.box, 0.9 - 0.1 * i, t.class_id) for i, t in enumerate(truths)]
    map50, per_class = detection_ap(preds, truths, NAMES)
    assert map50 == 1.0
    assert per_class["scratch"].ap50 == 1.0 and per_class["dent"].ap50 == 1.0
    assert (per_class["scratch"].images, per_class["scratch"].instances) == (2, 2)
    assert (per_class["dent"].predictions, per_class["dent"].true_positives) == (1, 1)


def test_empty_predictions_score_zero() -> None:
    map50, per_class = detection_ap([], [_gt(0, (10, 10, 30, 30))], NAMES)
    assert map50 == 0.0 and per_class["scratch"].ap50 == 0.0 and per_class["scratch"].predictions == 0


def test_no_truth_and_no_predictions_has_no_ap() -> None:
    map50, per_class = detection_ap([], [], NAMES)
    assert map50 is None
    assert all(c.ap50 is None and c.instances == 0 for c in per_class.values())
    # A class without instances is left out of the mean, but its false positives still show.
    map50, per_class = detection_ap([_pred(0, (1, 1, 5, 5), 0.8, cls=1)], [_gt(0, (10, 10, 30, 30))], NAMES)
    assert map50 == 0.0 and per_class["dent"].ap50 is None and per_class["dent"].predictions == 1
    with pytest.raises(ValueError, match="undefined"):
        average_precision([True], 0)


def test_iou_just_below_and_just_above_one_half() -> None:
    truth = (0.0, 0.0, 100.0, 10.0)  # area 1000
    above = (0.0, 0.0, 100.0, 10.0 * 0.51)  # IoU 0.51
    below = (0.0, 0.0, 100.0, 10.0 * 0.49)  # IoU 0.49
    assert box_iou(truth, above) == pytest.approx(0.51) and box_iou(truth, below) == pytest.approx(0.49)
    assert detection_ap([_pred(0, above, 0.9)], [_gt(0, truth)], NAMES)[0] == 1.0
    assert detection_ap([_pred(0, below, 0.9)], [_gt(0, truth)], NAMES)[0] == 0.0
    # A box of the right place but the wrong class does not count either.
    assert detection_ap([_pred(0, truth, 0.9, cls=1)], [_gt(0, truth)], NAMES)[0] == 0.0
    # Nor a right box on another image.
    assert detection_ap([_pred(1, truth, 0.9)], [_gt(0, truth)], NAMES)[0] == 0.0


def test_duplicates_are_false_positives() -> None:
    truth = (10.0, 10.0, 30.0, 30.0)
    preds = [_pred(0, truth, 0.9), _pred(0, (11, 10, 31, 30), 0.8)]
    assert match_class(preds, [_gt(0, truth)]) == [True, False]
    # Recall reaches 1 at the first box, so the duplicate after it does not lower AP ...
    assert detection_ap(preds, [_gt(0, truth)], NAMES)[0] == 1.0
    # ... but scored above a real find, it does: precision 1/2 at the second instance.
    truths = [_gt(0, truth), _gt(1, truth)]
    preds = [_pred(0, truth, 0.9), _pred(0, truth, 0.8), _pred(1, truth, 0.7)]
    assert match_class(preds, truths) == [True, False, True]
    assert detection_ap(preds, truths, NAMES)[0] == pytest.approx(0.5 * 1.0 + 0.5 * (2 / 3))


def test_score_order_decides_ap() -> None:
    truth = (10.0, 10.0, 30.0, 30.0)
    hit, miss = (10.0, 10.0, 30.0, 30.0), (100.0, 100.0, 120.0, 120.0)
    confident_miss = [_pred(0, miss, 0.9), _pred(0, hit, 0.8)]
    confident_hit = [_pred(0, miss, 0.8), _pred(0, hit, 0.9)]
    assert detection_ap(confident_miss, [_gt(0, truth)], NAMES)[0] == pytest.approx(0.5)
    assert detection_ap(confident_hit, [_gt(0, truth)], NAMES)[0] == 1.0
    # The higher-scored of two boxes on one instance takes it, whatever the input order.
    good, poor = _pred(0, truth, 0.9), _pred(0, (14, 10, 34, 30), 0.6)
    assert match_class([poor, good], [_gt(0, truth)]) == [True, False]


def test_all_point_interpolation_by_hand() -> None:
    # Three instances; hits at ranks 1 and 3, a miss at rank 2, one instance never found.
    # Recall 1/3 at precision 1, recall 2/3 at precision 2/3 → AP = 1/3 + 1/3 * 2/3.
    assert average_precision([True, False, True], 3) == pytest.approx(1 / 3 + 2 / 9)
    assert average_precision([], 3) == 0.0


def test_bootstrap_interval_of_perfect_and_empty_predictions_is_a_point() -> None:
    truths = [_gt(i, (10, 10, 30, 30)) for i in range(6)]
    perfect = [_pred(t.image, t.box, 0.9) for t in truths]
    assert map50_interval(perfect, truths, NAMES, 8, resamples=50) == (
        [1.0, 1.0],
        {"scratch": [1.0, 1.0], "dent": None},
    )
    assert map50_interval([], truths, NAMES, 8, resamples=50)[0] == [0.0, 0.0]
    assert map50_interval([], [], NAMES, 8, resamples=50) == (None, {"scratch": None, "dent": None})
    with pytest.raises(ValueError, match="outside the 3 evaluated images"):
        map50_interval(perfect, truths, NAMES, 3)


def test_bootstrap_interval_brackets_the_score_and_narrows_with_more_images() -> None:
    # Each image: one instance found by a confident box, and a false box scored above the found one on
    # every third image; the AP is the same at any size, its spread is not.
    def split(n: int) -> tuple[list[Prediction], list[Truth]]:
        truths = [_gt(i, (10, 10, 30, 30)) for i in range(n)]
        preds = [_pred(i, (10, 10, 30, 30), 0.5 + 0.4 * (i % 2)) for i in range(n)]
        preds += [_pred(i, (60, 60, 80, 80), 0.7) for i in range(0, n, 3)]
        return preds, truths

    small, large = split(30), split(300)
    ap_small, ap_large = detection_ap(*small, NAMES)[0], detection_ap(*large, NAMES)[0]
    (lo_small, hi_small), _ = map50_interval(*small, NAMES, 30, seed=1)
    (lo_large, hi_large), _ = map50_interval(*large, NAMES, 300, seed=1)
    assert lo_small < ap_small < hi_small and lo_large < ap_large < hi_large
    assert hi_large - lo_large < (hi_small - lo_small) / 2  # about 1/sqrt(10) as wide
    assert map50_interval(*small, NAMES, 30, seed=1) == map50_interval(*small, NAMES, 30, seed=1)


def test_size_bands_split_at_the_longest_side() -> None:
    assert size_band((0, 0, 9.9, 3)) == "<10 px"
    assert size_band((0, 0, 4, 10)) == "10-20 px"  # an edge belongs to the band above it
    assert size_band((5, 5, 24.9, 8)) == "10-20 px"
    assert size_band((0, 0, 20, 20)) == ">=20 px"
    assert size_band((0, 0, 3, 3), edges=(2.0,)) == ">=2 px"


def test_found_by_size_counts_instances_and_hits_per_band() -> None:
    small, mid, large = (10, 10, 16, 15), (40, 40, 52, 50), (60, 60, 100, 90)
    truths = [_gt(0, small), _gt(0, mid), _gt(1, large), _gt(1, small, cls=1)]
    perfect = [_pred(t.image, t.box, 0.9, t.class_id) for t in truths]
    bands = found_by_size(perfect, truths, NAMES)
    assert bands["scratch"] == {
        "<10 px": {"instances": 1, "found": 1},
        "10-20 px": {"instances": 1, "found": 1},
        ">=20 px": {"instances": 1, "found": 1},
    }
    assert bands["dent"]["<10 px"] == {"instances": 1, "found": 1}
    assert all(b["found"] == 0 for c in found_by_size([], truths, NAMES).values() for b in c.values())
    # One pixel off on a 6 px box is IoU < 0.5: the small lesion is missed, the large one is not.
    shifted = [_pred(0, (11.5, 11.5, 17.5, 16.5), 0.9), _pred(1, (61, 61, 101, 91), 0.8)]
    bands = found_by_size(shifted, truths, NAMES)
    assert bands["scratch"]["<10 px"]["found"] == 0 and bands["scratch"][">=20 px"]["found"] == 1
    # A prediction of the wrong class or on another image finds nothing; one box finds one instance.
    wrong = [_pred(0, small, 0.9, cls=1), _pred(1, mid, 0.9), _pred(0, mid, 0.9), _pred(0, mid, 0.8)]
    bands = found_by_size(wrong, truths, NAMES)
    assert bands["scratch"]["<10 px"]["found"] == 0 and bands["scratch"]["10-20 px"]["found"] == 1


def test_dice_score_known_cases() -> None:
    a = np.zeros((4, 4), bool)
    b = a.copy()
    assert dice_score(a, b) == 1.0  # both empty
    b[0, 0] = True
    assert dice_score(a, b) == 0.0
    a[0, :2] = True
    assert dice_score(a, b) == pytest.approx(2 * 1 / 3)
