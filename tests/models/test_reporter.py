from models.reporter import FindingInput, ReporterConfig, ReportRequest, TemplateReporter, get_reporter
from models.reporter.template import describe_location


def _finding(index: int, box: tuple[float, float, float, float], **kw: object) -> FindingInput:
    base = {"label": "lesion", "score": 0.91, "image_width": 256, "image_height": 256, "area_px": 120.0}
    return FindingInput(index=index, box=box, **(base | kw))  # type: ignore[arg-type]


def test_medical_report_states_every_finding_with_mm_and_location() -> None:
    request = ReportRequest(
        domain="medical",
        study_uid="1.2.3",
        modality="CT",
        images_examined=8,
        findings=[
            _finding(
                1,
                (40, 40, 60, 56),
                slice_number=3,
                patient_directions=("right", "anterior"),
                area_mm2=250.5,
                width_mm=29.7,
                height_mm=23.8,
            ),
            _finding(
                2,
                (200, 180, 212, 190),
                slice_number=5,
                patient_directions=("right", "anterior"),
                area_mm2=60.0,
                width_mm=17.8,
                height_mm=14.8,
            ),
        ],
    )
    report = TemplateReporter().generate(request)
    assert [f.index for f in report.findings] == [1, 2]
    assert report.findings[0].location == "right anterior image quadrant, slice 3"
    assert report.findings[1].location == "left posterior image quadrant, slice 5"
    assert "29.7 x 23.8 mm" in report.text and "area 250.5 mm2" in report.text
    assert report.impression.startswith("2 lesions detected; largest 29.7 x 23.8 mm")
    assert report.ai_generated and report.reporter == "template"


def test_industrial_report_without_findings_passes_part() -> None:
    names = ["a.png", "b.png", "c.png"]
    request = ReportRequest(
        domain="industrial", study_uid="2.25.1", images_examined=3, image_names=names, findings=[]
    )
    report = TemplateReporter().generate(request)
    assert report.findings == []
    assert report.impression == "No surface defect detected; all 3 parts pass visual inspection."
    assert "- None detected." in report.text


def test_industrial_locations_and_pixel_sizes() -> None:
    f = _finding(1, (10, 200, 30, 240), label="crack")
    assert describe_location(f, "industrial") == "lower left at (20, 220) px"
    named = _finding(2, (100, 100, 140, 140), label="dent", image_name="part-07.png")
    assert describe_location(named, "industrial") == "part-07.png, centre at (120, 120) px"
    request = ReportRequest(domain="industrial", study_uid="2.25.1", images_examined=1, findings=[f])
    report = get_reporter(ReporterConfig()).generate(request)
    assert "20 x 40 px, area 120 px" in report.text
    assert report.impression == "1 of 1 parts flagged for QC review: image (1 crack)."


def test_each_part_gets_its_own_verdict() -> None:
    findings = [
        _finding(1, (10, 10, 20, 20), label="crack", image_name="p1.png"),
        _finding(2, (50, 50, 60, 60), label="crack", image_name="p1.png"),
        _finding(3, (50, 50, 60, 60), label="dent", image_name="p3.png"),
    ]
    names = ["p1.png", "p2.png", "p3.png"]
    request = ReportRequest(
        domain="industrial", study_uid="2.25.9", images_examined=3, image_names=names, findings=findings
    )
    report = TemplateReporter().generate(request)
    assert report.impression == (
        "2 of 3 parts flagged for QC review: p1.png (2 cracks), p3.png (1 dent). Passed: p2.png."
    )


def test_a_finding_without_mask_is_not_given_a_made_up_size() -> None:
    from models.reporter.template import describe_size

    f = _finding(1, (10, 10, 30, 40), area_px=0.0)
    assert describe_size(f) == "detection box 20 x 30 px (segmentation found no mask to measure)"


