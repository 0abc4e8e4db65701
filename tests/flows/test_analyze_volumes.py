"""CT series as volumes, end to end: a lesion across slices is one finding, measured in 3-D, in mm."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from argus.demo_data import demo_ct_volume, write_ct_multiframe, write_demo_inputs

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server")]

DEMO_SEED = 7  # write_demo_inputs' default
SLICE_MM = 5.0  # the demo volume's slices are evenly 5 mm apart


def _analyze(paths: list[Path]) -> dict[str, Any]:
    from argus.db import db_session
    from argus.results import study_result
    from flows.batch import analyze_paths

    outcome = analyze_paths([str(p) for p in paths])
    assert outcome.errors == []
    with db_session() as session:
        (result,) = [study_result(session, run_id) for run_id in outcome.run_ids]
    return result


def _true_lesion(finding: dict[str, Any], sections: dict[int, dict[int, tuple[int, int, int, int]]]) -> int:
    """The one true lesion whose section on the finding's key slice overlaps the finding's 3-D box."""
    x1, y1, x2, y2 = finding["box"]
    z = finding["slice"] - 1
    hits = [
        k
        for k, by_slice in sections.items()
        if z in by_slice
        and by_slice[z][0] < x2
        and x1 < by_slice[z][2]
        and by_slice[z][1] < y2
        and y1 < by_slice[z][3]
    ]
    assert len(hits) == 1, f"finding {finding['index']} overlaps lesions {hits}"
    return hits[0]


def test_a_lesion_across_slices_is_reported_once_with_depth_and_volume(
    argus_env: Path, tmp_path: Path
) -> None:
    from tasks.resources import object_store

    ct_dir, _ = write_demo_inputs(tmp_path / "inputs")
    result = _analyze([ct_dir])
    findings = result["findings"]
    sections = demo_ct_volume(DEMO_SEED).lesion_sections()
    # One finding per lesion of the volume, each a different true lesion (not one per slice).
    assert len(findings) == len(sections) == 3
    assert {_true_lesion(f, sections) for f in findings} == set(sections)
    assert any(f["slices"][1] - f["slices"][0] >= 2 for f in findings), "no lesion spans three slices"

    store = object_store()
    artifacts = result["artifacts"]
    (npz_key,) = [a["key"] for a in artifacts if a["kind"] == "masks_npz"]
    archive = np.load(io.BytesIO(store.get_bytes(npz_key)))
    spacing = demo_ct_volume(DEMO_SEED).pixel_spacing_mm
    for f in findings:
        first, last = f["slices"]
        assert first <= f["slice"] <= last and f["slice_count"] == last - first + 1
        assert f["depth_mm"] == pytest.approx(f["slice_count"] * SLICE_MM)
        # One mask per slice spanned; the volume is their area times the slice spacing.
        stack = archive[f"finding_{f['index']:03d}"]
        assert stack.shape == (f["slice_count"], 256, 256)
        assert archive[f"finding_{f['index']:03d}_slices"].tolist() == list(range(first, last + 1))
        assert f["volume_mm3"] == pytest.approx(stack.sum() * spacing * spacing * SLICE_MM, abs=1.0)
        # The finding's mask is its key slice: the largest section.
        key_mask = cv2.imdecode(np.frombuffer(store.get_bytes(f["mask_key"]), np.uint8), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(key_mask > 0, stack[f["slice"] - first])
        assert stack[f["slice"] - first].sum() == max(m.sum() for m in stack)
        assert f["width_mm"] > 0 and f["height_mm"] > 0
    assert sum(a["kind"] == "mask" for a in artifacts) == sum(f["slice_count"] for f in findings)
    overlays = {a["key"].rsplit("/", 1)[-1] for a in artifacts if a["kind"] == "overlay"}
    spanned = {n for f in findings for n in range(f["slices"][0], f["slices"][1] + 1)}
    assert overlays == {f"overlay-frame-{n:03d}.png" for n in spanned}

    # Reported once each, with the slice range and the size in 3-D.
    report = result["report"]
    assert [r["slice_range"] for r in report["findings"]] == [f["slices"] for f in findings]
    for f, stated in zip(findings, report["findings"], strict=True):
        first, last = f["slices"]
        where = f"slices {first}-{last} (largest on slice {f['slice']})" if last > first else f"slice {first}"
        assert stated["location"].endswith(where)
        extent = f"{f['width_mm']:.1f} x {f['height_mm']:.1f} x {f['depth_mm']:.1f} mm"
        size = f"{extent}, volume {f['volume_mm3']:.0f} mm3"
        assert stated["size"] == size and size in report["text"]
    assert report["impression"].startswith("3 lesions detected; largest ")


def test_a_multiframe_series_gives_the_same_lesions_as_the_single_frame_series(
    argus_env: Path, tmp_path: Path
) -> None:
    ct_dir, _ = write_demo_inputs(tmp_path / "inputs")
    enhanced = write_ct_multiframe(
        demo_ct_volume(DEMO_SEED), tmp_path / "enhanced" / "ct.dcm", seed=DEMO_SEED
    )
    # Same study, two series: the slices as files, and the same volume as one Enhanced CT file.
    result = _analyze([ct_dir, enhanced.parent])
    single = [f for f in result["findings"] if f["image"] != "ct.dcm"]
    multi = [f for f in result["findings"] if f["image"] == "ct.dcm"]
    assert len({f["series_uid"] for f in single}) == len({f["series_uid"] for f in multi}) == 1
    assert single[0]["series_uid"] != multi[0]["series_uid"]  # the two series are never linked together

    def measured(f: dict[str, Any]) -> tuple[Any, ...]:
        rounded = [round(v, 2) for v in f["box"]]
        return (
            f["label"],
            round(f["score"], 4),
            rounded,
            f["slice"],
            f["slices"],
            f["depth_mm"],
            f["volume_mm3"],
        )

    assert len(single) == 3
    assert [measured(f) for f in multi] == [measured(f) for f in single]
    assert all(f["depth_mm"] is not None and f["volume_mm3"] > 0 for f in multi)
