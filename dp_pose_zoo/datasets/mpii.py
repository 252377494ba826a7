"""MPII Human Pose in mmpose's / HRNet's JSON layout, as :class:`PoseDataset`.

Two layouts are accepted:

* a directory as mmpose arranges it::

      <root>/annotations/mpii_<split>.json
      <root>/annotations/mpii_gt_<split>.mat   (optional: head boxes for PCKh)
      <root>/images/*.jpg

* a JSON file; its images are in ``<json folder>/images`` if that exists, else
  in ``<json folder>/../images``, else beside the JSON.

Each JSON record is ``{"image", "center", "scale", "joints", "joints_vis"}``,
optionally with ``"head_box"`` ``[x1, y1, x2, y2]`` and ``"image_id"`` (which
the SynthPose writer adds).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from ..errors import DatasetError, DatasetNotFoundError
from ..skeleton import NUM_JOINTS
from .base import PersonRecord, PoseDataset, read_json, read_mat_array

_REQUIRED_KEYS = ("image", "center", "scale", "joints", "joints_vis")

# MPII's person centres sit high on the body (around the chest), so, like
# HRNet and mmpose, the loader moves the centre down by 15 scale units.
# HRNet/mmpose 0.x also multiply the scale by 1.25 here; this project does
# not, because geometry.crop_matrix already pads every box by 1.25 and doing
# both would pad twice (a 1.56x box, people too small in the crop).
_CENTER_Y_SHIFT = 15.0


def load_mpii(path: str | Path, split: str = "val", *, gt_file: str | Path | None = None) -> PoseDataset:
    """Load MPII people from a mmpose-layout directory or a JSON file.

    Head boxes (for PCKh) come from each record's ``head_box`` if it has one,
    else from the validation ground-truth ``.mat`` (``gt_file``, or the one
    found beside the JSON: ``mpii_gt_<split>.mat`` as mmpose names it or
    ``gt_<stem>.mat`` as HRNet does), else they are ``None``.
    """
    json_file, image_dir = _resolve_layout(Path(path), split)
    raw = _read_json_list(json_file)
    records = [_parse_record(item, json_file, i) for i, item in enumerate(raw)]
    mat_file = Path(gt_file) if gt_file is not None else _find_gt_mat(json_file, split)
    if mat_file is not None:
        _fill_head_boxes(records, mat_file, json_file)
    return PoseDataset(name=f"mpii/{json_file.stem}", records=records, load_image=image_loader(image_dir))


def image_loader(image_dir: Path) -> Callable[[PersonRecord], np.ndarray]:
    """A ``load_image`` that reads ``image_dir / record.image`` as BGR uint8.

    Shared with the COCO loader; it fails with a one-line DatasetError that
    names the file, so a bad image stops a run with a message, not a None.
    """

    def load_image(record: PersonRecord) -> np.ndarray:
        file = image_dir / record.image
        if not file.is_file():
            raise DatasetError(f"image not found: {file}")
        image = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(f"image unreadable (not an image cv2 can decode): {file}")
        return image

    return load_image


def _resolve_layout(path: Path, split: str) -> tuple[Path, Path]:
    """The annotation JSON and the image folder for ``path`` (see module docstring)."""
    if not path.exists():
        raise DatasetNotFoundError(f"MPII data not found: {path}")
    if path.is_dir():
        json_file = path / "annotations" / f"mpii_{split}.json"
        if not json_file.is_file():
            raise DatasetNotFoundError(f"MPII annotation file not found: {json_file} (expected mmpose's layout)")
        return json_file, path / "images"
    for candidate in (path.parent / "images", path.parent.parent / "images"):
        if candidate.is_dir():
            return path, candidate
    return path, path.parent


def _read_json_list(json_file: Path) -> list[Any]:
    """The JSON's top-level list, or a one-line DatasetError naming the file."""
    data = read_json(json_file)
    if not isinstance(data, list):
        raise DatasetError(f"{json_file}: expected a list of person records, got {type(data).__name__}")
    return data