def test_laterality_follows_the_orientation_and_is_never_guessed() -> None:
    box = (40.0, 40.0, 60.0, 56.0)  # image upper left
    prone = _finding(1, box, patient_directions=("left", "posterior"), slice_number=2)
    assert describe_location(prone, "medical") == "left posterior image quadrant, slice 2"
    coronal = _finding(1, box, patient_directions=("right", "superior"))
    assert describe_location(coronal, "medical") == "right superior image quadrant"
    unknown = _finding(1, (200.0, 200.0, 220.0, 220.0))
    assert describe_location(unknown, "medical") == "image lower right"


def test_limitations_are_stated_and_mark_the_impression() -> None:
    request = ReportRequest(
        domain="medical",
        study_uid="1.2",
        images_examined=7,
        findings=[],
        notes=["slice-004.dcm not analyzed: x"],
    )
    report = TemplateReporter().generate(request)
    assert report.limitations == ["slice-004.dcm not analyzed: x"]
    assert report.impression == "INCOMPLETE: 1 limitation(s), see above. No focal lesion detected."
    assert "Limitations:\n- slice-004.dcm not analyzed: x" in report.text


def test_a_lesion_in_a_volume_is_stated_once_with_slice_range_depth_and_volume() -> None:
    directions = ("right", "anterior")
    lesion = _finding(
        1,
        (40, 40, 60, 56),
        slice_number=4,
        patient_directions=directions,
        area_mm2=250.5,
        width_mm=29.7,
        height_mm=23.8,
        slice_range=(3, 6),
        slice_count=4,
        depth_mm=20.0,
        volume_mm3=3120.4,
    )
    small = _finding(2, (200, 180, 212, 190), slice_number=2, patient_directions=directions, area_mm2=900.0)
    small = small.model_copy(update={"width_mm": 35.0, "height_mm": 30.0, "slice_range": (2, 2)})
    small = small.model_copy(update={"slice_count": 1, "depth_mm": 5.0, "volume_mm3": 400.0})
    request = ReportRequest(domain="medical", study_uid="1.2.3", images_examined=8, findings=[lesion, small])
    report = TemplateReporter().generate(request)
    first, second = report.findings
    assert first.location == "right anterior image quadrant, slices 3-6 (largest on slice 4)"
    assert first.size == "29.7 x 23.8 x 20.0 mm, volume 3120 mm3"
    assert (first.slice_range, first.depth_mm, first.volume_mm3) == ((3, 6), 20.0, 3120.4)
    assert second.location == "left posterior image quadrant, slice 2"
    # The largest lesion is the one with the largest volume, not the largest section.
    assert report.impression.startswith("2 lesions detected; largest 29.7 x 23.8 x 20.0 mm, volume 3120 mm3")


def test_a_lesion_without_slice_positions_is_sized_in_slices_and_says_why() -> None:
    lesion = _finding(
        1,
        (40, 40, 60, 56),
        slice_number=4,
        width_mm=29.7,
        height_mm=23.8,
        area_mm2=250.5,
        slice_range=(3, 5),
        slice_count=3,
        geometry_note="slice positions missing: depth given in slices, no volume",
    )
    request = ReportRequest(domain="medical", study_uid="1.2.3", images_examined=8, findings=[lesion])
    (finding,) = TemplateReporter().generate(request).findings
    assert finding.size == (
        "29.7 x 23.8 mm over 3 slices (slice positions missing: depth given in slices, no volume)"
    )
    no_spacing = lesion.model_copy(update={"width_mm": None, "height_mm": None, "area_mm2": None})
    request = request.model_copy(update={"findings": [no_spacing]})
    assert TemplateReporter().generate(request).findings[0].size.startswith("20 x 16 px over 3 slices")


def test_confidence_in_the_text_is_the_detector_score_rounded_once() -> None:
    # 0.5449 rounded to 3 digits first (0.545) would print as 0.55; the CLI table prints 0.54.
    request = ReportRequest(
        domain="industrial",
        study_uid="1.2.3",
        images_examined=1,
        findings=[_finding(1, (10, 10, 30, 30), label="dent", score=0.5449, image_name="part.png")],
    )
    report = TemplateReporter().generate(request)
    assert "(confidence 0.54)" in report.text
    assert report.findings[0].score == 0.5449
