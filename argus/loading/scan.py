"""Turn user-supplied files and folders into studies ready for analysis, plus a list of what was refused."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from argus.loading.dicom import DicomInstance, read_dicom
from argus.loading.images import is_image_path, read_image
from argus.loading.types import (
    DEFAULT_LIMITS,
    Frame,
    ImageSeries,
    InputRejected,
    LoadLimits,
    Rejection,
    ScanResult,
    StudyInput,
)

# Salts keep study and series UIDs distinct although both are derived from the same files.
_IMAGE_STUDY_SALT = b"argus:image-set:study"
_IMAGE_SERIES_SALT = b"argus:image-set:series"
_DICOM_STUDY_SALT = b"argus:dicom-without-uid:study"
_DICOM_SERIES_SALT = b"argus:dicom-without-uid:series"


def scan_inputs(
    paths: Sequence[Path], limits: LoadLimits = DEFAULT_LIMITS, *, keep_pixels: bool = True
) -> ScanResult:
    """Load every DICOM and image file under `paths`, grouped into studies; bad inputs become rejections.

    ``keep_pixels=False`` is for callers that only validate and group files: every file is still
    fully decoded, so the studies and rejections are exactly those of ``keep_pixels=True``, but each
    decoded image is released once checked and the frames carry no pixels (``Frame.pixels`` is an
    empty (0, 0) array; ``Frame.shape`` gives the size). Memory then stays at about one file's worth.
    """
    collector = _Collector(limits, keep_pixels)
    for raw_path in paths:
        path = Path(raw_path)
        if path.is_dir():
            loaded_before = collector.loaded
            for file in _walk(path, collector.rejected):
                collector.add(file)
            if collector.loaded == loaded_before:
                collector.rejected.append(Rejection(path, "no images or DICOM files found in folder"))
        elif path.is_file():
            collector.add(path)
        elif path.exists() or path.is_symlink():
            # FIFOs, devices and dangling links: reading them could block or fail obscurely.
            collector.rejected.append(Rejection(path, "not a regular file or folder"))
        else:
            collector.rejected.append(Rejection(path, "no such file or folder"))
    studies = _dicom_studies(collector.dicom, collector.hashes) + _image_studies(
        collector.images, collector.hashes
    )
    studies.sort(key=lambda study: study.source_paths[0])
    return ScanResult(studies=studies, rejected=collector.rejected)


class _Collector:
    """Accumulates loaded files and rejections across all input paths of one scan."""

    def __init__(self, limits: LoadLimits, keep_pixels: bool = True) -> None:
        self.limits = limits
        self.keep_pixels = keep_pixels
        self.dicom: list[DicomInstance] = []
        self.images: list[Frame] = []
        # sha256 of image files, and of DICOM files that need UIDs derived from their bytes.
        self.hashes: dict[Path, str] = {}
        self.rejected: list[Rejection] = []
        self.loaded = 0  # files that loaded, or were duplicates of files that did
        self._seen_files: set[Path] = set()
        self._seen_instances: set[str] = set()

    def add(self, path: Path) -> None:
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError):  # symlink loops and the like: compare unresolved
            resolved = path.absolute()
        if resolved in self._seen_files:
            # The same file reached twice (given as a file and inside a given folder).
            self.loaded += 1
            return
        self._seen_files.add(resolved)
        try:
            if is_image_path(path):
                frame = read_image(path, self.limits, keep_pixels=self.keep_pixels)
                self.hashes[path] = _file_sha256(path)
                self.images.append(frame)
            else:
                self._add_dicom(read_dicom(path, self.limits, keep_pixels=self.keep_pixels))
        except InputRejected as exc:
            self.rejected.append(Rejection(exc.path, exc.reason, exc.study_uid, exc.series_uid))
            return
        except OSError as exc:  # the file vanished or became unreadable between reading and hashing
            self.rejected.append(Rejection(path, f"the file cannot be read: {exc.strerror or exc}"))
            return
        self.loaded += 1

    def _add_dicom(self, instance: DicomInstance) -> None:
        uid = instance.sop_instance_uid
        if uid is not None and uid in self._seen_instances:
            return  # a copy of an instance already loaded: keep the first
        if instance.study_uid is None or instance.series_uid is None:
            self.hashes[instance.path] = _file_sha256(instance.path)
        if uid is not None:
            self._seen_instances.add(uid)
        self.dicom.append(instance)


def _walk(folder: Path, rejected: list[Rejection]) -> Iterable[Path]:
    """Regular, non-hidden files under `folder`, in a deterministic order."""

    def on_error(error: OSError) -> None:
        where = Path(error.filename) if error.filename else folder
        rejected.append(Rejection(where, f"folder cannot be read: {error.strerror or error}"))

    for root, dirs, files in os.walk(folder, onerror=on_error):
        # Pruning in place keeps os.walk out of hidden folders (.git, .Trash, ...) and fixes the order.
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            file = Path(root) / name
            if not name.startswith(".") and file.is_file():
                yield file


def _dicom_studies(instances: list[DicomInstance], hashes: dict[Path, str]) -> list[StudyInput]:
    by_study: dict[str, dict[str, list[DicomInstance]]] = defaultdict(lambda: defaultdict(list))
    for instance in _fill_missing_uids(instances, hashes):
        assert instance.study_uid is not None and instance.series_uid is not None
        by_study[instance.study_uid][instance.series_uid].append(instance)
    studies = []
    for study_uid, by_series in by_study.items():
        members = sorted((i for group in by_series.values() for i in group), key=lambda i: i.path)
        series = sorted(
            (_dicom_series(uid, group) for uid, group in by_series.items()),
            key=lambda s: min(f.source_path for f in s.frames),
        )
        studies.append(
            StudyInput(
                kind="dicom",
                study_uid=study_uid,
                patient_id=_first(i.patient_id for i in members),
                accession_number=_first(i.accession_number for i in members),
                description=_first(i.study_description for i in members),
                series=tuple(series),
                source_paths=tuple(i.path for i in members),
            )
        )
    return studies


def _dicom_series(series_uid: str, instances: list[DicomInstance]) -> ImageSeries:
    ordered = sorted(instances, key=_series_sort_key(instances))
    by_path = sorted(instances, key=lambda i: i.path)
    return ImageSeries(
        series_uid=series_uid,
        modality=_first(i.modality for i in by_path),
        description=_first(i.series_description for i in by_path),
        image_type=by_path[0].image_type,
        # Frames of a multi-frame file stay together and in stored order.
        frames=tuple(frame for instance in ordered for frame in instance.frames),
    )


def _series_sort_key(instances: list[DicomInstance]) -> Callable[[DicomInstance], tuple[Any, ...]]:
    """Sort by slice position when every file has one, else by instance number, else by file name.

    Mixing criteria (some files positioned, some not) would give an order that means nothing.
    """
    locations = [i.frames[0].slice_location_mm for i in instances]
    numbers = [i.frames[0].instance_number for i in instances]
    if all(location is not None for location in locations):
        return lambda i: (i.frames[0].slice_location_mm, i.frames[0].instance_number or 0, i.path)
    if all(number is not None for number in numbers):
        return lambda i: (i.frames[0].instance_number, i.path)
    return lambda i: (i.path.name, i.path)


def _fill_missing_uids(instances: list[DicomInstance], hashes: dict[Path, str]) -> list[DicomInstance]:
    """Give files without Study/Series Instance UID deterministic ones, one study/series per folder.

    The UIDs are mandatory, but anonymisers and old exporters sometimes strip them.
    """
    orphans: dict[Path, list[DicomInstance]] = defaultdict(list)
    for instance in instances:
        if instance.study_uid is None or instance.series_uid is None:
            orphans[instance.path.parent].append(instance)
    replacements: dict[Path, DicomInstance] = {}
    for group in orphans.values():
        group_hashes = [hashes[i.path] for i in group]
        study_uid = _derived_uid(group_hashes, _DICOM_STUDY_SALT)
        series_uid = _derived_uid(group_hashes, _DICOM_SERIES_SALT)
        for i in group:
            replacements[i.path] = dataclasses.replace(
                i, study_uid=i.study_uid or study_uid, series_uid=i.series_uid or series_uid
            )
    return [replacements.get(i.path, i) for i in instances]


def _image_studies(frames: list[Frame], hashes: dict[Path, str]) -> list[StudyInput]:
    by_folder: dict[Path, list[Frame]] = defaultdict(list)
    for frame in frames:
        by_folder[frame.source_path.parent].append(frame)
    studies = []
    for folder, group in by_folder.items():
        ordered = tuple(sorted(group, key=lambda f: (f.source_path.name, f.source_path)))
        # Derived from the bytes so that re-running the same files gives the same UIDs.
        group_hashes = [hashes[f.source_path] for f in ordered]
        series = ImageSeries(
            series_uid=_derived_uid(group_hashes, _IMAGE_SERIES_SALT),
            modality=None,
            description=folder.name or None,
            frames=ordered,
        )
        studies.append(
            StudyInput(
                kind="image",
                study_uid=_derived_uid(group_hashes, _IMAGE_STUDY_SALT),
                patient_id=None,
                accession_number=None,
                description=folder.name or None,
                series=(series,),
                source_paths=tuple(sorted(f.source_path for f in ordered)),
            )
        )
    return studies


def _derived_uid(file_hashes: Iterable[str], salt: bytes) -> str:
    """A DICOM-valid UID (2.25 root: UUID-derived integer) from the sorted per-file hashes."""
    digest = hashlib.sha256(salt)
    for file_hash in sorted(file_hashes):
        digest.update(file_hash.encode("ascii"))
    return "2.25." + str(int(digest.hexdigest()[:32], 16))


def _file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _first(values: Iterable[str | None]) -> str | None:
    return next((v for v in values if v is not None), None)
