"""Series as volumes: link per-slice detections into 3-D lesions and measure them (pure, no Prefect).

A CT/MR series is a stack of slices. The detector sees one slice at a time, so a lesion crossing four
slices comes back as four boxes. Here those boxes are linked into one lesion per label, with its slice
range, a 3-D box (in-plane box in pixels + slice range), its depth and volume in mm.

Slices are addressed by their *ordinal* in the series once sorted by position along the slice normal
(0 = lowest position); :func:`order_slices` computes that order and the slice geometry.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in source pixels

# A detection may be missing on this many consecutive slices inside a lesion (a weak cross-section the
# detector scored under threshold) before the lesion is considered ended.
MAX_SLICE_GAP = 1
# Two boxes on nearby slices belong to one lesion when their centres are at most this fraction of the
# larger box's mean side apart (i.e. within about the larger cross-section's radius). Why not IoU: the
# sections of a round lesion shrink toward its poles, and a pole section of a third of the equator's
# diameter has IoU 1/9 with it although both are centred on the same point. Two lesions that do not
# overlap have centres at least r1 + r2 apart, more than max(r1, r2), so side-by-side lesions (even
# touching ones) are never merged.
MAX_CENTRE_DISTANCE = 0.5


@dataclass(frozen=True)
class SliceDetection:
    """A detector hit on one slice of a series; ``slice`` is the slice's ordinal (see order_slices)."""

    slice: int
    label: str
    score: float
    box: Box


@dataclass(frozen=True)
class LesionSlice:
    """One slice a lesion spans: its box, and the detection there (None where the detector missed it)."""

    slice: int
    box: Box
    detection: SliceDetection | None


@dataclass(frozen=True)
class Lesion:
    """Detections of one label on consecutive slices (gaps of at most MAX_SLICE_GAP), one per slice."""

    label: str
    detections: tuple[SliceDetection, ...]  # in slice order, one per slice

    @property
    def first(self) -> int:
        """Ordinal of the lesion's first slice."""
        return self.detections[0].slice

    @property
    def last(self) -> int:
        """Ordinal of the lesion's last slice."""
        return self.detections[-1].slice

    @property
    def score(self) -> float:
        """The most confident of its detections: the lesion is as certain as its clearest section."""
        return max(d.score for d in self.detections)

    @property
    def box(self) -> Box:
        """In-plane box enclosing every detection: with first..last, the lesion's 3-D box in pixels."""
        return (
            min(d.box[0] for d in self.detections),
            min(d.box[1] for d in self.detections),
            max(d.box[2] for d in self.detections),
            max(d.box[3] for d in self.detections),
        )

    def slices(self) -> tuple[LesionSlice, ...]:
        """Every slice from first to last; a slice the detector missed gets the mean of its neighbours' boxes.

        The missed slice is inside the lesion (it lies between two detected sections), so it is
        segmented too and counts toward depth and volume.
        """
        out: list[LesionSlice] = []
        for before, after in itertools.pairwise(self.detections):
            out.append(LesionSlice(before.slice, before.box, before))
            between = _mean_box(before.box, after.box)
            out += [LesionSlice(s, between, None) for s in range(before.slice + 1, after.slice)]
        last = self.detections[-1]
        out.append(LesionSlice(last.slice, last.box, last))
        return tuple(out)


def _mean_box(a: Box, b: Box) -> Box:
    return ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2, (a[2] + b[2]) / 2, (a[3] + b[3]) / 2)


def _centre_distance(a: Box, b: Box) -> float:
    return math.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2)


def _mean_side(box: Box) -> float:
    return ((box[2] - box[0]) + (box[3] - box[1])) / 2


def same_lesion(a: Box, b: Box) -> bool:
    """Whether boxes on nearby slices are sections of one lesion (see MAX_CENTRE_DISTANCE)."""
    return _centre_distance(a, b) <= MAX_CENTRE_DISTANCE * max(_mean_side(a), _mean_side(b))


