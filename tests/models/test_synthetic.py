import numpy as np
import pytest

from models.preprocess import ct_to_uint8
from models.synthetic import ct_volume, mask_box, samples_for, surface_image


def test_generators_are_deterministic_per_seed() -> None:
    a, b = samples_for("industrial", 3, 4), samples_for("industrial", 3, 4)
    c = samples_for("industrial", 4, 4)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x.image, y.image) for x, y in zip(a, c, strict=True))


def test_ct_volume_is_in_hounsfield_units_with_labelled_lesions() -> None:
    vol = ct_volume(np.random.default_rng(11), n_slices=6)
    assert vol.hounsfield.shape == (6, 256, 256)
    assert vol.hounsfield.min() <= -990  # air outside the body
    assert vol.hounsfield.max() >= 500  # bone
    sample = vol.slice_sample(3)
    assert sample.image.dtype == np.uint8
    for mask, box in zip(sample.masks, sample.boxes, strict=True):
        x1, y1, x2, y2 = box
        assert mask[y1:y2, x1:x2].sum() == mask.sum()


def test_lesions_differ_from_their_surroundings_after_windowing() -> None:
    rng = np.random.default_rng(5)
    for _ in range(10):
        vol = ct_volume(rng, n_slices=4)
        for z in range(4):
            labels = vol.lesion_labels[z]
            for k in np.unique(labels[labels > 0]):
                inside = vol.hounsfield[z][labels == k].mean()
                x1, y1, x2, y2 = mask_box(labels == k)
                ring = vol.hounsfield[z][max(0, y1 - 6) : y2 + 6, max(0, x1 - 6) : x2 + 6]
                assert abs(inside - np.median(ring)) > 10
    assert ct_to_uint8(np.array([40.0]))[0] == 128


def test_surface_defects_have_classes_and_masks() -> None:
    rng = np.random.default_rng(0)
    seen: set[int] = set()
    empty = 0
    for _ in range(60):
        s = surface_image(rng)
        seen |= set(s.class_ids)
        empty += not s.masks
        assert all(m.dtype == bool and m.sum() >= 8 for m in s.masks)
    assert seen == {0, 1, 2}
    assert empty > 0  # defect-free parts exist, so false positives can show


def test_unknown_domain_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown domain"):
        samples_for("dental", 0, 1)
    with pytest.raises(ValueError, match="empty mask"):
        mask_box(np.zeros((4, 4), bool))
