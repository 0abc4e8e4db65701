"""scan_inputs: walking folders, grouping into studies and series, ordering, and rejections."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.uid import UID

from argus.loading import Frame, LoadLimits, scan_inputs

STUDY_A, STUDY_B = "1.2.826.0.1.3680043.2.1125.10", "1.2.826.0.1.3680043.2.1125.20"
SERIES_AXIAL, SERIES_SCOUT = STUDY_A + ".1", STUDY_A + ".2"
AXIAL = [1, 0, 0, 0, 1, 0]


def ramp(seed: int) -> np.ndarray:
    return ((np.arange(32 * 32).reshape(32, 32) * (seed + 1)) % 4000).astype(np.uint16)


def write_png(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.arange(24 * 24).reshape(24, 24) * (seed + 1) % 256).astype(np.uint8)).save(path)
    return path


def test_dicom_grouped_into_studies_and_series_with_slices_sorted(tmp_path, write_dicom):
    root = tmp_path / "export"
    # File names deliberately disagree with the anatomical order.
    for name, z, number in [("a.dcm", 20.0, 1), ("b.dcm", -10.0, 2), ("c.dcm", 5.0, 3)]:
        write_dicom(
            root / "axial" / name,
            ramp(number),
            study_uid=STUDY_A,
            series_uid=SERIES_AXIAL,
            sop_instance_uid=f"{SERIES_AXIAL}.{number}",
            InstanceNumber=number,
            ImagePositionPatient=[-100, -100, z],
            ImageOrientationPatient=AXIAL,
            PixelSpacing=[0.7, 0.7],
        )
    # No positions: ordered by instance number.
    for name, number in [("x.dcm", 3), ("y.dcm", 1), ("z.dcm", 2)]:
        write_dicom(
            root / "scout" / name,
            ramp(number),
            study_uid=STUDY_A,
            series_uid=SERIES_SCOUT,
            InstanceNumber=number,
            SeriesDescription="Scout",
        )
    write_dicom(root / "other" / "one.dcm", ramp(9), study_uid=STUDY_B, series_uid=STUDY_B + ".1")

    result = scan_inputs([root])

    assert result.rejected == []
    assert [s.study_uid for s in result.studies] == [STUDY_A, STUDY_B]
    study = result.studies[0]
    assert (study.kind, study.patient_id, study.accession_number) == ("dicom", "PAT-1", "ACC-1")
    assert study.description == "Test study"
    assert [s.series_uid for s in study.series] == [SERIES_AXIAL, SERIES_SCOUT]
    axial, scout = study.series
    assert [f.slice_location_mm for f in axial.frames] == [-10.0, 5.0, 20.0]
    assert [f.source_path.name for f in axial.frames] == ["b.dcm", "c.dcm", "a.dcm"]
    assert axial.frames[0].pixel_spacing_mm == (0.7, 0.7)
    assert axial.modality == "MR"
    assert [f.instance_number for f in scout.frames] == [1, 2, 3]
    assert scout.description == "Scout"
    assert study.source_paths == tuple(sorted(study.source_paths))
    assert len(study.source_paths) == 6


def test_series_without_positions_or_numbers_sorted_by_file_name(tmp_path, write_dicom):
    for name in ["IM3", "IM1", "IM2"]:
        write_dicom(tmp_path / name, ramp(int(name[-1])))

    frames = scan_inputs([tmp_path]).studies[0].series[0].frames

    assert [f.source_path.name for f in frames] == ["IM1", "IM2", "IM3"]


def test_duplicate_sop_instance_keeps_the_first(tmp_path, write_dicom):
    original = write_dicom(tmp_path / "a" / "slice.dcm", ramp(1), sop_instance_uid="1.2.3.99")
    copy = tmp_path / "b" / "slice_copy.dcm"
    copy.parent.mkdir()
    shutil.copy(original, copy)

    result = scan_inputs([tmp_path])

    (study,) = result.studies
    assert study.source_paths == (original,)
    assert len(study.series[0].frames) == 1
    assert result.rejected == []


def test_same_file_given_twice_is_loaded_once(tmp_path, write_dicom):
    path = write_dicom(tmp_path / "one.dcm", ramp(1))

    result = scan_inputs([path, tmp_path, path])

    assert [len(s.series[0].frames) for s in result.studies] == [1]


def test_image_set_uids_are_deterministic_and_content_derived(tmp_path):
    folder = tmp_path / "line-3-camera"
    write_png(folder / "b.png", 2)
    write_png(folder / "a.png", 1)

    first = scan_inputs([folder])
    second = scan_inputs([folder])

    (study,) = first.studies
    (series,) = study.series
    assert (study.kind, study.description, study.patient_id, study.accession_number) == (
        "image",
        "line-3-camera",
        None,
        None,
    )
    assert series.modality is None and series.description == "line-3-camera"
    assert [f.source_path.name for f in series.frames] == ["a.png", "b.png"]
    assert study.source_paths == (folder / "a.png", folder / "b.png")
    for uid in (study.study_uid, series.series_uid):
        assert re.fullmatch(r"2\.25\.[1-9][0-9]*", uid) and len(uid) <= 64
        assert UID(uid).is_valid
    assert study.study_uid != series.series_uid
    assert (second.studies[0].study_uid, second.studies[0].series[0].series_uid) == (
        study.study_uid,
        series.series_uid,
    )

    write_png(folder / "b.png", 3)  # different bytes, same names
    assert scan_inputs([folder]).studies[0].study_uid != study.study_uid


def test_images_grouped_per_folder_next_to_dicom(tmp_path, write_dicom):
    write_png(tmp_path / "day1" / "p1.png", 1)
    write_png(tmp_path / "day2" / "p2.png", 2)
    write_dicom(tmp_path / "day2" / "scan.dcm", ramp(1))

    studies = scan_inputs([tmp_path]).studies

    assert [(s.kind, s.source_paths[0].relative_to(tmp_path).as_posix()) for s in studies] == [
        ("image", "day1/p1.png"),
        ("image", "day2/p2.png"),
        ("dicom", "day2/scan.dcm"),
    ]


def test_dicom_without_uids_gets_one_deterministic_study_per_folder(tmp_path, build_dicom):
    from pydicom import dcmwrite

    for name in ["1.dcm", "2.dcm"]:
        ds = build_dicom(ramp(int(name[0])), InstanceNumber=int(name[0]))
        del ds.StudyInstanceUID, ds.SeriesInstanceUID
        dcmwrite(tmp_path / name, ds, enforce_file_format=True)

    first, second = scan_inputs([tmp_path]), scan_inputs([tmp_path])

    (study,) = first.studies
    assert study.study_uid.startswith("2.25.") and study.series[0].series_uid.startswith("2.25.")
    assert len(study.series[0].frames) == 2
    assert second.studies[0].study_uid == study.study_uid


def test_hidden_files_and_folders_are_skipped(tmp_path, write_dicom):
    write_dicom(tmp_path / ".cache" / "old.dcm", ramp(1))
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    visible = write_dicom(tmp_path / "scan.dcm", ramp(2))

    result = scan_inputs([tmp_path])

    assert [s.source_paths for s in result.studies] == [(visible,)]
    assert result.rejected == []


def test_empty_folder_and_missing_path(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    only_hidden = tmp_path / "hidden_only"
    only_hidden.mkdir()
    (only_hidden / ".keep").write_text("")
    missing = tmp_path / "does-not-exist"

    result = scan_inputs([empty, missing, only_hidden])

    assert result.studies == []
    assert [(r.path, r.reason) for r in result.rejected] == [
        (empty, "no images or DICOM files found in folder"),
        (missing, "no such file or folder"),
        (only_hidden, "no images or DICOM files found in folder"),
    ]


def test_bad_files_are_rejected_without_stopping_the_good_ones(tmp_path, write_dicom, build_dicom):
    from pydicom import dcmwrite

    folder = tmp_path / "incoming"
    good = [write_dicom(folder / f"good{i}.dcm", ramp(i), InstanceNumber=i) for i in (1, 2)]
    (folder / "notes.dcm").write_text("Please scan the left knee too.\n")
    write_png(folder / "pictures" / "ok.png", 4)
    Image.fromarray(np.zeros((1, 1), dtype=np.uint8)).save(folder / "pictures" / "dot.png")
    short = build_dicom(ramp(3))
    short.PixelData = short.PixelData[:100]
    dcmwrite(folder / "short.dcm", short, enforce_file_format=True)
    write_dicom(folder / "nopixels.dcm", None)

    result = scan_inputs([folder])

    assert [s.kind for s in result.studies] == ["dicom", "image"]
    assert result.studies[0].source_paths == tuple(good)
    assert result.studies[1].source_paths == (folder / "pictures" / "ok.png",)
    reasons = {r.path.name: r.reason for r in result.rejected}
    assert set(reasons) == {"notes.dcm", "dot.png", "short.dcm", "nopixels.dcm"}
    assert reasons["notes.dcm"] == "not a DICOM file"
    assert reasons["dot.png"] == "image too small (1x1); the minimum side is 16 px"
    assert reasons["short.dcm"].startswith("pixel data cannot be decoded: ")
    assert reasons["nopixels.dcm"].startswith("no pixel data")


def test_limits_are_passed_to_the_readers(tmp_path, write_dicom):
    path = write_dicom(tmp_path / "scan.dcm", ramp(1))

    result = scan_inputs([path], LoadLimits(min_side=64))

    assert result.studies == []
    assert [r.reason for r in result.rejected] == ["image too small (32x32); the minimum side is 64 px"]


# --- keep_pixels=False and the study of rejected files ---------------------------------------------


def write_ct_slice(path: Path, build_dicom, number: int, *, truncate: bool = False) -> Path:
    """Slice `number` of the CT series STUDY_B.1; with `truncate`, its pixel data is cut short."""
    from pydicom import dcmwrite
    from pydicom.uid import CTImageStorage

    ds = build_dicom(
        ramp(number).astype(np.int16),
        modality="CT",
        sop_class=CTImageStorage,
        study_uid=STUDY_B,
        series_uid=STUDY_B + ".1",
        sop_instance_uid=f"{STUDY_B}.1.{number}",
        InstanceNumber=number,
        ImagePositionPatient=[-100, -100, 2.5 * number],
        ImageOrientationPatient=AXIAL,
        RescaleIntercept=-1024,
        RescaleSlope=1,
    )
    if truncate:
        ds.PixelData = ds.PixelData[:100]
    path.parent.mkdir(parents=True, exist_ok=True)
    dcmwrite(path, ds, enforce_file_format=True)
    return path


def frame_metadata(frame: Frame) -> dict[str, object]:
    return {name: value for name, value in vars(frame).items() if name != "pixels"}


def test_without_pixels_same_studies_and_rejections_but_frames_carry_only_their_shape(tmp_path, build_dicom):
    folder = tmp_path / "intake"
    for number in (1, 2, 3):
        write_ct_slice(folder / "ct" / f"{number}.dcm", build_dicom, number)
    write_ct_slice(folder / "ct" / "4.dcm", build_dicom, 4, truncate=True)
    write_png(folder / "photos" / "a.png", 1)
    wide = folder / "photos" / "b.png"
    Image.fromarray(np.arange(20 * 30, dtype=np.uint16).reshape(20, 30).astype(np.uint8)).save(wide)
    (folder / "notes.dcm").write_text("not an image\n")

    kept = scan_inputs([folder])
    light = scan_inputs([folder], keep_pixels=False)

    assert [(r.path, r.reason, r.study_uid, r.series_uid) for r in light.rejected] == [
        (r.path, r.reason, r.study_uid, r.series_uid) for r in kept.rejected
    ]
    assert {r.path.name for r in light.rejected} == {"4.dcm", "notes.dcm"}
    assert [s.kind for s in light.studies] == ["dicom", "image"]
    for light_study, kept_study in zip(light.studies, kept.studies, strict=True):
        assert dataclasses.replace(light_study, series=()) == dataclasses.replace(kept_study, series=())
        for light_series, kept_series in zip(light_study.series, kept_study.series, strict=True):
            assert dataclasses.replace(light_series, frames=()) == dataclasses.replace(kept_series, frames=())
            assert [frame_metadata(f) for f in light_series.frames] == [
                frame_metadata(f) for f in kept_series.frames
            ]
            for light_frame, kept_frame in zip(light_series.frames, kept_series.frames, strict=True):
                assert kept_frame.shape == kept_frame.pixels.shape
                assert light_frame.pixels.shape == (0, 0) and light_frame.pixels.dtype == np.uint8
    ct_frames = light.studies[0].series[0].frames
    assert [f.instance_number for f in ct_frames] == [1, 2, 3]
    assert {f.shape for f in ct_frames} == {(32, 32)}
    assert [(f.source_path.name, f.shape) for f in light.studies[1].series[0].frames] == [
        ("a.png", (24, 24)),
        ("b.png", (20, 30)),  # (rows, columns)
    ]


def test_rejected_slice_keeps_its_study_and_series(tmp_path, build_dicom):
    for number in (1, 2):
        write_ct_slice(tmp_path / "ct" / f"{number}.dcm", build_dicom, number)
    truncated = write_ct_slice(tmp_path / "ct" / "3.dcm", build_dicom, 3, truncate=True)
    text = tmp_path / "ct" / "readme.dcm"
    text.write_text("Please scan the left knee too.\n")

    for keep_pixels in (True, False):
        result = scan_inputs([tmp_path], keep_pixels=keep_pixels)

        (study,) = result.studies
        assert study.source_paths == (tmp_path / "ct" / "1.dcm", tmp_path / "ct" / "2.dcm")
        by_name = {r.path.name: r for r in result.rejected}
        assert by_name["3.dcm"].path == truncated
        assert by_name["3.dcm"].reason.startswith("pixel data cannot be decoded: ")
        assert (by_name["3.dcm"].study_uid, by_name["3.dcm"].series_uid) == (STUDY_B, STUDY_B + ".1")
        assert (by_name["3.dcm"].study_uid, by_name["3.dcm"].series_uid) == (
            study.study_uid,
            study.series[0].series_uid,
        )
        assert by_name["readme.dcm"].reason == "not a DICOM file"
        assert (by_name["readme.dcm"].study_uid, by_name["readme.dcm"].series_uid) == (None, None)


def test_rejection_uids_only_when_a_dicom_header_gave_them(tmp_path, write_dicom):
    empty = tmp_path / "empty"
    empty.mkdir()
    Image.fromarray(np.zeros((1, 1), dtype=np.uint8)).save(tmp_path / "dot.png")
    small = write_dicom(tmp_path / "small.dcm", ramp(1), study_uid=STUDY_A, series_uid=SERIES_AXIAL)

    result = scan_inputs([empty, tmp_path / "missing", tmp_path / "dot.png", small], LoadLimits(min_side=64))

    assert [(r.path.name, r.study_uid, r.series_uid) for r in result.rejected] == [
        ("empty", None, None),
        ("missing", None, None),
        ("dot.png", None, None),
        ("small.dcm", STUDY_A, SERIES_AXIAL),  # too small, but the header was readable
    ]
