"""The shipped detectors run through the adapter on held-out synthetic images."""

import numpy as np
import pytest

from models.detector import load_detector
from models.domains import domain_spec
from models.registry import WeightsError, read_card, resolve_weights
from models.synthetic import samples_for
from models.train import HELD_OUT_OFFSET


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("domain", ["medical", "industrial"])
def test_shipped_detector_finds_most_held_out_findings(domain: str) -> None:
    ref = resolve_weights("detector", domain)
    detector = load_detector(ref.path, ref.sha256, "cpu")
    assert detector.class_names == domain_spec(domain).class_names
    card = read_card(ref.path)
    assert card is not None
    assert detector.image_size == card.input["imgsz"]  # the input size the weights were trained at
    # Data from the generator version the model was trained and measured on.
    samples = samples_for(domain, seed=HELD_OUT_OFFSET + 5, count=24, version=card.generator_version)
    results = detector.detect([s.image for s in samples], confidence=0.25, batch_size=8)
    truth = matched = 0
    for sample, dets in zip(samples, results, strict=True):
        for box, cls in zip(sample.boxes, sample.class_ids, strict=True):
            truth += 1
            matched += any(d.class_id == cls and _iou(d.box, box) >= 0.3 for d in dets)
        for d in dets:
            assert 0 <= d.box[0] < d.box[2] <= 256 and 0 <= d.box[1] < d.box[3] <= 256
    assert truth > 10
    assert matched / truth >= 0.6, f"recall {matched}/{truth}"


def test_boxes_come_back_in_source_pixels_for_other_sizes() -> None:
    ref = resolve_weights("detector", "industrial")
    detector = load_detector(ref.path, ref.sha256, "cpu")
    sample = next(s for s in samples_for("industrial", 99, 20) if len(s.masks) == 1 and s.class_ids[0] != 1)
    big = np.kron(sample.image, np.ones((2, 2), np.uint8))  # 512 x 512, same content
    small_dets = detector.detect([sample.image])[0]
    big_dets = detector.detect([big])[0]
    assert small_dets and big_dets
    assert np.allclose(np.array(big_dets[0].box) / 2, small_dets[0].box, atol=6)


def test_unloadable_detector_weights(tmp_path) -> None:
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(WeightsError, match=f"{bad} are not a torch checkpoint"):
        load_detector(bad, "abc", "cpu", 256)
    with pytest.raises(ValueError, match="2-D uint8"):
        ref = resolve_weights("detector", "medical")
        load_detector(ref.path, ref.sha256, "cpu", 256).detect([np.zeros((8, 8), np.float32)])


def test_nested_same_class_boxes_are_counted_once() -> None:
    from models.detector import suppress_nested
    from models.types import Detection

    big = Detection("lesion", 0, 0.6, (78.0, 97.0, 106.0, 122.0))
    inner = Detection("lesion", 0, 0.5, (83.0, 98.0, 103.0, 116.0))  # IoU 0.5, but 100 % inside `big`
    other_class = Detection("dent", 1, 0.4, (84.0, 99.0, 100.0, 115.0))
    apart = Detection("lesion", 0, 0.3, (150.0, 150.0, 170.0, 170.0))
    kept = suppress_nested([inner, apart, big, other_class])
    assert kept == [big, other_class, apart]


def test_a_small_lesion_inside_a_larger_ones_box_is_a_second_finding() -> None:
    from models.detector import suppress_nested
    from models.types import Detection

    # Two lesions side by side: the small one lies wholly in the corner of the large one's box, but
    # covers a tenth of it (IoU 0.1); a duplicate box of the large lesion covers most of it.
    large = Detection("lesion", 0, 0.9, (100.0, 100.0, 131.0, 131.0))
    small = Detection("lesion", 0, 0.6, (121.0, 121.0, 130.0, 130.0))
    duplicate = Detection("lesion", 0, 0.5, (102.0, 104.0, 126.0, 129.0))
    assert suppress_nested([small, duplicate, large]) == [large, small]
    assert suppress_nested([small, large], min_iou=0.0) == [large]


def test_detecting_leaves_torchs_thread_count_alone() -> None:
    import torch

    from models.offline import ultralytics_module

    # A fresh model (not the cached one): ultralytics picks the device, and sets threads, on its first call.
    ref = resolve_weights("detector", "medical")
    detector = load_detector.__wrapped__(ref.path, ref.sha256, "cpu", 256)
    before = torch.get_num_threads()
    wanted = ultralytics_module().utils.NUM_THREADS + 1  # anything but what ultralytics would set
    torch.set_num_threads(wanted)
    try:
        detector.detect([samples_for("medical", 3, 1)[0].image])
        assert torch.get_num_threads() == wanted
    finally:
        torch.set_num_threads(before)


def test_overlapping_thread_blocks_restore_ultralytics_setting_once() -> None:
    """Prefect worker threads overlap blocks: the last to close, not the first, restores it."""
    import torch

    from models.detector import keep_torch_threads
    from models.offline import ultralytics_module

    torch_utils = ultralytics_module().utils.torch_utils
    selected, before = torch_utils.NUM_THREADS, torch.get_num_threads()
    torch.set_num_threads(selected + 1)  # a count the two settings cannot share by chance
    try:
        first, second = keep_torch_threads(), keep_torch_threads()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        assert selected + 1 == torch_utils.NUM_THREADS  # the second block is still open
        second.__exit__(None, None, None)
        assert selected == torch_utils.NUM_THREADS
    finally:
        torch.set_num_threads(before)
