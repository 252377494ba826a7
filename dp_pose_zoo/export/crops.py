"""Real crops for calibration, parity and the INT8 accuracy check.

Crops are made by the runtime's own pure functions (the same ones
``PoseEstimator`` runs), from a data set's annotated people (their center and
scale, as ``training/evaluate.py`` crops them) or from a folder of images with
the whole image as one person (``--boxes full``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..datasets import PoseDataset, load_dataset
from ..errors import DatasetError, DatasetNotFoundError
from ..runtime.pose_estimator import boxes_to_center_scale, crop_batch, full_frame_boxes

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# INT8 calibration ranges are published inside the model and are not DP-protected: they come from
# public data by default (SynthPose's public domain), never from the private training split.
SYNTHPOSE_CALIBRATION = "synthpose:public-val"
SYNTHPOSE_PARITY = "synthpose:private-val"


@dataclass
class CropSet:
    """Model inputs ``(N, 3, H, W)``, their crop-to-image matrices, and ground truth when known."""

    source: str
    batch: np.ndarray
    inverses: np.ndarray
    joints: np.ndarray | None = None  # (N, 16, 2) image pixels
    visible: np.ndarray | None = None  # (N, 16)
    head_boxes: np.ndarray | None = None  # (N, 4)

    def __len__(self) -> int:
        return len(self.batch)


def dataset_crops(dataset: PoseDataset, input_size: tuple[int, int], *, limit: int | None = None,
                  source: str | None = None) -> CropSet:
    """One crop per annotated person, from the record's center and scale."""
    records = dataset.records[:limit] if limit else dataset.records
    if not records:
        raise DatasetError(f"{source or dataset.name} holds no people to crop")
    batches, inverses = [], []
    for rec in records:
        b, inv = crop_batch(dataset.load_image(rec), rec.center[None], np.array([rec.scale]), input_size)
        batches.append(b)
        inverses.append(inv)
    heads = np.stack([r.head_box if r.head_box is not None else np.full(4, np.nan) for r in records])
    return CropSet(source or dataset.name, np.concatenate(batches), np.concatenate(inverses),
                   np.stack([r.joints for r in records]), np.stack([r.visible for r in records]), heads)


def image_dir_crops(directory: str | Path, input_size: tuple[int, int], *, limit: int | None = None) -> CropSet:
    """One crop per image in ``directory`` (sorted), the whole image taken as one person's box."""
    folder = Path(directory)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit or None]
    batches, inverses = [], []
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(f"cannot read image {path}")
        centers, scales = boxes_to_center_scale(full_frame_boxes(image), input_size)
        b, inv = crop_batch(image, centers, scales, input_size)
        batches.append(b)
        inverses.append(inv)
    if not batches:
        raise DatasetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return CropSet(str(folder), np.concatenate(batches), np.concatenate(inverses))


def load_crops(source: str, input_size: tuple[int, int], *, limit: int, synthpose: str) -> CropSet:
    """Crops from ``source``: ``synthpose`` (the split ``synthpose`` names), a data spec, or a folder."""
    if source == "synthpose":
        spec = f"{synthpose}:{limit}"
        return dataset_crops(load_dataset(spec), input_size, source=spec)
    if Path(source).is_dir():
        return image_dir_crops(source, input_size, limit=limit)
    if ":" in source:
        return dataset_crops(load_dataset(source), input_size, limit=limit, source=source)
    raise DatasetNotFoundError(f"{source!r} is neither 'synthpose', a data spec (synthpose:..., coco:PATH, "
                               "mpii:PATH) nor an image folder")
