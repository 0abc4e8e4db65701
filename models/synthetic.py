"""Seeded generators of labelled training and demo data.

Two families: CT volumes in Hounsfield units with ellipsoid lesions (medical), and brushed-metal
surfaces with scratch / dent / crack defects (industrial). Every sample carries instance masks,
class ids and tight boxes, so detector and segmenter train on the same ground truth.

The same code draws every generator version; a version is a ``GeneratorSpec`` of ranges and
options. Version 1 is the original data (reproduced bit for bit: the v1 models were trained and
measured on it); version 2 is harder: smaller and fainter findings, more noise (correlated in CT),
up to five findings per image, a fixed share of images without any, contrast-filled vessels and
cortical bone in CT, a varied field of view, and 16-bit surface captures. Version 3 is version 2 with
a volume's lesions kept apart (in version 2 they may interpenetrate: one blob, two labels).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import cv2
import numpy as np

from models.preprocess import ct_to_uint8, normalize_to_uint8

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 (exclusive), pixels
# The held-out split of any model is drawn with the training seed plus this (never trained on); the
# detector trainer also picks its best epoch on it, and trainers record their final scores on it.
HELD_OUT_OFFSET = 10_000
# `argus evaluate`'s detector and segmenter split: the training seed plus this. No training step reads
# it, epoch selection included, so nothing about a model was chosen on the images it is scored on.
TEST_OFFSET = 20_000
# A lesion section smaller than this is not labelled as an instance (too small to see or to train on).
MIN_SECTION_PX = 6


Range = tuple[float, float]


@dataclass(frozen=True)
class CTSpec:
    """How CT volumes are drawn. Counts are per volume; HU values are Hounsfield units; ``None``
    switches an option off (version 1 had none of them)."""

    lesions: tuple[int, int]
    empty_share: float | None  # share of volumes without lesions; None: count uniform over the range
    lesion_radius_px: Range  # at 256 px
    contrast_hu: Range  # lesion minus liver, in magnitude
    noise_hu: Range  # standard deviation
    body_ry: Range
    body_rx: Range
    liver_hu: Range
    hu_range: Range  # values a scanner can store
    noise_blur_px: Range | None = None  # correlation length of the noise
    cortical_bone_hu: Range | None = None
    vessels: tuple[int, int] = (0, 0)  # contrast-filled vessels in the liver (not findings)
    fov_mm: Range | None = None  # reconstruction field of view; None: 380 mm
    integer_hu: bool = False
    # Lesions of a volume never interpenetrate (they may touch). Overlapping lesions add their
    # contrast and split one blob into labels no reader could tell apart (a lesion inside a lesion).
    lesions_apart: bool = False


@dataclass(frozen=True)
class SurfaceSpec:
    """How metal surfaces are drawn (grey levels of an 8-bit capture)."""

    defects: tuple[int, int]
    empty_share: float | None  # share of images without defects; None: count uniform over the range
    base_level: Range
    grain_sd: Range
    gradient: float  # largest illumination change across the image
    scratch_length: Range
    scratch_contrast: Range
    dent_radius: Range
    dent_depth: Range
    crack_darkening: Range  # a crack pixel's brightness as a fraction of its surroundings
    share_16bit: float = 0.0


@dataclass(frozen=True)
class GeneratorSpec:
    """One version of the synthetic data: the same code, other ranges."""

    version: int
    ct: CTSpec
    surface: SurfaceSpec


GENERATORS: dict[int, GeneratorSpec] = {
    1: GeneratorSpec(
        version=1,
        ct=CTSpec(
            lesions=(0, 3),
            empty_share=None,
            lesion_radius_px=(5, 18),
            contrast_hu=(40, 90),
            noise_hu=(8, 20),
            body_ry=(90, 110),
            body_rx=(110, 122),
            liver_hu=(50, 70),
            hu_range=(-1024, 3000),
        ),
        surface=SurfaceSpec(
            defects=(0, 3),
            empty_share=None,
            base_level=(95, 165),
            grain_sd=(3, 9),
            gradient=25,
            scratch_length=(35, 140),
            scratch_contrast=(45, 85),
            dent_radius=(7, 22),
            dent_depth=(55, 95),
            crack_darkening=(0.25, 0.5),
        ),
    ),
    2: GeneratorSpec(
        version=2,
        ct=CTSpec(
            lesions=(0, 5),
            empty_share=0.2,
            lesion_radius_px=(3.5, 20),
            contrast_hu=(20, 90),
            noise_hu=(6, 24),
            body_ry=(78, 112),
            body_rx=(95, 125),
            liver_hu=(40, 75),
            hu_range=(-1024, 3071),  # 12-bit CT with RescaleIntercept -1024
            noise_blur_px=(0.0, 1.2),
            cortical_bone_hu=(900, 1500),
            vessels=(0, 4),
            fov_mm=(320, 450),
            integer_hu=True,
        ),
        surface=SurfaceSpec(
            defects=(0, 5),
            empty_share=0.25,
            base_level=(60, 190),
            grain_sd=(3, 14),
            gradient=45,
            scratch_length=(20, 150),
            scratch_contrast=(25, 85),
            dent_radius=(6, 24),
            dent_depth=(35, 95),
            crack_darkening=(0.25, 0.65),
            share_16bit=0.3,
        ),
    ),
}
# Version 3: version 2 with CT lesions kept apart (surfaces as in version 2, sample for sample).
GENERATORS[3] = replace(GENERATORS[2], version=3, ct=replace(GENERATORS[2].ct, lesions_apart=True))
LATEST_GENERATOR = max(GENERATORS)


def generator_spec(version: int) -> GeneratorSpec:
    """The spec of a generator version, with a clear error for an unknown one."""
    try:
        return GENERATORS[version]
    except KeyError:
        raise ValueError(
            f"unknown generator version {version!r}; expected one of {sorted(GENERATORS)}"
        ) from None


@dataclass
class Sample:
    """One image with its instances: ``image`` is model-ready uint8 (H, W)."""

    image: np.ndarray
    masks: list[np.ndarray] = field(default_factory=list)  # bool (H, W) per instance
    class_ids: list[int] = field(default_factory=list)
    source: np.ndarray | None = None  # the pixels as captured when not 8-bit (uint16), else None

    @property
    def boxes(self) -> list[Box]:
        """Tight boxes around each instance mask."""
        return [mask_box(m) for m in self.masks]


@dataclass
class CTVolume:
    """A synthetic CT series: HU values (Z, H, W), lesion label map (0 = none, k = lesion k)."""

    hounsfield: np.ndarray
    lesion_labels: np.ndarray
    pixel_spacing_mm: float
    slice_thickness_mm: float

    def slice_sample(self, z: int) -> Sample:
        """Slice ``z`` as a model-ready sample, one instance per lesion visible in it."""
        labels = self.lesion_labels[z]
        masks = [labels == k for k in np.unique(labels) if k != 0 and (labels == k).sum() >= MIN_SECTION_PX]
        return Sample(image=ct_to_uint8(self.hounsfield[z]), masks=masks, class_ids=[0] * len(masks))

    def lesion_sections(self) -> dict[int, dict[int, Box]]:
        """Ground truth in 3-D: for each lesion label, the box of its section on each slice showing it."""
        sections: dict[int, dict[int, Box]] = {}
        for z, labels in enumerate(self.lesion_labels):
            for k in np.unique(labels):
                if k != 0 and (labels == k).sum() >= MIN_SECTION_PX:
                    sections.setdefault(int(k), {})[z] = mask_box(labels == k)
        return sections


def mask_box(mask: np.ndarray) -> Box:
    """Tight (x1, y1, x2, y2) box of a boolean mask, exclusive upper bounds."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise ValueError("empty mask has no box")
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _ellipse_field(shape: tuple[int, int], cy: float, cx: float, ry: float, rx: float, angle: float):
    """Normalized elliptical radius at each pixel (<= 1 inside the ellipse)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    cos, sin = np.cos(angle), np.sin(angle)
    dy, dx = yy - cy, xx - cx
    u = (dx * cos + dy * sin) / rx
    v = (-dx * sin + dy * cos) / ry
    return np.sqrt(u * u + v * v)


def ct_volume(
    rng: np.random.Generator, n_slices: int = 8, size: int = 256, spec: CTSpec | None = None
) -> CTVolume:
    """An abdominal-looking CT volume with lesions in the liver region, drawn as ``spec`` says
    (default: version 1)."""
    spec = spec or GENERATORS[1].ct
    shape = (size, size)
    s = size / 256.0
    hu = np.full((n_slices, size, size), -1000.0, dtype=np.float32)
    labels = np.zeros((n_slices, size, size), dtype=np.uint8)
    body_ry, body_rx = rng.uniform(*spec.body_ry) * s, rng.uniform(*spec.body_rx) * s
    body = _ellipse_field(shape, size / 2, size / 2, body_ry, body_rx, 0.0)
    liver_c = (size / 2 - rng.uniform(5, 25) * s, size / 2 - rng.uniform(25, 45) * s)
    liver_r = (rng.uniform(45, 60) * s, rng.uniform(50, 70) * s)
    liver = _ellipse_field(shape, *liver_c, *liver_r, rng.uniform(-0.4, 0.4))
    spine = _ellipse_field(shape, size / 2 + 65 * s, size / 2, 14 * s, 16 * s, 0.0)
    kidney = _ellipse_field(shape, size / 2 + 35 * s, size / 2 + 55 * s, 18 * s, 12 * s, 0.3)
    liver_hu = rng.uniform(*spec.liver_hu)
    base = np.where(body <= 1.0, -90.0, -1000.0)  # subcutaneous fat
    base = np.where(body <= 0.9, 35.0, base)  # muscle / soft tissue
    base = np.where(liver <= 1.0, liver_hu, base)
    base = np.where(kidney <= 1.0, 150.0, base)
    base = np.where(spine <= 1.0, 650.0, base)
    if spec.cortical_bone_hu is not None:
        # Cortical rim of the vertebra: the densest tissue, far above the soft-tissue window.
        base = np.where((spine <= 1.0) & (spine > 0.8), rng.uniform(*spec.cortical_bone_hu), base)
    for _ in range(_count(rng, spec.vessels)):
        # Contrast-filled vessels in the liver: bright round structures a detector must not call lesions.
        ang, rad = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.8)
        vy, vx = liver_c[0] + rad * liver_r[0] * np.sin(ang), liver_c[1] + rad * liver_r[1] * np.cos(ang)
        vr = rng.uniform(1.5, 4.0, 2) * s
        vessel = _ellipse_field(shape, vy, vx, vr[0], vr[1], 0.0)
        base = np.where((vessel <= 1.0) & (liver <= 1.0), liver_hu + rng.uniform(60, 140), base)
    base = cv2.GaussianBlur(base.astype(np.float32), (0, 0), 1.2 * s)

    count = _count(rng, spec.lesions, spec.empty_share)
    lesions = _place_lesions(
        lambda: _lesion(rng, spec, liver_c, liver_r, s, n_slices), count, spec.lesions_apart
    )

    noise_sd = rng.uniform(*spec.noise_hu)
    noise_blur = rng.uniform(*spec.noise_blur_px) if spec.noise_blur_px is not None else 0.0
    for z in range(n_slices):
        sl = base.copy()
        for k, lesion in enumerate(lesions, start=1):
            field_ = _lesion_field(shape, lesion, z)
            if field_ is None:
                continue
            inside = field_ <= 1.0
            if inside.sum() < 6:
                continue
            # Soft edge so the boundary is realistic but the mask stays well defined.
            weight = np.clip((1.15 - field_) / 0.3, 0.0, 1.0)
            sl = sl + lesion.contrast * weight
            labels[z][inside & (labels[z] == 0)] = k
        sl = sl + _noise(rng, shape, noise_sd, noise_blur)
        hu[z] = np.clip(sl, *spec.hu_range)
    if spec.integer_hu:
        hu = np.rint(hu)  # what a scanner stores: whole HU (RescaleSlope 1)
    fov = rng.uniform(*spec.fov_mm) if spec.fov_mm is not None else 380.0
    return CTVolume(hu, labels, pixel_spacing_mm=round(fov / size, 3), slice_thickness_mm=5.0)


class Lesion(NamedTuple):
    """An ellipsoid lesion of a volume: centre and half-extent in slices, centre and radii in pixels."""

    cz: float
    rz: float
    cy: float
    cx: float
    ry: float
    rx: float
    contrast: float  # HU added to the liver


PLACEMENT_ATTEMPTS = 20


def _lesion(
    rng: np.random.Generator,
    spec: CTSpec,
    liver_c: tuple[float, float],
    liver_r: tuple[float, float],
    s: float,
    n_slices: int,
) -> Lesion:
    """One lesion in the liver; radii span small (~5 mm) to large (~30 mm)."""
    ang, rad = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.7)
    cy = liver_c[0] + rad * liver_r[0] * np.sin(ang)
    cx = liver_c[1] + rad * liver_r[1] * np.cos(ang)
    r = rng.uniform(*spec.lesion_radius_px) * s
    rz = rng.uniform(1.0, max(1.5, n_slices / 3))
    cz = rng.uniform(0, n_slices - 1)
    sign = -1.0 if rng.random() < 0.75 else 1.0  # most liver lesions are hypodense
    return Lesion(cz, rz, cy, cx, r, r * rng.uniform(0.7, 1.3), sign * rng.uniform(*spec.contrast_hu))


def _place_lesions(draw: Callable[[], Lesion], count: int, apart: bool) -> list[Lesion]:
    """``count`` lesions from ``draw``. With ``apart`` one that would intersect an earlier lesion is
    drawn again, up to ``PLACEMENT_ATTEMPTS`` times, then left out (a crowded liver holds fewer)."""
    lesions: list[Lesion] = []
    for _ in range(count):
        for _attempt in range(PLACEMENT_ATTEMPTS if apart else 1):
            lesion = draw()
            if not apart or not any(_intersect(lesion, other) for other in lesions):
                lesions.append(lesion)
                break
    return lesions


def _lesion_field(shape: tuple[int, int], lesion: Lesion, z: int) -> np.ndarray | None:
    """The normalized elliptical radius of a lesion's section on slice ``z`` (<= 1 inside), None
    where the slice misses the lesion."""
    cz, rz, cy, cx, ry, rx, _ = lesion
    dz = (z - cz) / rz
    if abs(dz) >= 1.0:
        return None
    scale = np.sqrt(1 - dz * dz)
    return _ellipse_field(shape, cy, cx, ry * scale, rx * scale, 0.0)


def _intersect(a: Lesion, b: Lesion) -> bool:
    """Whether two lesions may share a voxel: their slice ranges meet and their centres lie closer in
    plane than their largest radii together (conservative for ellipses: touching is allowed)."""
    if abs(a.cz - b.cz) >= a.rz + b.rz:
        return False
    return bool(np.hypot(a.cy - b.cy, a.cx - b.cx) < max(a.ry, a.rx) + max(b.ry, b.rx))


def _count(rng: np.random.Generator, count_range: tuple[int, int], empty_share: float | None = None) -> int:
    """How many findings: uniform over ``count_range``, or none with probability ``empty_share`` and
    else uniform over the non-zero part of the range."""
    low, high = count_range
    if empty_share is None:
        return int(rng.integers(low, high + 1))
    if rng.random() < empty_share:
        return 0
    return int(rng.integers(max(low, 1), high + 1))


def _noise(rng: np.random.Generator, shape: tuple[int, int], sd: float, blur: float) -> np.ndarray:
    """Gaussian noise of standard deviation ``sd``; spatially correlated (as CT noise is, after
    reconstruction) when ``blur`` > 0, rescaled so blurring does not lower its amplitude."""
    noise = rng.normal(0, sd, shape).astype(np.float32)
    if blur <= 0:
        return noise
    smooth = cv2.GaussianBlur(noise, (0, 0), blur)
    return smooth * np.float32(sd / max(float(smooth.std()), 1e-6))


def ct_slices(seed: int, count: int, size: int = 256, spec: CTSpec | None = None) -> list[Sample]:
    """``count`` CT slice samples drawn from seeded volumes (a few slices per volume)."""
    rng = np.random.default_rng(seed)
    out: list[Sample] = []
    while len(out) < count:
        vol = ct_volume(rng, n_slices=6, size=size, spec=spec)
        for z in rng.permutation(6)[:3]:
            out.append(vol.slice_sample(int(z)))
    return out[:count]


def _metal_background(rng: np.random.Generator, size: int, spec: SurfaceSpec) -> np.ndarray:
    """Brushed metal: directional streaks, grain noise and an illumination gradient."""
    base = rng.uniform(*spec.base_level)
    streaks = rng.normal(0, 1, (size, size)).astype(np.float32)
    streaks = cv2.GaussianBlur(streaks, (0, 0), sigmaX=25, sigmaY=0.6) * rng.uniform(40, 90)
    angle = rng.choice([0.0, 90.0, rng.uniform(0, 180)])
    rot = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
    streaks = np.asarray(
        cv2.warpAffine(streaks, rot, (size, size), borderMode=cv2.BORDER_REFLECT), np.float32
    )
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    g = spec.gradient
    gradient = (rng.uniform(-g, g) * xx + rng.uniform(-g, g) * yy).astype(np.float32)
    grain = rng.normal(0, rng.uniform(*spec.grain_sd), (size, size)).astype(np.float32)
    return base + streaks + gradient + grain


def _scratch(rng: np.random.Generator, size: int, spec: SurfaceSpec) -> tuple[np.ndarray, float]:
    length = rng.uniform(*spec.scratch_length)
    angle = rng.uniform(0, np.pi)
    cx, cy = rng.uniform(0.2, 0.8, 2) * size
    dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
    bend = rng.uniform(-8, 8)
    pts = np.array(
        [[cx - dx, cy - dy], [cx - bend * np.sin(angle), cy + bend * np.cos(angle)], [cx + dx, cy + dy]],
        dtype=np.float32,
    )
    canvas = np.zeros((size, size), np.uint8)
    cv2.polylines(canvas, [np.rint(pts).astype(np.int32)], False, 255, int(rng.integers(1, 3)), cv2.LINE_AA)
    return canvas > 80, float(rng.choice([-1, 1]) * rng.uniform(*spec.scratch_contrast))


def _dent(rng: np.random.Generator, size: int, spec: SurfaceSpec) -> tuple[np.ndarray, np.ndarray]:
    r = rng.uniform(*spec.dent_radius)
    cy, cx = rng.uniform(r + 4, size - r - 4, 2)
    field_ = _ellipse_field((size, size), cy, cx, r, r * rng.uniform(0.75, 1.3), rng.uniform(0, np.pi))
    inside = field_ <= 1.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    light = rng.uniform(0, 2 * np.pi)
    # A dent is a shallow bowl: lit on one side, shadowed on the other.
    shade = ((xx - cx) * np.cos(light) + (yy - cy) * np.sin(light)) / r
    delta = np.where(inside, shade * rng.uniform(*spec.dent_depth) * (1 - field_**2) - 15, 0.0)
    return inside, delta.astype(np.float32)


def _crack(rng: np.random.Generator, size: int) -> np.ndarray:
    canvas = np.zeros((size, size), np.uint8)
    n = int(rng.integers(8, 18))
    start = rng.uniform(0.2, 0.8, 2) * size
    heading = rng.uniform(0, 2 * np.pi)
    pts = [start]
    for _ in range(n):
        heading += rng.normal(0, 0.6)
        step = rng.uniform(3, 7)
        pts.append(pts[-1] + step * np.array([np.cos(heading), np.sin(heading)]))
    path = np.clip(np.array(pts), 1, size - 2)
    cv2.polylines(canvas, [np.rint(path).astype(np.int32)], False, 255, int(rng.integers(1, 3)))
    # One side branch from the middle of the crack.
    mid = path[len(path) // 2]
    branch = [mid]
    bh = heading + rng.choice([-1, 1]) * rng.uniform(0.6, 1.2)
    for _ in range(int(rng.integers(3, 7))):
        bh += rng.normal(0, 0.5)
        branch.append(branch[-1] + rng.uniform(3, 6) * np.array([np.cos(bh), np.sin(bh)]))
    cv2.polylines(canvas, [np.rint(np.clip(branch, 1, size - 2)).astype(np.int32)], False, 255, 1)
    return canvas > 0


def surface_image(rng: np.random.Generator, size: int = 256, spec: SurfaceSpec | None = None) -> Sample:
    """A metal surface with defects (0 scratch, 1 dent, 2 crack), drawn as ``spec`` says (default:
    version 1). With ``spec.share_16bit``, that share of images is captured as 16-bit: ``source``
    holds the uint16 pixels and ``image`` what the image loader makes of them."""
    spec = spec or GENERATORS[1].surface
    img = _metal_background(rng, size, spec)
    masks: list[np.ndarray] = []
    class_ids: list[int] = []
    for _ in range(_count(rng, spec.defects, spec.empty_share)):
        kind = int(rng.integers(0, 3))
        if kind == 0:
            mask, contrast = _scratch(rng, size, spec)
            img = img + mask * contrast
        elif kind == 1:
            mask, delta = _dent(rng, size, spec)
            img = img + delta
        else:
            mask = _crack(rng, size)
            img = np.where(mask, img * rng.uniform(*spec.crack_darkening), img)
        if mask.sum() < 8:
            continue
        masks.append(mask)
        class_ids.append(kind)
    if spec.share_16bit > 0 and rng.random() < spec.share_16bit:
        # A 16-bit camera: the same scene at a random gain and offset (10 to 16 bits used).
        gain = 2.0 ** rng.uniform(2, 8)
        source = np.clip(np.rint(img * gain + rng.uniform(0, 2000)), 0, 65535).astype(np.uint16)
        return Sample(image=normalize_to_uint8(source), masks=masks, class_ids=class_ids, source=source)
    return Sample(image=np.clip(np.rint(img), 0, 255).astype(np.uint8), masks=masks, class_ids=class_ids)


def surface_images(seed: int, count: int, size: int = 256, spec: SurfaceSpec | None = None) -> list[Sample]:
    """``count`` seeded industrial surface samples."""
    rng = np.random.default_rng(seed)
    return [surface_image(rng, size, spec) for _ in range(count)]


def samples_for(domain: str, seed: int, count: int, size: int = 256, *, version: int = 1) -> list[Sample]:
    """Seeded samples of a domain (``medical`` or ``industrial``) from generator ``version``.

    Version 1 is the default: the data today's callers and the version-1 models were made with.
    """
    spec = generator_spec(version)
    if domain == "medical":
        return ct_slices(seed, count, size, spec.ct)
    if domain == "industrial":
        return surface_images(seed, count, size, spec.surface)
    raise ValueError(f"unknown domain {domain!r}")