def link_detections(detections: Sequence[SliceDetection], max_gap: int = MAX_SLICE_GAP) -> list[Lesion]:
    """Group one series' detections into lesions, slice by slice; labels are never mixed.

    Each slice's detections are matched to the lesions still open (last seen at most ``max_gap``
    missing slices before), closest centres first, one detection per lesion and slice; a detection
    that matches none starts a new lesion. Returns lesions ordered by first slice, then position.
    """
    by_label: dict[str, list[SliceDetection]] = {}
    for d in detections:
        by_label.setdefault(d.label, []).append(d)
    lesions: list[Lesion] = []
    for label, items in by_label.items():
        tracks: list[list[SliceDetection]] = []
        for ordinal in sorted({d.slice for d in items}):
            here = sorted((d for d in items if d.slice == ordinal), key=lambda d: -d.score)
            open_tracks = [t for t in tracks if ordinal - t[-1].slice <= max_gap + 1]
            pairs = sorted(
                (_centre_distance(t[-1].box, d.box), ti, di)
                for ti, t in enumerate(open_tracks)
                for di, d in enumerate(here)
                if same_lesion(t[-1].box, d.box)
            )
            used_tracks: set[int] = set()
            used_detections: set[int] = set()
            for _, ti, di in pairs:
                if ti in used_tracks or di in used_detections:
                    continue
                open_tracks[ti].append(here[di])
                used_tracks.add(ti)
                used_detections.add(di)
            tracks += [[d] for di, d in enumerate(here) if di not in used_detections]
        lesions += [Lesion(label, tuple(t)) for t in tracks]
    return sorted(lesions, key=lambda lesion: (lesion.first, lesion.box[0], lesion.box[1], lesion.label))


@dataclass(frozen=True)
class SliceGeometry:
    """How thick a slab of the body each slice of a series stands for, in mm, or why that is unknown."""

    slabs_mm: tuple[float, ...] | None  # per ordinal; None when the slice positions cannot tell
    note: str | None = None  # why slabs_mm is None, for the report


def order_slices(positions: Sequence[float | None]) -> tuple[list[int], SliceGeometry]:
    """The series' frame indices in position order, and the slab each slice stands for.

    ``positions`` are the frames' positions along the slice normal (mm), in the series' stored order.
    Each slice stands for the slab of points nearer to it than to its neighbours: half the gap on
    each side, the whole gap to its only neighbour at either end. So uneven spacing, and a slice
    missing from the series, are measured as they are, not as SliceThickness claims. When a position
    is missing or two slices share one, the stored order is kept and there is no slab (a note says
    why): depth is then a slice count.
    """
    if len(positions) < 2:
        return list(range(len(positions))), SliceGeometry(None, "a single slice has no slice spacing")
    if any(p is None or not math.isfinite(p) for p in positions):
        return list(range(len(positions))), SliceGeometry(
            None, "slice positions missing: depth given in slices, no volume"
        )
    known = [float(p) for p in positions if p is not None]
    order = sorted(range(len(known)), key=lambda i: known[i])
    ordered = [known[i] for i in order]
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    if min(gaps) <= 0:
        return list(range(len(positions))), SliceGeometry(
            None, "two slices share a position: depth given in slices, no volume"
        )
    slabs = [gaps[0]] + [(a + b) / 2 for a, b in itertools.pairwise(gaps)] + [gaps[-1]]
    return order, SliceGeometry(tuple(slabs))


@dataclass(frozen=True)
class VolumeMeasure:
    """Depth and volume of a lesion; None where the geometry does not allow mm."""

    slice_count: int  # slices spanned, first to last
    depth_mm: float | None
    volume_mm3: float | None


def measure_volume(
    first: int, areas_mm2: Sequence[float] | None, slice_count: int, geometry: SliceGeometry
) -> VolumeMeasure:
    """Depth (sum of the slabs spanned) and volume (each slice's mask area times its slab).

    ``areas_mm2`` are the mask areas of the slices ``first .. first + slice_count - 1``; None when
    the pixel spacing is unknown (no volume then, though the depth may still be known).
    """
    if geometry.slabs_mm is None:
        return VolumeMeasure(slice_count, None, None)
    slabs = geometry.slabs_mm[first : first + slice_count]
    if len(slabs) != slice_count:
        raise ValueError(
            f"slices {first}..{first + slice_count - 1} are outside a series of {len(geometry.slabs_mm)}"
        )
    depth = round(sum(slabs), 2)
    if areas_mm2 is None:
        return VolumeMeasure(slice_count, depth, None)
    if len(areas_mm2) != slice_count:
        raise ValueError(f"{len(areas_mm2)} mask areas for {slice_count} slices")
    return VolumeMeasure(
        slice_count, depth, round(sum(a * s for a, s in zip(areas_mm2, slabs, strict=True)), 1)
    )
