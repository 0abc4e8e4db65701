"""Which detections become lesions across slices, and which stay 2-D findings (tasks/link.plan_findings)."""

from __future__ import annotations

from tasks.link import plan_findings
from tasks.types import FrameRef, LoadedStudy, Localization, ObjectRef

NO_OBJECT = ObjectRef(key="frames.npz", sha256="0" * 64, size=0, content_type="application/x-npz")


def _study(
    series: list[tuple[str, list[float | None]]], kind: str = "dicom", modality: str | None = "CT"
) -> LoadedStudy:
    frames = []
    for series_uid, positions in series:
        for number, position in enumerate(positions, start=1):
            frames.append(
                FrameRef(
                    index=len(frames),
                    series_uid=series_uid,
                    slice_number=number,
                    source_file=f"{series_uid}-{number}.dcm",
                    sop_instance_uid=None,
                    width=64,
                    height=64,
                    pixel_spacing_mm=(0.5, 0.5),
                    slice_position_mm=position,
                )
            )
    return LoadedStudy(
        study_uid="1.2.3",
        kind=kind,
        domain="medical",
        modality=modality,
        patient_id=None,
        accession_number=None,
        description=None,
        inputs=(),
        input_names=(),
        frames_archive=NO_OBJECT,
        frames=tuple(frames),
    )


def _hit(frame: int, box=(10.0, 10.0, 30.0, 30.0), score: float = 0.8) -> Localization:
    return Localization(frame=frame, label="lesion", class_id=0, score=score, box=box)


def test_a_ct_series_links_its_slices_in_position_order() -> None:
    # Stored order 20, 0, 10, 30 mm: frames 1, 2, 0 are consecutive in the body; frame 3 is 10 mm on.
    study = _study([("s", [20.0, 0.0, 10.0, 30.0])])
    (lesion,) = plan_findings(study, [_hit(0, score=0.9), _hit(1), _hit(2)])
    assert lesion.volume and lesion.score == 0.9
    assert [s.frame for s in lesion.slices] == [1, 2, 0]
    assert lesion.slabs_mm == (10.0, 10.0, 10.0) and lesion.geometry_note is None


def test_series_are_never_linked_with_each_other() -> None:
    study = _study([("a", [0.0, 5.0]), ("b", [0.0, 5.0])])
    plans = plan_findings(study, [_hit(0), _hit(1), _hit(2), _hit(3)])
    assert [[s.frame for s in p.slices] for p in plans] == [[0, 1], [2, 3]]


def test_without_positions_a_series_links_in_stored_order_and_says_why_there_is_no_depth() -> None:
    study = _study([("s", [None, None, None])])
    (lesion,) = plan_findings(study, [_hit(0), _hit(2)])  # slice 2 missed: bridged
    assert [(s.frame, s.detected) for s in lesion.slices] == [(0, True), (1, False), (2, True)]
    assert lesion.slabs_mm is None and "slice positions missing" in (lesion.geometry_note or "")


def test_plain_images_single_slices_and_other_modalities_stay_2d() -> None:
    hits = [_hit(0), _hit(1)]
    for study in (
        _study([("photos", [None, None])], kind="image", modality=None),
        _study([("s", [0.0, 5.0])], modality="CR"),
        _study([("a", [0.0]), ("b", [0.0])]),
    ):
        plans = plan_findings(study, hits)
        assert [(p.volume, [s.frame for s in p.slices]) for p in plans] == [(False, [0]), (False, [1])]
