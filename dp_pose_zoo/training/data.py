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

    @property
    def enabled(self) -> bool:
        return self.flip > 0 or self.scale > 0 or (self.rotation > 0 and self.rotation_prob > 0)


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

    Items are keyed ``(epoch, index)`` (a bare index means epoch 0), and
    augmentation is seeded by ``(seed, epoch, index)``: a sample is the same
    whatever worker, order or resumed run loads it, with no state to keep in
    step across DataLoader workers.
    """

    def __init__(self, dataset: PoseDataset, codec: SimCCCodec, *, augment: AugmentConfig | None = None,
                 seed: int = 0):
        self.dataset = dataset
        self.codec = codec
        self.augment = augment
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        record = self.dataset.records[index]
        image = self.dataset.load_image(record)
        rng = np.random.default_rng([self.seed, epoch, index]) if self.augment else None
        crop, joints, visible, _ = crop_person(image, record, self.codec.input_size, rng=rng, augment=self.augment)
        target_x, target_y, weight = self.codec.encode(joints, visible)
        return {
            "image": torch.from_numpy(normalize_crop(crop)),
            "target_x": torch.from_numpy(target_x),
            "target_y": torch.from_numpy(target_y),
            "weight": torch.from_numpy(weight),
            "index": torch.tensor(index),
        }


class CachedPrefixDataset(Dataset):
    """A :class:`SimCCDataset` (without augmentation) whose images are replaced by
    the model's frozen-prefix features, computed once.

    Valid while the prefix stays frozen, which ``TinyViTSimCC.frozen_prefix``
    guarantees for the run's strategy: a DP epoch then pays only for the part
    that trains. Features are float32, so cached and uncached steps agree.
    """

    def __init__(self, base: SimCCDataset, model, units: int, *, batch_size: int = 32):
        if base.augment is not None and base.augment.enabled:
            raise ValueError("cached features need a dataset without augmentation")
        self.base = base
        self.units = units
        items = [base[i] for i in range(len(base))]
        with torch.no_grad():
            features = [model.forward_prefix(torch.stack([it["image"] for it in items[i:i + batch_size]]), units)
                        for i in range(0, len(items), batch_size)]
        self.features = torch.cat(features) if features else torch.zeros(0)
        self.items = [{k: v for k, v in it.items() if k != "image"} for it in items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index = key[1] if isinstance(key, tuple) else key  # nothing is random once features are cached
        return {"image": self.features[index], **self.items[index]}
