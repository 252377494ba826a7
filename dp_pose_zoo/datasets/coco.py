"""COCO person keypoints as :class:`PoseDataset`, mapped to MPII-16.

COCO's 17 joints become MPII's 16 through :func:`skeleton.coco_to_mpii`: the
pelvis, thorax, upper neck and head top are derived from neighbours and flagged
in ``PersonRecord.derived``. The usual layout is::

    <root>/annotations/person_keypoints_<split>.json
    <root>/<split>/*.jpg
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import DatasetError, DatasetNotFoundError
from ..geometry import bbox_to_center_scale
from ..skeleton import JOINT_INDEX, coco_to_mpii
from .base import PersonRecord, PoseDataset, read_json
from .mpii import image_loader

_HEAD_TOP = JOINT_INDEX["head_top"]
_UPPER_NECK = JOINT_INDEX["upper_neck"]


def load_coco(annotation_file: str | Path, image_dir: str | Path | None = None, *,
              min_visible: int = 3) -> PoseDataset:
    """Load the people of a COCO person-keypoints file.

    Kept: non-crowd person annotations with at least ``min_visible`` labelled
    keypoints (``v > 0``) and a box of positive area; the rest give a top-down
    model nothing to learn from or be scored on.
    """
    json_file = Path(annotation_file)
    if not json_file.is_file():
        raise DatasetNotFoundError(f"COCO annotation file not found: {json_file}")
    folder = Path(image_dir) if image_dir is not None else default_image_dir(json_file)
    if image_dir is not None and not folder.is_dir():
        raise DatasetNotFoundError(f"COCO image folder not found: {folder}")
    data = _read_json_object(json_file)
    files = _image_files(data, json_file)
    person_ids = _person_category_ids(data, json_file)
    records = []
    for index, ann in enumerate(data["annotations"]):
        record = _parse_annotation(ann, files, person_ids, min_visible, json_file, index)
        if record is not None:
            records.append(record)
    return PoseDataset(name=f"coco/{json_file.stem}", records=records, load_image=image_loader(folder))


def default_image_dir(json_file: Path) -> Path:
    """``<root>/<split>`` for ``<root>/annotations/person_keypoints_<split>.json``, else the JSON's folder.

    ``<root>/images/<split>`` is used instead when only that one exists.
    """
    match = re.fullmatch(r"person_keypoints_(.+)\.json", json_file.name)
    if match is None or json_file.parent.name != "annotations":
        return json_file.parent
    root, split = json_file.parent.parent, match.group(1)
    for candidate in (root / split, root / "images" / split):
        if candidate.is_dir():
            return candidate
    return root / split


def derive_head_box(joints: np.ndarray, visible: np.ndarray) -> np.ndarray | None:
    """A square head box from the (derived) head top and upper neck, or None.

    COCO has no head boxes. MPII's head box is drawn around the head, whose
    height is about the upper-neck-to-head-top distance ``d``; so the box is a
    square of side ``d`` centred between the two joints (head size for PCKh =
    0.6 * sqrt(2) * d, about 0.85 d). Both joints are themselves derived from
    the face keypoints, so PCKh on COCO is indicative, not comparable to MPII.
    """
    if not (visible[_HEAD_TOP] > 0 and visible[_UPPER_NECK] > 0):
        return None
    top, neck = joints[_HEAD_TOP], joints[_UPPER_NECK]
    side = float(np.linalg.norm(top - neck))
    if not side > 0:
        return None
    mid = (top + neck) / 2.0
    half = side / 2.0
    return np.array([mid[0] - half, mid[1] - half, mid[0] + half, mid[1] + half])


def _read_json_object(json_file: Path) -> dict[str, Any]:
    """The COCO JSON with ``images`` and ``annotations`` lists, or a one-line DatasetError."""
    data = read_json(json_file)
    if not isinstance(data, dict):
        raise DatasetError(f"{json_file}: expected a COCO object with 'images' and 'annotations'")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{json_file}: missing or non-list '{key}'")
    return data


def _image_files(data: dict[str, Any], json_file: Path) -> dict[Any, str]:
    """COCO image id to file name."""
    files = {}
    for index, image in enumerate(data["images"]):
        if not isinstance(image, dict) or "id" not in image or not isinstance(image.get("file_name"), str):
            raise DatasetError(f"{json_file}: image {index}: needs 'id' and 'file_name'")
        files[image["id"]] = image["file_name"]
    return files


def _person_category_ids(data: dict[str, Any], json_file: Path) -> set[Any]:
    """Ids of the categories named 'person' (COCO's is 1, assumed when none are listed)."""
    categories = data.get("categories")
    if not categories:
        return {1}
    if not isinstance(categories, list):
        raise DatasetError(f"{json_file}: 'categories' must be a list")
    ids = {c.get("id") for c in categories if isinstance(c, dict) and c.get("name") == "person"}
    if not ids:
        raise DatasetError(f"{json_file}: no category named 'person'")
    return ids


def _parse_annotation(ann: Any, files: dict[Any, str], person_ids: set[Any], min_visible: int,
                      json_file: Path, index: int) -> PersonRecord | None:
    """One annotation to a PersonRecord, or None when the filters drop it."""

    def fail(reason: str) -> DatasetError:
        return DatasetError(f"{json_file}: annotation {index}: {reason}")

    if not isinstance(ann, dict):
        raise fail(f"expected an object, got {type(ann).__name__}")
    missing = [k for k in ("image_id", "keypoints", "bbox") if k not in ann]
    if missing:
        raise fail(f"missing key(s) {', '.join(missing)}")
    if ann.get("iscrowd", 0) or ann.get("category_id", 1) not in person_ids:
        return None
    keypoints = _float_array(ann["keypoints"], 51, "keypoints", fail).reshape(17, 3)
    x, y, w, h = _float_array(ann["bbox"], 4, "bbox", fail)
    if int(np.sum(keypoints[:, 2] > 0)) < min_visible or not (w > 0 and h > 0):
        return None
    if ann["image_id"] not in files:
        raise fail(f"image_id {ann['image_id']!r} is not in 'images'")
    joints, visible, derived = coco_to_mpii(keypoints)
    center, scale = bbox_to_center_scale((x, y, x + w, y + h))
    return PersonRecord(
        image=files[ann["image_id"]],
        image_id=f"coco-{ann['image_id']}",
        center=center,
        scale=scale,
        joints=joints,
        visible=visible,
        head_box=derive_head_box(joints, visible),
        derived=derived,
    )


def _float_array(value: Any, size: int, key: str, fail: Callable[[str], DatasetError]) -> np.ndarray:
    """``value`` as a flat finite float array of ``size`` numbers."""
    try:
        array = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise fail(f"'{key}' must be numbers") from None
    if array.size != size:
        raise fail(f"'{key}' has {array.size} numbers, expected {size}")
    if not np.all(np.isfinite(array)):
        raise fail(f"'{key}' holds a non-finite number")
    return array