def _parse_record(item: Any, json_file: Path, index: int) -> PersonRecord:
    """One JSON record to a PersonRecord; every failure names file and record."""

    def fail(reason: str) -> DatasetError:
        return DatasetError(f"{json_file}: record {index}: {reason}")

    if not isinstance(item, dict):
        raise fail(f"expected an object, got {type(item).__name__}")
    missing = [k for k in _REQUIRED_KEYS if k not in item]
    if missing:
        raise fail(f"missing key(s) {', '.join(missing)}")
    if not isinstance(item["image"], str) or not item["image"]:
        raise fail("'image' must be a non-empty file name")
    center = _float_array(item["center"], (2,), "center", fail)
    scale = _float_array(item["scale"], (), "scale", fail)
    joints = _float_array(item["joints"], (NUM_JOINTS, 2), "joints", fail)
    joints_vis = _float_array(item["joints_vis"], (NUM_JOINTS,), "joints_vis", fail)
    if not scale > 0:
        raise fail(f"scale must be positive, got {float(scale)}")
    if center[0] != -1:
        center[1] += _CENTER_Y_SHIFT * float(scale)
    head_box = None
    if item.get("head_box") is not None:
        head_box = _float_array(item["head_box"], (4,), "head_box", fail)
    image_id = item.get("image_id")
    return PersonRecord(
        image=item["image"],
        image_id=str(image_id) if image_id is not None else item["image"],
        center=center,
        scale=float(scale),
        joints=joints,
        visible=(joints_vis > 0).astype(np.float64),
        head_box=head_box,
    )


def _float_array(value: Any, shape: tuple[int, ...], key: str, fail: Callable[[str], DatasetError]) -> np.ndarray:
    """``value`` as a finite float array of ``shape``, or the error ``fail`` builds."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise fail(f"'{key}' must be numbers") from None
    if array.shape != shape:
        if key in ("joints", "joints_vis") and array.ndim >= 1:
            raise fail(f"'{key}' has {array.shape[0]} entries, expected {NUM_JOINTS}")
        raise fail(f"'{key}' has shape {array.shape}, expected {shape}")
    if not np.all(np.isfinite(array)):
        raise fail(f"'{key}' holds a non-finite number")
    return array


def _find_gt_mat(json_file: Path, split: str) -> Path | None:
    """The ground-truth .mat beside the JSON, as mmpose or HRNet names it, if any."""
    stem = json_file.stem
    names = [f"mpii_gt_{split}.mat", f"gt_{stem}.mat"]
    match = re.fullmatch(r"mpii_(\w+)", stem)
    if match:
        names.insert(0, f"mpii_gt_{match.group(1)}.mat")
    for name in dict.fromkeys(names):
        if (json_file.parent / name).is_file():
            return json_file.parent / name
    return None


def read_gt_head_boxes(mat_file: Path) -> np.ndarray:
    """``(N, 4)`` head boxes ``x1, y1, x2, y2`` from an HRNet/mmpose ``gt_*.mat``.

    The file stores ``headboxes_src`` as ``(2, 2, N)``: ``[0]`` the top-left
    and ``[1]`` the bottom-right corner, in the JSON's record order.
    """
    if not mat_file.is_file():
        raise DatasetNotFoundError(f"MPII ground-truth file not found: {mat_file}")
    boxes = read_mat_array(mat_file, "headboxes_src")
    if boxes.shape == (2, 2):  # MATLAB drops the trailing axis of a one-person file
        boxes = boxes[:, :, None]
    if boxes.ndim != 3 or boxes.shape[:2] != (2, 2):
        raise DatasetError(f"{mat_file}: 'headboxes_src' has shape {boxes.shape}, expected (2, 2, N)")
    return np.concatenate([boxes[0].T, boxes[1].T], axis=1)


def _fill_head_boxes(records: list[PersonRecord], mat_file: Path, json_file: Path) -> None:
    """Give records without their own head box the one from ``mat_file``."""
    boxes = read_gt_head_boxes(mat_file)
    if len(boxes) != len(records):
        raise DatasetError(
            f"{mat_file}: holds {len(boxes)} head boxes but {json_file} has {len(records)} records; "
            "they must be the same split in the same order"
        )
    for record, box in zip(records, boxes):
        if record.head_box is None and math.isfinite(float(np.sum(box))):
            record.head_box = box.copy()
