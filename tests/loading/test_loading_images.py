"""read_image on PNG, JPEG, TIFF and BMP files written by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from argus.loading import images
from argus.loading.images import is_image_path, read_image
from argus.loading.types import InputRejected, LoadLimits
from models.preprocess import normalize_to_uint8


def gradient(height: int = 24, width: int = 32) -> np.ndarray:
    return (np.arange(height * width).reshape(height, width) % 251).astype(np.uint8)


def red_blue(path: Path, mode: str = "RGB") -> Path:
    rgb = np.zeros((20, 20, 4 if mode == "RGBA" else 3), dtype=np.uint8)
    rgb[:, :10, 0] = 255  # red: luminance 76
    rgb[:, 10:, 2] = 255  # blue: luminance 29
    if mode == "RGBA":
        rgb[:, :, 3] = 128
    Image.fromarray(rgb, mode).save(path)
    return path


def rejection(path: Path, limits: LoadLimits | None = None) -> str:
    with pytest.raises(InputRejected) as caught:
        read_image(path, limits or LoadLimits())
    assert caught.value.path == path
    return caught.value.reason


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".tiff"])
def test_lossless_8_bit_gray_is_kept_as_is(tmp_path, suffix):
    values = gradient()
    path = tmp_path / f"gray{suffix}"
    Image.fromarray(values).save(path)

    frame = read_image(path)

    np.testing.assert_array_equal(frame.pixels, values)
    assert frame.pixels.dtype == np.uint8
    assert (frame.source_path, frame.frame_index, frame.sop_instance_uid) == (path, 0, None)
    assert frame.orientation is None  # plain images carry no patient geometry


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_colour_becomes_luminance_in_rgb_order(tmp_path, mode):
    pixels = read_image(red_blue(tmp_path / f"colour_{mode}.png", mode)).pixels

    assert pixels.shape == (20, 20)
    assert (pixels[:, :10] == 76).all() and (pixels[:, 10:] == 29).all()


def test_jpeg_gray_matches_pillow_decoding(tmp_path):
    yy, xx = np.mgrid[0:48, 0:64]
    values = (xx * 3 + yy * 2).astype(np.uint8)
    path = tmp_path / "photo.JPG"  # upper-case extensions are common on cameras
    Image.fromarray(values).save(path, quality=95)

    pixels = read_image(path).pixels.astype(int)

    assert np.abs(pixels - np.asarray(Image.open(path)).astype(int)).max() <= 1
    assert np.abs(pixels - values.astype(int)).mean() < 2


def test_16_bit_png_is_normalised(tmp_path):
    values = (np.arange(40 * 30).reshape(40, 30) * 50).astype(np.uint16)
    path = tmp_path / "depth.png"
    Image.fromarray(values).save(path)

    np.testing.assert_array_equal(read_image(path).pixels, normalize_to_uint8(values))


def test_float_tiff_is_normalised_and_nan_does_not_poison_it(tmp_path):
    values = np.linspace(-3.0, 7.0, 32 * 32, dtype=np.float32).reshape(32, 32)
    path = tmp_path / "heightmap.tif"
    with_nan = values.copy()
    with_nan[5, 5] = np.nan
    Image.fromarray(with_nan, "F").save(path)

    pixels = read_image(path).pixels

    expected = normalize_to_uint8(np.where(np.isnan(with_nan), values.min(), values))
    np.testing.assert_array_equal(pixels, expected)
    assert pixels[5, 5] == 0


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow(tmp_path, orientation):
    values = np.zeros((40, 24), dtype=np.uint8)
    values[2:12, 2:8] = 250  # an asymmetric mark near the top-left corner
    path = tmp_path / f"camera_{orientation}.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(values).save(path, exif=exif, quality=100)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path))).astype(int)

    pixels = read_image(path).pixels

    assert pixels.shape == expected.shape
    assert np.abs(pixels.astype(int) - expected).max() <= 1


def test_without_pixels_the_shape_is_that_of_the_oriented_image(tmp_path):
    path = tmp_path / "camera.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated a quarter turn: 40 rows x 24 columns stored, 24 x 40 shown
    Image.fromarray(np.zeros((40, 24), dtype=np.uint8)).save(path, exif=exif)

    frame = read_image(path, keep_pixels=False)

    assert frame.shape == read_image(path).pixels.shape == (24, 40)
    assert frame.pixels.shape == (0, 0) and frame.pixels.dtype == np.uint8


def test_without_pixels_an_undecodable_image_is_still_rejected(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:200])

    with pytest.raises(InputRejected) as caught:
        read_image(path, keep_pixels=False)

    assert caught.value.reason.startswith("cannot read image: ")
    assert (caught.value.study_uid, caught.value.series_uid) == (None, None)


def test_pillow_fallback_when_opencv_cannot_decode(tmp_path, monkeypatch):
    path = red_blue(tmp_path / "colour.png")
    monkeypatch.setattr(images.cv2, "imdecode", lambda *args: None)

    pixels = read_image(path).pixels

    assert (pixels[:, :10] == 76).all() and (pixels[:, 10:] == 29).all()


def test_size_limits(tmp_path, monkeypatch):
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((1, 1), dtype=np.uint8)).save(tiny)
    wide = tmp_path / "wide.png"
    Image.fromarray(np.zeros((20, 40), dtype=np.uint8)).save(wide)

    assert rejection(tiny) == "image too small (1x1); the minimum side is 16 px"

    def must_not_decode(*args):
        raise AssertionError("an oversized image was decoded")

    # The header alone must be enough to refuse an oversized image.
    monkeypatch.setattr(images.cv2, "imdecode", must_not_decode)
    assert rejection(wide, LoadLimits(max_pixels=500)) == (
        "image too large (40x20 = 800 pixels); the maximum is 500 pixels per frame"
    )


@pytest.mark.parametrize("content", [b"this is not a picture", b"\x89PNG\r\n\x1a\n" + bytes(40)])
def test_unreadable_image(tmp_path, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)

    assert rejection(path).startswith("cannot read image: ")


def test_truncated_png_is_rejected(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:200])

    assert rejection(path).startswith("cannot read image: ")


def test_image_extensions():
    assert is_image_path(Path("a/b.PNG")) and is_image_path(Path("x.jpeg")) and is_image_path(Path("x.tif"))
    assert not is_image_path(Path("x.dcm")) and not is_image_path(Path("IM0001"))
