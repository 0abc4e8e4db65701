"""Synthetic studies for the reporter: a request, its ROI crops, the truth, and a faithful answer.

Each example is what the report task would hand a language model for a whole study (a CT volume, or
a batch of inspected parts), built from the generator's ground truth as a perfect detector and
segmenter would report it. The answer is what a careful reader writes: the given findings copied
(index, label, longest size), each described from its crop (polarity and conspicuity are read off
the pixels, so the model must look), and an impression consistent with the counts. It trains our
own small VLM and is the held-out truth its reports are scored against.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import cv2
import numpy as np

from models.domains import domain_spec
from models.preprocess import ct_to_uint8
from models.reporter.chat import ChatMessage
from models.reporter.config import CropSettings
from models.reporter.crops import CropRegion, RoiCrop, roi_crops
from models.reporter.prompts import build_messages, load_prompt, longest_mm, totals_phrase
from models.reporter.schema import FindingInput, ReportRequest
from models.synthetic import MIN_SECTION_PX, ct_volume, generator_spec, mask_box, surface_image

CT_SLICES = 8  # the demo CT series' length
SLAB_MM = 5.0  # the generator's slice spacing
MAX_PARTS = 3  # parts per inspection batch
# A finding is "distinct" when its mean differs from its surroundings by this many noise SDs.
DISTINCT_CNR = 2.0
# Size bands a report must agree with the truth on (longest dimension, mm).
SIZE_BANDS_MM = (10.0, 20.0, 30.0)


@dataclass(frozen=True)
class Appearance:
    """What a finding looks like in its crop, measured on the pixels the model sees."""

    bright: bool  # brighter than its surroundings (hyperdense); else darker (hypodense)
    distinct: bool  # contrast-to-noise ratio at least DISTINCT_CNR

    def words(self, domain: str) -> str:
        """'distinct hypodense' (medical) or 'faint dark' (industrial)."""
        strength = "distinct" if self.distinct else ("subtle" if domain == "medical" else "faint")
        if domain == "medical":
            return f"{strength} {'hyperdense' if self.bright else 'hypodense'}"
        return f"{strength} {'bright' if self.bright else 'dark'}"


@dataclass(frozen=True)
class ReporterExample:
    """One study: the request and crops a reporter gets, the truth per finding, the faithful answer."""

    request: ReportRequest
    crops: tuple[RoiCrop, ...]
    appearances: dict[int, Appearance]  # by finding index, for the findings with a crop
    answer: str

    def messages(self) -> list[ChatMessage]:
        """The chat the report task sends a model for this study (its domain's current prompt)."""
        return build_messages(self.request, list(self.crops), load_prompt(self.request.domain))


def measure_appearance(image: np.ndarray, mask: np.ndarray) -> Appearance:
    """Polarity and conspicuity of a masked finding against a ring of surroundings (uint8 pixels)."""
    inner = mask.astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    near = cv2.dilate(inner, kernel, iterations=2).astype(bool)
    ring = cv2.dilate(inner, kernel, iterations=6).astype(bool) & ~near
    pixels = image.astype(np.float32)
    inside, around = pixels[mask], pixels[ring]
    if inside.size == 0 or around.size == 0:
        raise ValueError("a finding needs pixels inside and around its mask")
    diff = float(inside.mean() - around.mean())
    noise = max(float(around.std()), 1.0)
    return Appearance(bright=diff > 0, distinct=abs(diff) / noise >= DISTINCT_CNR)


def size_band(longest: float | None) -> str:
    """The band of a longest dimension: '<10 mm', '10-20 mm', ..., or 'px' when not in mm."""
    if longest is None:
        return "px"
    edges = (0.0, *SIZE_BANDS_MM)
    for low, high in zip(edges, (*SIZE_BANDS_MM, float("inf")), strict=True):
        if longest < high:
            return f"{low:g}-{high:g} mm" if high != float("inf") else f">={low:g} mm"
    raise AssertionError("unreachable: the last band is open")


def _description(finding: FindingInput, look: Appearance | None, domain: str) -> str:
    # Location and measurements come into the report from the segmenter; the model says what it sees.
    # Without a crop (over the crop cap) it cannot see the finding, and says so.
    size = longest_mm(finding)
    what = finding.label + ("" if size is None else f", {size} mm")
    if look is None:
        return f"{what[0].upper()}{what[1:]}; no crop attached."
    return f"{look.words(domain).capitalize()} {what}."


def _impression(request: ReportRequest) -> str:
    # The totals as a sentence (an inspection's verdict, prompt v5): a careful reader restates them, and
    # recommends review of what was found.
    totals = totals_phrase(request, per_part=False)
    sentence = f"{totals[0].upper()}{totals[1:]}."
    if request.domain == "medical" and request.findings:
        return f"{sentence} Recommend radiologist review."
    return sentence


def faithful_answer(request: ReportRequest, appearances: dict[int, Appearance]) -> str:
    """The JSON answer (the prompts' schema) that states exactly the request's findings."""
    return json.dumps(
        {
            "finding_count": len(request.findings),
            "findings": [
                {
                    "index": f.index,
                    "label": f.label,
                    "longest_mm": longest_mm(f),
                    "description": _description(f, appearances.get(f.index), request.domain),
                }
                for f in request.findings
            ],
            "totals": totals_phrase(request),
            "impression": _impression(request),
        }
    )


def _example(
    request: ReportRequest,
    frames: list[np.ndarray],
    regions: list[CropRegion],
    looks: dict[int, Appearance],
    settings: CropSettings,
) -> ReporterExample:
    crops = tuple(roi_crops(frames, regions, settings)) if regions else ()
    seen = {c.finding_index: looks[c.finding_index] for c in crops}
    return ReporterExample(request, crops, seen, faithful_answer(request, seen))


def _score(rng: np.random.Generator) -> float:
    return round(float(rng.uniform(0.3, 0.99)), 3)


def _ct_example(rng: np.random.Generator, version: int, crops: CropSettings) -> ReporterExample:
    volume = ct_volume(rng, n_slices=CT_SLICES, spec=generator_spec(version).ct)
    frames = [ct_to_uint8(s) for s in volume.hounsfield]
    spacing = volume.pixel_spacing_mm
    lesions = []
    for k, sections in volume.lesion_sections().items():
        masks = {z: volume.lesion_labels[z] == k for z in sections}
        areas = {z: int(m.sum()) for z, m in masks.items()}
        key = max(areas, key=lambda z: areas[z])
        first, last = min(sections), max(sections)
        lesions.append((first, sections[key][0], k, key, masks, areas, last))
    findings, regions, looks = [], [], {}
    for index, (first, _x, _k, key, masks, areas, last) in enumerate(sorted(lesions), start=1):
        x1, y1, x2, y2 = mask_box(masks[key])
        count = last - first + 1
        findings.append(
            FindingInput(
                index=index,
                label="lesion",
                score=_score(rng),
                box=(x1, y1, x2, y2),
                slice_number=key + 1,
                patient_directions=("right", "anterior"),
                image_width=frames[key].shape[1],
                image_height=frames[key].shape[0],
                area_px=float(areas[key]),
                area_mm2=round(areas[key] * spacing**2, 1),
                width_mm=round((x2 - x1) * spacing, 1),
                height_mm=round((y2 - y1) * spacing, 1),
                slice_range=(first + 1, last + 1),
                slice_count=count,
                depth_mm=round(count * SLAB_MM, 2),
                volume_mm3=round(sum(areas.values()) * spacing**2 * SLAB_MM, 1),
            )
        )
        regions.append(CropRegion(index, key, (x1, y1, x2, y2), findings[-1].score))
        looks[index] = measure_appearance(frames[key], masks[key])
    request = ReportRequest(
        domain="medical",
        study_uid="synthetic",
        modality="CT",
        images_examined=CT_SLICES,
        findings=findings,
    )
    return _example(request, frames, regions, looks, crops)


_PART_NAMES = ("part-{:03d}.png", "IMG_{:04d}.png", "lot7_unit{:02d}.png", "cam2_{:05d}.tif")


def _part_example(rng: np.random.Generator, version: int, crops: CropSettings) -> ReporterExample:
    spec = generator_spec(version).surface
    labels = domain_spec("industrial").class_names
    pattern = _PART_NAMES[int(rng.integers(len(_PART_NAMES)))]
    first_number = int(rng.integers(1, 90))
    n_parts = int(rng.integers(1, MAX_PARTS + 1))
    names = [pattern.format(first_number + i) for i in range(n_parts)]
    frames: list[np.ndarray] = []
    findings: list[FindingInput] = []
    regions: list[CropRegion] = []
    looks: dict[int, Appearance] = {}
    for frame, name in enumerate(names):
        sample = surface_image(rng, spec=spec)
        frames.append(sample.image)
        for mask, class_id in zip(sample.masks, sample.class_ids, strict=True):
            if mask.sum() < MIN_SECTION_PX:
                continue
            index = len(findings) + 1
            box = mask_box(mask)
            findings.append(
                FindingInput(
                    index=index,
                    label=labels[class_id],
                    score=_score(rng),
                    box=box,
                    image_name=name,
                    image_width=sample.image.shape[1],
                    image_height=sample.image.shape[0],
                    area_px=float(mask.sum()),
                )
            )
            regions.append(CropRegion(index, frame, box, findings[-1].score))
            looks[index] = measure_appearance(sample.image, mask)
    request = ReportRequest(
        domain="industrial",
        study_uid="synthetic",
        images_examined=n_parts,
        image_names=names,
        findings=findings,
    )
    return _example(request, frames, regions, looks, crops)


def reporter_examples(
    domain: str, seed: int, count: int, *, version: int = 2, crops: CropSettings | None = None
) -> list[ReporterExample]:
    """``count`` seeded studies of ``domain`` (CT volumes or part batches) from generator ``version``."""
    make = {"medical": _ct_example, "industrial": _part_example}.get(domain)
    if make is None:
        raise ValueError(f"unknown domain {domain!r}")
    rng = np.random.default_rng(seed)
    settings = crops or CropSettings()
    return [make(rng, version, settings) for _ in range(count)]
