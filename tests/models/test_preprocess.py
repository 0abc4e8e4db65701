import numpy as np
import pytest

from models.preprocess import normalize_to_uint8, to_gray, window_to_uint8


def test_window_maps_range_and_clips() -> None:
    out = window_to_uint8(np.array([-200.0, -160.0, 40.0, 240.0, 1000.0]), 40, 400)
    assert out.tolist() == [0, 0, 128, 255, 255]
    with pytest.raises(ValueError, match="positive"):
        window_to_uint8(np.zeros(2), 0, 0)


def test_normalize_stretches_16_bit_and_keeps_flat_images_flat() -> None:
    ramp = np.linspace(0, 4095, 10_000).reshape(100, 100).astype(np.uint16)
    out = normalize_to_uint8(ramp)
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    assert normalize_to_uint8(np.full((8, 8), 7, np.uint16)).tolist() == np.full((8, 8), 128).tolist()


def test_to_gray_handles_layouts() -> None:
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 1] = 200
    assert to_gray(rgb)[0, 0] == int(200 * 0.587)
    assert to_gray(np.ones((4, 4, 1), np.uint8)).shape == (4, 4)
    with pytest.raises(ValueError):
        to_gray(np.zeros((4, 4, 5)))
