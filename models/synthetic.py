"""Seeded generators of labelled training and demo data.

Two families: CT volumes in Hounsfield units with ellipsoid lesions (medical), and brushed-metal
surfaces with scratch / dent / crack defects (industrial). Every sample carries instance masks,
class ids and tight boxes, so detector and segmenter train on the same ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from models.preprocess import ct_to_uint8

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 (exclusive), pixels
# A lesion section smaller than this is not labelled as an instance (too small to see or to train on).
MIN_SECTION_PX = 6


@dataclass
class Sample:
    """One image with its instances: ``image`` is model-ready uint8 (H, W)."""

    image: np.ndarray
    masks: list[np.ndarray] = field(default_factory=list)  # bool (H, W) per instance
    class_ids: list[int] = field(default_factory=list)

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


def ct_volume(rng: np.random.Generator, n_slices: int = 8, size: int = 256, max_lesions: int = 3) -> CTVolume:
    """An abdominal-looking CT volume with 0..max_lesions ellipsoid lesions in the liver region."""
    shape = (size, size)
    s = size / 256.0
    hu = np.full((n_slices, size, size), -1000.0, dtype=np.float32)
    labels = np.zeros((n_slices, size, size), dtype=np.uint8)
    body_ry, body_rx = rng.uniform(90, 110) * s, rng.uniform(110, 122) * s
    body = _ellipse_field(shape, size / 2, size / 2, body_ry, body_rx, 0.0)
    liver_c = (size / 2 - rng.uniform(5, 25) * s, size / 2 - rng.uniform(25, 45) * s)
    liver_r = (rng.uniform(45, 60) * s, rng.uniform(50, 70) * s)
    liver = _ellipse_field(shape, *liver_c, *liver_r, rng.uniform(-0.4, 0.4))
    spine = _ellipse_field(shape, size / 2 + 65 * s, size / 2, 14 * s, 16 * s, 0.0)
    kidney = _ellipse_field(shape, size / 2 + 35 * s, size / 2 + 55 * s, 18 * s, 12 * s, 0.3)
    liver_hu = rng.uniform(50, 70)
    base = np.where(body <= 1.0, -90.0, -1000.0)  # subcutaneous fat
    base = np.where(body <= 0.9, 35.0, base)  # muscle / soft tissue
    base = np.where(liver <= 1.0, liver_hu, base)
    base = np.where(kidney <= 1.0, 150.0, base)
    base = np.where(spine <= 1.0, 650.0, base)
    base = cv2.GaussianBlur(base.astype(np.float32), (0, 0), 1.2 * s)

    lesions = []
    n_lesions = int(rng.integers(0, max_lesions + 1))
    for _ in range(n_lesions):
        # Lesion centres inside the liver; radii span small (~5 mm) to large (~30 mm).
        ang, rad = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.7)
        cy = liver_c[0] + rad * liver_r[0] * np.sin(ang)
        cx = liver_c[1] + rad * liver_r[1] * np.cos(ang)
        r = rng.uniform(5, 18) * s
        rz = rng.uniform(1.0, max(1.5, n_slices / 3))
        cz = rng.uniform(0, n_slices - 1)
        sign = -1.0 if rng.random() < 0.75 else 1.0  # most liver lesions are hypodense
        lesions.append((cz, rz, cy, cx, r, r * rng.uniform(0.7, 1.3), sign * rng.uniform(40, 90)))

    noise_sd = rng.uniform(8, 20)
    for z in range(n_slices):
        sl = base.copy()
        for k, (cz, rz, cy, cx, ry, rx, contrast) in enumerate(lesions, start=1):
            dz = (z - cz) / rz
            if abs(dz) >= 1.0:
                continue
            scale = np.sqrt(1 - dz * dz)
            field_ = _ellipse_field(shape, cy, cx, ry * scale, rx * scale, 0.0)
            inside = field_ <= 1.0
            if inside.sum() < 6:
                continue
            # Soft edge so the boundary is realistic but the mask stays well defined.
            weight = np.clip((1.15 - field_) / 0.3, 0.0, 1.0)
            sl = sl + contrast * weight
            labels[z][inside & (labels[z] == 0)] = k
        sl = sl + rng.normal(0, noise_sd, shape).astype(np.float32)
        hu[z] = np.clip(sl, -1024, 3000)
    return CTVolume(hu, labels, pixel_spacing_mm=round(380.0 / size, 3), slice_thickness_mm=5.0)


def ct_slices(seed: int, count: int, size: int = 256) -> list[Sample]:
    """``count`` CT slice samples drawn from seeded volumes (a few slices per volume)."""
    rng = np.random.default_rng(seed)
    out: list[Sample] = []
    while len(out) < count:
        vol = ct_volume(rng, n_slices=6, size=size)
        for z in rng.permutation(6)[:3]:
            out.append(vol.slice_sample(int(z)))
    return out[:count]


def _metal_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Brushed metal: directional streaks, grain noise and an illumination gradient."""
    base = rng.uniform(95, 165)
    streaks = rng.normal(0, 1, (size, size)).astype(np.float32)
    streaks = cv2.GaussianBlur(streaks, (0, 0), sigmaX=25, sigmaY=0.6) * rng.uniform(40, 90)
    angle = rng.choice([0.0, 90.0, rng.uniform(0, 180)])
    rot = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
    streaks = np.asarray(
        cv2.warpAffine(streaks, rot, (size, size), borderMode=cv2.BORDER_REFLECT), np.float32
    )
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    gradient = (rng.uniform(-25, 25) * xx + rng.uniform(-25, 25) * yy).astype(np.float32)
    grain = rng.normal(0, rng.uniform(3, 9), (size, size)).astype(np.float32)
    return base + streaks + gradient + grain


