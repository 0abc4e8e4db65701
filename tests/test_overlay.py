import numpy as np

from argus.overlay import PALETTE, render_overlay


def test_overlay_draws_box_and_contour_in_class_colour_and_enlarges_small_images() -> None:
    image = np.full((128, 128), 100, np.uint8)
    mask = np.zeros((128, 128), bool)
    mask[40:60, 40:60] = True
    out = render_overlay(image, [(38, 38, 62, 62)], [mask], ["#1 dent 0.90"], [1])
    assert out.shape == (768, 768, 3)  # 128 px enlarged 6x
    colour = np.array(PALETTE[1])
    hits = np.all(out == colour, axis=2)
    assert hits[38 * 6, 40 * 6 : 60 * 6].all()  # top edge of the box
    assert hits[40 * 6, 45 * 6]  # the mask contour's top row
    assert not hits[50 * 6, 50 * 6]  # the inside of the mask is left visible
    assert (out[700:, :100] == 100).all()  # untouched background keeps its gray


def test_large_images_keep_their_size() -> None:
    out = render_overlay(np.zeros((1024, 900), np.uint8), [], [], [], [])
    assert out.shape == (1024, 900, 3)
