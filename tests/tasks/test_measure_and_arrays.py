import numpy as np

from tasks.arrays import decode_frames, decode_png, encode_frames, encode_png
from tasks.segment import measure
from tasks.types import FrameRef


def _frame(spacing: tuple[float, float] | None) -> FrameRef:
    return FrameRef(
        index=0, series_uid="1.2", slice_number=1, source_file="a.dcm",
        sop_instance_uid=None, width=64, height=64, pixel_spacing_mm=spacing,
    )  # fmt: skip


def test_measure_uses_row_and_column_spacing() -> None:
    mask = np.zeros((64, 64), bool)
    mask[10:20, 5:25] = True  # 10 rows x 20 columns = 200 px
    assert measure(mask, _frame((0.5, 0.25))) == (200.0, 25.0, 5.0, 5.0)
    assert measure(mask, _frame(None)) == (200.0, None, None, None)
    assert measure(np.zeros((64, 64), bool), _frame((1.0, 1.0))) == (0.0, 0.0, None, None)


def test_frames_and_png_round_trip_exactly() -> None:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (32, 48), dtype=np.uint8), rng.integers(0, 256, (16, 16), dtype=np.uint8)]
    back = decode_frames(encode_frames(frames))
    assert len(back) == 2 and all(np.array_equal(a, b) for a, b in zip(frames, back, strict=True))
    mask = rng.random((20, 30)) > 0.5
    assert np.array_equal(decode_png(encode_png(mask)) > 0, mask)
    assert np.array_equal(decode_png(encode_png(frames[0])), frames[0])
