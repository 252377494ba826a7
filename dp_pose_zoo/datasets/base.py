"""What every data set hands to training and evaluation: annotated people.

The privacy unit of the zoo is one annotated person instance, so a data set is
a list of :class:`PersonRecord` plus a way to load the image each one is in.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import DatasetError, MissingExtraError
from ..skeleton import NUM_JOINTS

# MPII's ``scale`` is the person's height in pixels divided by this.
MPII_SCALE_UNIT = 200.0


@dataclass
class PersonRecord:
    """One annotated person, in MPII's conventions.

    ``image`` names the image file (relative to the data set's image folder);
    ``image_id`` is the data set's own name for the image (for SynthPose it
    encodes domain, split and index). Two sets are checked disjoint by both
    the ids and the pixels (:func:`image_fingerprints`). ``source`` is the
    data spec the person came from when several are mixed (empty otherwise).
    """

    image: str
    image_id: str
    center: np.ndarray  # (2,) x, y in image pixels
    scale: float  # person height / 200 px, as MPII stores it
    joints: np.ndarray  # (16, 2) x, y in image pixels
    visible: np.ndarray  # (16,) 1.0 visible/annotated, 0.0 not
    head_box: np.ndarray | None = None  # (4,) x1, y1, x2, y2, for PCKh
    derived: np.ndarray = field(default_factory=lambda: np.zeros(NUM_JOINTS, dtype=bool))
    source: str = ""

    def __post_init__(self):
        self.center = np.asarray(self.center, dtype=np.float64).reshape(2)
        self.joints = np.asarray(self.joints, dtype=np.float64).reshape(NUM_JOINTS, 2)
        self.visible = np.asarray(self.visible, dtype=np.float64).reshape(NUM_JOINTS)
        self.scale = float(self.scale)
        if self.head_box is not None:
            self.head_box = np.asarray(self.head_box, dtype=np.float64).reshape(4)
        self.derived = np.asarray(self.derived, dtype=bool).reshape(NUM_JOINTS)


@dataclass
class PoseDataset:
    """A list of people and a loader for the image (BGR uint8) of each one.

    ``parts`` describes a mixture (``datasets.mixture``): ``(spec, count,
    weight)`` per source, in record order; empty for a single data set.
    """

    name: str
    records: list[PersonRecord]
    load_image: Callable[[PersonRecord], np.ndarray]
    parts: tuple[tuple[str, int, float], ...] = ()

    def __len__(self) -> int:
        return len(self.records)

    def image_ids(self) -> set[str]:
        return {r.image_id for r in self.records}

    def ground_truth(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What PCKh scores against: joints ``(N, 16, 2)``, visible ``(N, 16)``, head boxes ``(N, 4)``
        (rows of nan for a person without one)."""
        gt = np.stack([r.joints for r in self.records]).reshape(-1, NUM_JOINTS, 2)
        visible = np.stack([r.visible for r in self.records]).reshape(-1, NUM_JOINTS)
        head_boxes = np.stack([r.head_box if r.head_box is not None else np.full(4, np.nan)
                               for r in self.records]).reshape(-1, 4)
        return gt, visible, head_boxes

    def with_head_boxes(self) -> "PoseDataset":
        """The people PCKh can score: those with a head box, in order (a mixture's ``parts`` are dropped).

        COCO has no head boxes; one is derived from the face keypoints and shoulders, so a person
        with fewer than two face keypoints or either shoulder unlabelled has none.
        """
        kept = [r for r in self.records if r.head_box is not None]
        return PoseDataset(name=self.name, records=kept, load_image=self.load_image)


def image_fingerprint(image: np.ndarray) -> str:
    """sha256 of an image's decoded pixels (and shape): the same picture whatever its file name or encoding."""
    digest = hashlib.sha256(f"{image.shape} {image.dtype}".encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def image_fingerprints(dataset: PoseDataset) -> dict[str, PersonRecord]:
    """Every distinct image of ``dataset``, decoded once: its :func:`image_fingerprint` -> the first person in it.

    Two data sets that share a fingerprint share a picture, so a person can be
    on both sides; this is how public and private sets are checked disjoint
    (image ids and file names prove nothing: a copy can be renamed).
    """
    found: dict[str, PersonRecord] = {}
    decoded = set()
    for record in dataset.records:
        # A mixture's records carry their source (datasets.mixture): one file name in two sources is two images.
        key = (record.source, record.image)
        if key not in decoded:
            decoded.add(key)
            found.setdefault(image_fingerprint(dataset.load_image(record)), record)
    return found


def read_mat_array(mat_file: Path, key: str) -> np.ndarray:
    """The float64 array ``key`` of a MATLAB file, or a one-line DatasetError naming the file."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise MissingExtraError("scipy", "train") from None
    try:
        content = loadmat(str(mat_file))
    except Exception as exc:  # scipy raises several types for a bad file
        raise DatasetError(f"{mat_file}: not a readable .mat file ({type(exc).__name__})") from None
    if content.get(key) is None:
        raise DatasetError(f"{mat_file}: no '{key}' array")
    try:
        return np.asarray(content[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise DatasetError(f"{mat_file}: '{key}' is not a numeric array") from None


def read_json(json_file: Path) -> Any:
    """An annotation file's JSON, or a one-line DatasetError naming the file."""
    try:
        with open(json_file, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatasetError(f"{json_file}: not valid JSON ({reason})") from None
