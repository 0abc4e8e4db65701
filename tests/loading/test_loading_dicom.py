"""read_dicom on files written by pydicom here and on pydicom's bundled real-world test files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread, dcmwrite
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.pixels import convert_color_space
from pydicom.uid import (
    MPEG2MPML,
    CTImageStorage,
    EnhancedCTImageStorage,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    SecondaryCaptureImageStorage,
)

from argus.loading.dicom import read_dicom
from argus.loading.types import InputRejected, LoadLimits, patient_directions
from models.preprocess import ct_to_uint8, normalize_to_uint8, to_gray

# Bundled files that exist in the installed pydicom (others would be downloaded, and there is no network).
TEST_FILES = Path(str(get_testdata_file("CT_small.dcm"))).parent


def bundled(name: str) -> Path:
    path = TEST_FILES / name
    assert path.is_file(), f"{name} is not bundled with this pydicom"
    return path


def hu_quadrants() -> np.ndarray:
    """32x32 Hounsfield image: 40 HU, -500 HU, 300 HU and -160 HU quadrants."""
    hu = np.empty((32, 32), dtype=np.int32)
    hu[:16, :16], hu[:16, 16:], hu[16:, :16], hu[16:, 16:] = 40, -500, 300, -160
    return hu


def write_ct(write_dicom, path: Path, hu: np.ndarray, **kwargs) -> Path:
    return write_dicom(
        path,
        (hu + 1024).astype(np.int16),
        modality="CT",
        sop_class=CTImageStorage,
        RescaleIntercept=-1024,
        RescaleSlope=1,
        **kwargs,
    )


def mr_ramp() -> np.ndarray:
    return (np.arange(48 * 40).reshape(48, 40) * 4095 // (48 * 40 - 1)).astype(np.uint16)


def rejection(path: Path, limits: LoadLimits | None = None) -> str:
    with pytest.raises(InputRejected) as caught:
        read_dicom(path, limits or LoadLimits())
    assert caught.value.path == path
    return caught.value.reason


# --- intensity conversion -------------------------------------------------------------------------


def test_ct_uses_modality_lut_then_fixed_soft_tissue_window(tmp_path, write_dicom):
    hu = hu_quadrants()
    instance = read_dicom(write_ct(write_dicom, tmp_path / "ct.dcm", hu))

    pixels = instance.frames[0].pixels
    assert pixels.dtype == np.uint8 and pixels.shape == (32, 32)
    assert pixels[0, 0] == 128  # 40 HU is the window centre
    assert pixels[0, 31] == 0  # -500 HU is below -160
    assert pixels[31, 0] == 255  # 300 HU is above 240
    assert pixels[31, 31] == 0  # -160 HU is the bottom of the window
    np.testing.assert_array_equal(pixels, ct_to_uint8(hu))
    assert instance.modality == "CT"


def test_mr_uint16_12_bit_is_percentile_normalised(tmp_path, write_dicom):
    values = mr_ramp()
    path = write_dicom(tmp_path / "mr.dcm", values, bits_stored=12, InstanceNumber=7)

    frame = read_dicom(path).frames[0]

    np.testing.assert_array_equal(frame.pixels, normalize_to_uint8(values))
    assert frame.pixels.min() == 0 and frame.pixels.max() == 255
    assert frame.instance_number == 7
    assert frame.frame_index == 0


def test_8_bit_secondary_capture(tmp_path, write_dicom):
    values = (np.arange(32 * 32).reshape(32, 32) % 200 + 20).astype(np.uint8)
    path = write_dicom(tmp_path / "sc.dcm", values, modality="OT", sop_class=SecondaryCaptureImageStorage)

    np.testing.assert_array_equal(read_dicom(path).frames[0].pixels, normalize_to_uint8(values))


def test_signed_16_bit_non_ct_is_normalised(tmp_path, write_dicom):
    values = (mr_ramp().astype(np.int32) - 2000).astype(np.int16)
    path = write_dicom(tmp_path / "signed.dcm", values, bits_stored=16)

    np.testing.assert_array_equal(read_dicom(path).frames[0].pixels, normalize_to_uint8(values))


def test_monochrome1_is_inverted_after_conversion(tmp_path, write_dicom):
    values = mr_ramp()
    mono2 = read_dicom(write_dicom(tmp_path / "m2.dcm", values, bits_stored=12)).frames[0].pixels
    mono1_path = write_dicom(tmp_path / "m1.dcm", values, bits_stored=12, photometric="MONOCHROME1")

    mono1 = read_dicom(mono1_path).frames[0].pixels

    np.testing.assert_array_equal(mono1, 255 - mono2)
    assert mono1[0, 0] == 255  # the lowest stored value is white in MONOCHROME1


def test_monochrome1_ct_is_not_inverted_after_the_hu_window(tmp_path, write_dicom):
    # The fixed soft-tissue window already defines the display (air black); MONOCHROME1 only says how
    # a viewer would show the stored values, which the window replaces.
    hu = hu_quadrants()
    mono2 = read_dicom(write_ct(write_dicom, tmp_path / "m2.dcm", hu)).frames[0].pixels
    mono1_path = write_ct(write_dicom, tmp_path / "m1.dcm", hu, photometric="MONOCHROME1")

    mono1 = read_dicom(mono1_path).frames[0].pixels

    np.testing.assert_array_equal(mono1, mono2)
    np.testing.assert_array_equal(mono1, ct_to_uint8(hu))
    assert mono1[0, 31] == 0  # -500 HU (air-like) stays black


def test_rgb_becomes_luminance_in_rgb_channel_order(tmp_path, write_dicom):
    rgb = np.zeros((32, 32, 3), dtype=np.uint8)
    rgb[:, :16, 0] = 255  # left half pure red (luminance 76)
    rgb[:, 16:, 2] = 255  # right half pure blue (luminance 29)
    path = write_dicom(tmp_path / "rgb.dcm", rgb, photometric="RGB", sop_class=SecondaryCaptureImageStorage)

    pixels = read_dicom(path).frames[0].pixels

    np.testing.assert_array_equal(pixels, normalize_to_uint8(to_gray(rgb)))
    assert (pixels[:, :16] == 255).all() and (pixels[:, 16:] == 0).all()  # red brighter than blue


def test_ybr_full_gives_the_same_gray_as_rgb(tmp_path, write_dicom):
    yy, xx = np.mgrid[0:32, 0:32]
    rgb = np.stack([xx * 8, yy * 8, 255 - xx * 4], axis=-1).astype(np.uint8)
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    rgb_path = write_dicom(tmp_path / "rgb.dcm", rgb, photometric="RGB")
    ybr_path = write_dicom(tmp_path / "ybr.dcm", ybr, photometric="YBR_FULL")

    from_rgb = read_dicom(rgb_path).frames[0].pixels.astype(int)
    from_ybr = read_dicom(ybr_path).frames[0].pixels.astype(int)

    assert np.abs(from_rgb - from_ybr).max() <= 3  # colour-space round trip rounding only


def test_palette_color_is_expanded_through_its_lut():
    frame = read_dicom(bundled("examples_palette.dcm")).frames[0]

    assert frame.pixels.shape == (350, 800)
    assert frame.pixels.min() == 0 and frame.pixels.max() == 255


# --- file structure and encodings ----------------------------------------------------------------


def test_file_without_preamble_or_meta_is_read_as_implicit_little_endian(tmp_path, build_dicom):
    values = mr_ramp()
    ds = build_dicom(values, bits_stored=12)
    del ds.file_meta
    path = tmp_path / "raw_dataset"  # no extension either, as on many PACS exports
    dcmwrite(path, ds, implicit_vr=True, little_endian=True)
    assert path.read_bytes()[128:132] != b"DICM"

    instance = read_dicom(path)

    np.testing.assert_array_equal(instance.frames[0].pixels, normalize_to_uint8(values))
    assert instance.study_uid == ds.StudyInstanceUID


def test_big_endian_dataset_without_meta_is_parsed_and_named():
    # Explicit VR big endian, no preamble, no file meta: an RT Ion Plan, refused by name.
    reason = rejection(bundled("ExplVR_BigEndNoMeta.dcm"))

    assert reason == "RT Ion Plan Storage (1.2.840.10008.5.1.4.1.1.481.8) is not an image"


def test_multi_frame_file_gives_one_frame_per_frame(tmp_path, write_dicom):
    stack = np.stack([mr_ramp(), mr_ramp()[::-1], mr_ramp()[:, ::-1]])
    path = write_dicom(
        tmp_path / "cine.dcm",
        stack,
        bits_stored=12,
        ImagePositionPatient=[0, 0, 5],
        ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
    )

    frames = read_dicom(path).frames

    assert [f.frame_index for f in frames] == [0, 1, 2]
    for frame, values in zip(frames, stack, strict=True):
        np.testing.assert_array_equal(frame.pixels, normalize_to_uint8(values))
    # One top-level position cannot describe three frames, so none is reported.
    assert all(f.slice_location_mm is None for f in frames)
    # The orientation, however, is the plane of every frame.
    assert all(f.orientation == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0) for f in frames)


def test_enhanced_multi_frame_uses_functional_groups(tmp_path, write_dicom):
    def item(**values) -> Dataset:
        ds = Dataset()
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        return ds

    shared = item(
        PlaneOrientationSequence=[item(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])],
        PixelMeasuresSequence=[item(PixelSpacing=[0.8, 0.6], SliceThickness=5)],
        PixelValueTransformationSequence=[item(RescaleIntercept=-1024, RescaleSlope=1, RescaleType="HU")],
    )
    per_frame = [item(PlanePositionSequence=[item(ImagePositionPatient=[0, 0, z])]) for z in (10, 5, 0)]
    hu = hu_quadrants()
    path = write_dicom(
        tmp_path / "enhanced.dcm",
        np.stack([hu + 1024] * 3).astype(np.int16),
        modality="CT",
        sop_class=EnhancedCTImageStorage,
        SharedFunctionalGroupsSequence=[shared],
        PerFrameFunctionalGroupsSequence=per_frame,
    )

    frames = read_dicom(path).frames

    assert [f.slice_location_mm for f in frames] == [10.0, 5.0, 0.0]  # stored order is kept
    assert all(f.pixel_spacing_mm == (0.8, 0.6) for f in frames)
    assert all(f.orientation == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0) for f in frames)
    np.testing.assert_array_equal(frames[2].pixels, ct_to_uint8(hu))


def test_enhanced_per_frame_orientation_overrides_the_shared_one(tmp_path, write_dicom):
    def item(**values) -> Dataset:
        ds = Dataset()
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        return ds

    shared = item(PlaneOrientationSequence=[item(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])])
    per_frame = [
        item(PlaneOrientationSequence=[item(ImageOrientationPatient=[1, 0, 0, 0, 0, -1])]),
        item(),
    ]
    path = write_dicom(
        tmp_path / "enhanced.dcm",
        np.stack([mr_ramp()] * 2),
        bits_stored=12,
        SharedFunctionalGroupsSequence=[shared],
        PerFrameFunctionalGroupsSequence=per_frame,
        # A stray top-level value must not win over the functional groups.
        ImageOrientationPatient=[0, 1, 0, 0, 0, -1],
    )

    frames = read_dicom(path).frames

    assert frames[0].orientation == (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    assert frames[1].orientation == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless, JPEGLSLossless], ids=lambda s: s.name)
def test_compressed_ct_decodes_to_the_uncompressed_result(tmp_path, write_dicom, syntax):
    hu = np.linspace(-400, 400, 32 * 32).reshape(32, 32).astype(np.int32)
    plain = read_dicom(write_ct(write_dicom, tmp_path / "plain.dcm", hu)).frames[0].pixels
    path = write_ct(write_dicom, tmp_path / "packed.dcm", hu, compress=syntax)

    np.testing.assert_array_equal(read_dicom(path).frames[0].pixels, plain)


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
        "MR_small_padded.dcm",
    ],
)
def test_bundled_mr_encodings_match_the_explicit_little_endian_original(name):
    reference = read_dicom(bundled("MR_small.dcm")).frames[0]

    frame = read_dicom(bundled(name)).frames[0]

    np.testing.assert_array_equal(frame.pixels, reference.pixels)
    assert frame.pixel_spacing_mm == pytest.approx((0.3125, 0.3125))


@pytest.mark.parametrize(
    "name", ["SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_jpeg_gdcm.dcm", "SC_ybr_full_422_uncompressed.dcm"]
)
def test_bundled_jpeg_and_ybr_files_match_the_lossless_rgb_original(name):
    # JPEG baseline (YBR), JPEG lossless and uncompressed YBR 4:2:2 versions of one RGB picture.
    reference = read_dicom(bundled("SC_rgb_rle.dcm")).frames[0].pixels.astype(int)

    pixels = read_dicom(bundled(name)).frames[0].pixels.astype(int)

    assert pixels.shape == (100, 100)
    assert np.abs(pixels - reference).max() <= 3


def test_deflated_file_is_inflated():
    path = bundled("image_dfl.dcm")

    frame = read_dicom(path).frames[0]

    assert frame.pixels.shape == (512, 512)
    assert len(np.unique(frame.pixels)) == 24  # the grey-level test pattern, not a flat fill
    np.testing.assert_array_equal(frame.pixels, normalize_to_uint8(dcmread(path).pixel_array))


def test_bundled_multi_frame_jpeg_ultrasound():
    instance = read_dicom(bundled("examples_ybr_color.dcm"))

    assert len(instance.frames) == 30
    assert [f.frame_index for f in instance.frames] == list(range(30))
    assert not np.array_equal(instance.frames[0].pixels, instance.frames[29].pixels)


def test_without_pixels_every_frame_is_decoded_but_only_its_shape_kept():
    path = bundled("examples_ybr_color.dcm")
    kept = read_dicom(path).frames

    light = read_dicom(path, keep_pixels=False).frames

    assert len(light) == 30
    for light_frame, kept_frame in zip(light, kept, strict=True):
        assert light_frame.shape == kept_frame.shape == kept_frame.pixels.shape
        assert light_frame.pixels.shape == (0, 0) and light_frame.pixels.dtype == np.uint8
        assert (light_frame.frame_index, light_frame.sop_instance_uid) == (
            kept_frame.frame_index,
            kept_frame.sop_instance_uid,
        )


def test_without_pixels_damaged_pixel_data_is_still_rejected():
    reason = rejection(bundled("MR_truncated.dcm"))

    with pytest.raises(InputRejected) as caught:
        read_dicom(bundled("MR_truncated.dcm"), keep_pixels=False)

    assert caught.value.reason == reason


# --- header values -------------------------------------------------------------------------------


def test_header_values_for_grouping(tmp_path, write_dicom):
    path = write_dicom(tmp_path / "a.dcm", mr_ramp(), sop_instance_uid="1.2.3.4.5")

    instance = read_dicom(path)

    assert instance.sop_instance_uid == "1.2.3.4.5"
    assert instance.frames[0].sop_instance_uid == "1.2.3.4.5"
    assert instance.study_uid == "1.2.826.0.1.3680043.2.1125.1"
    assert instance.series_uid == "1.2.826.0.1.3680043.2.1125.1.1"
    assert (instance.patient_id, instance.accession_number) == ("PAT-1", "ACC-1")
    assert (instance.study_description, instance.series_description) == ("Test study", "MR series")


def test_pixel_spacing_then_imager_pixel_spacing(tmp_path, write_dicom):
    both = write_dicom(tmp_path / "a.dcm", mr_ramp(), PixelSpacing=[0.5, 0.7], ImagerPixelSpacing=[0.2, 0.2])
    imager = write_dicom(tmp_path / "b.dcm", mr_ramp(), ImagerPixelSpacing=[0.14, 0.15])
    neither = write_dicom(tmp_path / "c.dcm", mr_ramp())

    assert read_dicom(both).frames[0].pixel_spacing_mm == (0.5, 0.7)
    assert read_dicom(imager).frames[0].pixel_spacing_mm == (0.14, 0.15)
    assert read_dicom(neither).frames[0].pixel_spacing_mm is None


def test_slice_location_is_position_along_the_normal(tmp_path, write_dicom):
    # Sagittal: rows along +y, columns along -z, so the normal is -x.
    sagittal = write_dicom(
        tmp_path / "sag.dcm",
        mr_ramp(),
        ImagePositionPatient=[12.5, -30, 40],
        ImageOrientationPatient=[0, 1, 0, 0, 0, -1],
        SliceLocation=99,
    )
    only_slice_location = write_dicom(tmp_path / "sl.dcm", mr_ramp(), SliceLocation=-7.25)

    assert read_dicom(sagittal).frames[0].slice_location_mm == pytest.approx(-12.5)
    assert read_dicom(only_slice_location).frames[0].slice_location_mm == -7.25


def test_ct_orientation_is_read_from_the_file(tmp_path, write_dicom):
    iop = [0.99985, 0.0174524, 0, -0.0174524, 0.99985, 0]  # axial, tilted by 1 degree
    with_iop = write_ct(write_dicom, tmp_path / "ct.dcm", hu_quadrants(), ImageOrientationPatient=iop)
    without = write_ct(write_dicom, tmp_path / "plain.dcm", hu_quadrants())
    malformed = write_ct(
        write_dicom, tmp_path / "bad.dcm", hu_quadrants(), ImageOrientationPatient=[1, 0, 0, 0, 1]
    )

    orientation = read_dicom(with_iop).frames[0].orientation

    assert orientation == pytest.approx(tuple(iop))
    assert isinstance(orientation, tuple) and all(isinstance(v, float) for v in orientation)
    assert patient_directions(orientation) == ("right", "anterior")
    assert read_dicom(without).frames[0].orientation is None
    assert read_dicom(malformed).frames[0].orientation is None  # five values: not an orientation


# --- rejections ----------------------------------------------------------------------------------


def test_truncated_pixel_data_is_rejected(tmp_path, build_dicom):
    ds = build_dicom(mr_ramp(), bits_stored=12)
    ds.PixelData = ds.PixelData[:-100]
    path = tmp_path / "short.dcm"
    dcmwrite(path, ds, enforce_file_format=True)

    reason = rejection(path)

    assert reason.startswith("pixel data cannot be decoded: The number of bytes of pixel data is less")


def test_file_cut_short_is_rejected(tmp_path, write_dicom):
    path = write_dicom(tmp_path / "cut.dcm", mr_ramp(), bits_stored=12)
    path.write_bytes(path.read_bytes()[:-1000])

    assert rejection(path).startswith("pixel data cannot be decoded:")


def test_bundled_truncated_mr_is_rejected():
    assert rejection(bundled("MR_truncated.dcm")).startswith("pixel data cannot be decoded:")


def test_undecodable_jpeg_reports_the_decoder_message():
    # 12-bit JPEG Extended that neither pylibjpeg nor Pillow can decode.
    reason = rejection(bundled("JPEG-lossy.dcm"))

    assert reason.startswith("pixel data cannot be decoded:")
    assert "pylibjpeg" in reason and "\n" not in reason


def test_transfer_syntax_without_decoder_is_named(tmp_path, build_dicom):
    ds = build_dicom(np.zeros((32, 32), dtype=np.uint8))
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(200)])
    path = tmp_path / "video.dcm"
    dcmwrite(path, ds, enforce_file_format=True)

    reason = rejection(path)

    assert reason == (
        "the transfer syntax MPEG2 Main Profile / Main Level (1.2.840.10008.1.2.4.100) "
        "is not supported: no decoder exists for it"
    )


def test_image_sop_class_without_pixel_data(tmp_path, write_dicom):
    path = write_dicom(tmp_path / "nopix.dcm", None, sop_class=CTImageStorage, modality="CT")

    assert rejection(path) == (
        "no pixel data: this CT Image Storage (1.2.840.10008.5.1.4.1.1.2) file holds no image"
    )


def test_rejection_carries_the_study_and_series_of_a_readable_header(tmp_path, build_dicom, write_dicom):
    study, series = "1.2.826.0.1.3680043.2.1125.7", "1.2.826.0.1.3680043.2.1125.7.3"
    ds = build_dicom(mr_ramp(), bits_stored=12, study_uid=study, series_uid=series)
    ds.PixelData = ds.PixelData[:-100]
    truncated = tmp_path / "short.dcm"
    dcmwrite(truncated, ds, enforce_file_format=True)
    no_pixels = write_dicom(tmp_path / "nopix.dcm", None, study_uid=study, series_uid=series)
    small = write_dicom(tmp_path / "small.dcm", mr_ramp(), study_uid=study, series_uid=series)
    no_uids = build_dicom(None)
    del no_uids.StudyInstanceUID, no_uids.SeriesInstanceUID
    anonymous = tmp_path / "anonymous.dcm"
    dcmwrite(anonymous, no_uids, enforce_file_format=True)
    text = tmp_path / "notes.dcm"
    text.write_text("Please scan the left knee too.\n")

    def uids(path: Path, limits: LoadLimits | None = None) -> tuple[str | None, str | None]:
        with pytest.raises(InputRejected) as caught:
            read_dicom(path, limits or LoadLimits())
        return caught.value.study_uid, caught.value.series_uid

    assert uids(truncated) == (study, series)
    assert uids(no_pixels) == (study, series)
    assert uids(small, LoadLimits(min_side=64)) == (study, series)
    assert uids(anonymous) == (None, None)
    assert uids(text) == (None, None)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("rtplan.dcm", "RT Plan Storage (1.2.840.10008.5.1.4.1.1.481.5) is not an image"),
        ("test-SR.dcm", "Comprehensive SR Storage (1.2.840.10008.5.1.4.1.1.88.33) is not an image"),
        ("rtstruct.dcm", "RT Structure Set Storage (1.2.840.10008.5.1.4.1.1.481.3) is not an image"),
        ("waveform_ecg.dcm", "12-lead ECG Waveform Storage (1.2.840.10008.5.1.4.1.1.9.1.1) is not an image"),
    ],
)
def test_non_image_sop_classes_are_refused_by_name(name, reason):
    assert rejection(bundled(name)) == reason


def test_dicomdir_is_refused_by_its_media_storage_sop_class(tmp_path, build_dicom):
    ds = build_dicom(None)
    del ds.SOPClassUID
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    path = tmp_path / "DICOMDIR"
    dcmwrite(path, ds, enforce_file_format=True)

    assert rejection(path) == "Media Storage Directory Storage (1.2.840.10008.1.3.10) is not an image"


@pytest.mark.parametrize(
    "content",
    [b"Patient list\nname;age\nDoe;42\n", b"PK\x03\x04" + bytes(300), b"", bytes(200)],
    ids=["text", "zip", "empty", "zeros"],
)
def test_files_that_are_not_dicom(tmp_path, content):
    path = tmp_path / "renamed.dcm"
    path.write_bytes(content)

    assert rejection(path) == "not a DICOM file"


def test_size_limits(tmp_path, write_dicom):
    tiny = write_dicom(tmp_path / "tiny.dcm", np.zeros((1, 1), dtype=np.uint16))
    narrow = write_dicom(tmp_path / "narrow.dcm", np.zeros((64, 8), dtype=np.uint16))
    normal = write_dicom(tmp_path / "normal.dcm", np.zeros((16, 16), dtype=np.uint16))

    assert rejection(tiny) == "image too small (1x1); the minimum side is 16 px"
    assert rejection(narrow) == "image too small (8x64); the minimum side is 16 px"
    assert rejection(normal, LoadLimits(max_pixels=100)) == (
        "image too large (16x16 = 256 pixels); the maximum is 100 pixels per frame"
    )
    assert read_dicom(normal).frames[0].pixels.shape == (16, 16)


def test_input_rejected_message_and_pickling():
    error = InputRejected(Path("/data/x.dcm"), "not a DICOM file")

    copy = pickle.loads(pickle.dumps(error))

    assert str(error) == "/data/x.dcm: not a DICOM file"
    assert (copy.path, copy.reason, str(copy)) == (error.path, error.reason, str(error))
    assert (copy.study_uid, copy.series_uid) == (None, None)

    with_uids = pickle.loads(
        pickle.dumps(InputRejected(Path("/data/y.dcm"), "too small", "1.2.3", "1.2.3.4"))
    )
    assert (with_uids.reason, with_uids.study_uid, with_uids.series_uid) == ("too small", "1.2.3", "1.2.3.4")
