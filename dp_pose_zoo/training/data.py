"""People to training samples: affine crop, augmentation, SimCC targets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from ..codec import SimCCCodec
from ..datasets.base import PersonRecord, PoseDataset
from ..geometry import apply_affine, crop_matrix, warp_crop
from ..preprocess import normalize_crop
from ..skeleton import FLIP_INDEX


@dataclass
class AugmentConfig:
    """The usual top-down augmentation (HRNet's MPII settings)."""

    flip: float = 0.5  # probability of a horizontal flip
    scale: float = 0.25  # scale factor drawn from N(1, scale) clipped to 1 +- scale
    rotation: float = 30.0  # degrees, N(0, rotation) clipped to +-2 rotation
    rotation_prob: float = 0.6


def crop_person(image: np.ndarray, record: PersonRecord, input_size: tuple[int, int], *,
                rng: np.random.Generator | None = None, augment: AugmentConfig | None = None):
    """Crop one person; with ``rng`` and ``augment``, randomly flipped, scaled and rotated.

    Returns the crop (BGR uint8), the joints in crop pixels, their visibility
    and the image-to-crop matrix (for mapping predictions back).
    """
    center, scale = record.center.copy(), record.scale
    joints, visible = record.joints.copy(), record.visible.copy()
    rotation = 0.0
    if rng is not None and augment is not None:
        if rng.random() < augment.flip:
            image = image[:, ::-1]
            width = image.shape[1]
            joints = joints[FLIP_INDEX]
            visible = visible[FLIP_INDEX]
            joints[:, 0] = width - 1 - joints[:, 0]
            center[0] = width - 1 - center[0]
        scale *= float(np.clip(rng.normal(1.0, augment.scale), 1 - augment.scale, 1 + augment.scale))
        if rng.random() < augment.rotation_prob:
            rotation = float(np.clip(rng.normal(0.0, augment.rotation), -2 * augment.rotation, 2 * augment.rotation))
    matrix = crop_matrix(center, scale, input_size, rotation=rotation)
    crop = warp_crop(np.ascontiguousarray(image), matrix, input_size)
    return crop, apply_affine(joints, matrix), visible, matrix


class SimCCDataset(Dataset):
    """A torch view of a :class:`PoseDataset`: ``{image, target_x, target_y, weight, index}``.

    Augmentation is seeded by ``(seed, epoch, index)``, so a sample is the same
    whatever worker or order loads it: runs are reproducible and resumable.
    """

    def __init__(self, dataset: PoseDataset, codec: SimCCCodec, *, augment: AugmentConfig | None = None,
                 seed: int = 0):
        self.dataset = dataset
        self.codec = codec
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        record = self.dataset.records[index]
        image = self.dataset.load_image(record)
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.augment else None
        crop, joints, visible, _ = crop_person(image, record, self.codec.input_size, rng=rng, augment=self.augment)
        target_x, target_y, weight = self.codec.encode(joints, visible)
        return {
            "image": torch.from_numpy(normalize_crop(crop)),
            "target_x": torch.from_numpy(target_x),
            "target_y": torch.from_numpy(target_y),
            "weight": torch.from_numpy(weight),
            "index": torch.tensor(index),
        }