def _scratch(rng: np.random.Generator, size: int) -> tuple[np.ndarray, float]:
    length = rng.uniform(35, 140)
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
    return canvas > 80, float(rng.choice([-1, 1]) * rng.uniform(45, 85))


def _dent(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    r = rng.uniform(7, 22)
    cy, cx = rng.uniform(r + 4, size - r - 4, 2)
    field_ = _ellipse_field((size, size), cy, cx, r, r * rng.uniform(0.75, 1.3), rng.uniform(0, np.pi))
    inside = field_ <= 1.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    light = rng.uniform(0, 2 * np.pi)
    # A dent is a shallow bowl: lit on one side, shadowed on the other.
    shade = ((xx - cx) * np.cos(light) + (yy - cy) * np.sin(light)) / r
    delta = np.where(inside, shade * rng.uniform(55, 95) * (1 - field_**2) - 15, 0.0)
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


def surface_image(rng: np.random.Generator, size: int = 256, max_defects: int = 3) -> Sample:
    """A metal surface with 0..max_defects defects: 0 scratch, 1 dent, 2 crack."""
    img = _metal_background(rng, size)
    masks: list[np.ndarray] = []
    class_ids: list[int] = []
    for _ in range(int(rng.integers(0, max_defects + 1))):
        kind = int(rng.integers(0, 3))
        if kind == 0:
            mask, contrast = _scratch(rng, size)
            img = img + mask * contrast
        elif kind == 1:
            mask, delta = _dent(rng, size)
            img = img + delta
        else:
            mask = _crack(rng, size)
            img = np.where(mask, img * rng.uniform(0.25, 0.5), img)
        if mask.sum() < 8:
            continue
        masks.append(mask)
        class_ids.append(kind)
    return Sample(image=np.clip(np.rint(img), 0, 255).astype(np.uint8), masks=masks, class_ids=class_ids)


def surface_images(seed: int, count: int, size: int = 256) -> list[Sample]:
    """``count`` seeded industrial surface samples."""
    rng = np.random.default_rng(seed)
    return [surface_image(rng, size) for _ in range(count)]


def samples_for(domain: str, seed: int, count: int, size: int = 256) -> list[Sample]:
    """Seeded samples of a domain (``medical`` or ``industrial``)."""
    if domain == "medical":
        return ct_slices(seed, count, size)
    if domain == "industrial":
        return surface_images(seed, count, size)
    raise ValueError(f"unknown domain {domain!r}")
