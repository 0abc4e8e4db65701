"""What a language model is given: capped ROI crops, versioned prompts, de-identified text."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from models.reporter.chat import IMAGE_SLOT, ChatMessage, message_parts
from models.reporter.config import CropSettings
from models.reporter.crops import CropRegion, crop_window, roi_crops
from models.reporter.deid import DATE_REMOVED, Deidentifier
from models.reporter.local_vlm import chat_turns
from models.reporter.prompts import build_messages, load_prompt

KEY = b"0123456789abcdef0123456789abcdef"


def test_crops_keep_the_best_findings_with_context_and_a_size_cap() -> None:
    frame = np.zeros((1000, 800), np.uint8)
    frame[400:600, 300:500] = 255  # the finding itself
    regions = [
        CropRegion(1, 0, (300, 400, 500, 600), 0.9),
        CropRegion(2, 0, (10, 10, 30, 30), 0.3),
        CropRegion(3, 0, (700, 900, 790, 990), 0.8),
    ]
    crops = roi_crops([frame], regions, CropSettings(max_crops=2, margin=0.25, max_side=150))
    assert [c.finding_index for c in crops] == [1, 3]  # the lowest score is dropped, order kept
    first = cv2.imdecode(np.frombuffer(crops[0].png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert crops[0].window == (250, 350, 550, 650)  # 25 % of 200 px on each side
    assert first.shape == (150, 150)  # 300 px window scaled to the 150 px cap
    assert first[75, 75] == 255 and first[5, 5] == 0  # the finding in the middle, context around it
    # Clipped at the image edge rather than padded.
    assert crop_window((700, 900, 790, 990), 800, 1000, 0.25) == (677, 877, 800, 1000)


def test_crop_of_a_missing_frame_names_the_finding() -> None:
    with pytest.raises(ValueError, match="finding #4 refers to frame 2, but the study has 1 frames"):
        roi_crops([np.zeros((64, 64), np.uint8)], [CropRegion(4, 2, (1, 1, 9, 9), 0.5)], CropSettings())


def test_prompts_are_versioned_per_domain_and_state_the_findings(medical_request: Any) -> None:
    medical, industrial = load_prompt("medical"), load_prompt("industrial")
    assert (medical.version, industrial.version) == ("medical-v4", "industrial-v5")
    system, user = build_messages(medical_request, [], medical)
    assert system.role == "system" and "radiology" in system.text
    assert (
        '{"index": 1, "label": "lesion", "longest_mm": 15.2,' in user.text
        and '"location": "right anterior image quadrant, slice 3"' in user.text
    )
    # What the findings add up to is computed, not left to the model.
    assert "found 2 finding(s). Totals: 2 lesions detected; largest 15.2 mm." in user.text
    # The output schema the parser reads, with the totals right before the impression.
    assert '"finding_count": <int>' in user.text
    assert '"totals": "<the Totals line>", "impression"' in user.text
    # Earlier versions still render, with the schema they were written for.
    earlier = build_messages(medical_request, [], load_prompt("medical", "v2"))[1].text
    assert "found 2 finding(s). Largest: 15.2 mm." in earlier and '"totals"' not in earlier
    assert medical_request.study_uid not in user.text  # only what the model needs
    with pytest.raises(ValueError, match=r"no prompt medical_v9\.txt"):
        load_prompt("medical", "v9")


def test_each_crop_follows_its_finding_in_every_backend_format(medical_request: Any) -> None:
    frames = [np.full((256, 256), 90, np.uint8)]
    regions = [CropRegion(f.index, 0, f.box, f.score) for f in medical_request.findings]
    crops = roi_crops(frames, regions, CropSettings(max_crops=1))  # the cap leaves finding 2 uncropped
    user = build_messages(medical_request, crops, load_prompt("medical"))[1]
    parts = message_parts(user)
    assert [type(p).__name__ for p in parts] == ["str", "RoiCrop", "str"]
    assert str(parts[0]).endswith('"crop": 1}') and '"index": 2' in str(parts[2])
    assert '"crop": null' in str(parts[2])
    turns = chat_turns([user])[0]["content"]
    assert [c["type"] for c in turns] == ["text", "image", "text"]
    with pytest.raises(ValueError, match="1 image slots for 0 images"):
        message_parts(ChatMessage("user", f"a{IMAGE_SLOT}b"))
    assert message_parts(ChatMessage("user", "text", tuple(crops))) == [crops[0], "text"]


def test_deidentifier_pseudonymizes_uids_and_ids_and_removes_dates() -> None:
    deid = Deidentifier(KEY, ["PAT-0042", "SMITH^ANNA", "ACC 991"])
    text = (
        "SMITH^ANNA (Anna Smith), ID PAT-0042, accession acc 991, born 19800214, "
        "seen 2024-03-05 and 05/03/2024, series 1.2.840.113619.2.55.3.604688119; "
        "lesion 12.5 x 8.0 mm on slice 12, score 0.91."
    )
    scrubbed = deid.scrub(text)
    for secret in ("SMITH", "ANNA", "Anna", "PAT-0042", "991", "19800214", "2024", "1.2.840.113619"):
        assert secret not in scrubbed, secret
    assert scrubbed.count(DATE_REMOVED) == 3
    assert "lesion 12.5 x 8.0 mm on slice 12, score 0.91." in scrubbed  # measurements untouched
    uid = deid.pseudonym("1.2.840.113619.2.55.3.604688119")
    assert uid.startswith("UID-") and uid in scrubbed
    # Stable for one key, different for another: pseudonyms cannot be recomputed without the key.
    assert Deidentifier(KEY).scrub(text).count(uid) == 1
    assert Deidentifier(b"another key of 32 bytes........").pseudonym("PAT-0042") != deid.pseudonym(
        "PAT-0042"
    )
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Deidentifier(b"short")
