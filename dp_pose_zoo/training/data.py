"""People to training samples: affine crop, augmentation, SimCC targets."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..codec import SimCCCodec
from ..datasets.base import PersonRecord, PoseDataset
from ..errors import RecipeError
from ..geometry import apply_affine, bbox_to_center_scale, crop_matrix, warp_crop
from ..preprocess import normalize_crop
from ..skeleton import FLIP_INDEX, JOINT_INDEX

# Half-body crops (HRNet): the upper body is the head, neck, thorax and arms; the lower the pelvis and legs.
UPPER_BODY = tuple(JOINT_INDEX[n] for n in ("thorax", "upper_neck", "head_top", "right_wrist", "right_elbow",
                                             "right_shoulder", "left_shoulder", "left_elbow", "left_wrist"))
LOWER_BODY = tuple(JOINT_INDEX[n] for n in ("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee",
                                             "left_ankle", "pelvis"))
HALF_BODY_MIN_JOINTS = 8  # a person needs this many visible joints before half of them is worth a crop
HALF_BODY_ZOOM = 1.5  # the half's joint box is tight: grow it so the limbs' ends stay inside


@dataclass
class AugmentConfig:
    """The usual top-down augmentation (HRNet's MPII settings), plus colour jitter and half-body crops.

    Every draw comes from the sample's own generator, seeded by (seed, epoch,
    index): the same person in the same epoch is always augmented alike.
    """

    flip: float = 0.5  # probability of a horizontal flip
    scale: float = 0.25  # scale factor drawn from N(1, scale) clipped to 1 +- scale
    rotation: float = 30.0  # degrees, N(0, rotation) clipped to +-2 rotation
    rotation_prob: float = 0.6
    half_body: float = 0.0  # probability of cropping the upper or the lower body alone
    color: float = 0.0  # brightness, contrast and saturation each scaled by U(1 - color, 1 + color)

    def __post_init__(self):
        for key in ("flip", "rotation_prob", "half_body"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise RecipeError(f"augment {key} is a probability in [0, 1]; got {value!r}")
        for key, top in (("scale", 0.9), ("rotation", 180.0), ("color", 0.9)):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= top):
                raise RecipeError(f"augment {key} must be in [0, {top}]; got {value!r}")

    @property
    def enabled(self) -> bool:
        return (self.flip > 0 or self.scale > 0 or (self.rotation > 0 and self.rotation_prob > 0)
                or self.half_body > 0 or self.color > 0)


def half_body_box(joints: np.ndarray, visible: np.ndarray, rng: np.random.Generator,
                  aspect_ratio: float) -> tuple[np.ndarray, float] | None:
    """``(center, scale)`` around the upper or the lower body's visible joints, or None when too few are visible."""
    if visible.sum() < HALF_BODY_MIN_JOINTS:
        return None
    halves = (UPPER_BODY, LOWER_BODY) if rng.random() < 0.5 else (LOWER_BODY, UPPER_BODY)
    for half in halves:
        chosen = [j for j in half if visible[j] > 0]
        if len(chosen) >= 2:
            points = joints[chosen]
            (x1, y1), (x2, y2) = points.min(axis=0), points.max(axis=0)
            center, scale = bbox_to_center_scale((x1, y1, x2, y2), aspect_ratio)
            return center, scale * HALF_BODY_ZOOM
    return None


def jitter_color(crop: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Brightness, contrast and saturation of a BGR uint8 crop, each scaled by U(1 - s, 1 + s), in random order."""
    image = crop.astype(np.float32)
    for op in rng.permutation(3):
        factor = float(rng.uniform(1.0 - strength, 1.0 + strength))
        if op == 0:  # brightness
            image = image * factor
        elif op == 1:  # contrast, about the mean grey
            grey = float((image @ np.array([0.114, 0.587, 0.299], dtype=np.float32)).mean())
            image = (image - grey) * factor + grey
        else:  # saturation, about each pixel's grey
            grey = image @ np.array([0.114, 0.587, 0.299], dtype=np.float32)
            image = (image - grey[..., None]) * factor + grey[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


def crop_person(image: np.ndarray, record: PersonRecord, input_size: tuple[int, int], *,
                rng: np.random.Generator | None = None, augment: AugmentConfig | None = None):
    """Crop one person; with ``rng`` and ``augment``, randomly flipped, half-body, scaled, rotated, recoloured.

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
        if augment.half_body > 0 and rng.random() < augment.half_body:
            half = half_body_box(joints, visible, rng, input_size[1] / input_size[0])
            if half is not None:
                center, scale = half
        scale *= float(np.clip(rng.normal(1.0, augment.scale), 1 - augment.scale, 1 + augment.scale))
        if rng.random() < augment.rotation_prob:
            rotation = float(np.clip(rng.normal(0.0, augment.rotation), -2 * augment.rotation, 2 * augment.rotation))
    matrix = crop_matrix(center, scale, input_size, rotation=rotation)
    crop = warp_crop(np.ascontiguousarray(image), matrix, input_size)
    if rng is not None and augment is not None and augment.color > 0:
        crop = jitter_color(crop, rng, augment.color)
    return crop, apply_affine(joints, matrix), visible, matrix


def worker_init(worker_id: int) -> None:
    """A DataLoader worker decodes and warps with one OpenCV thread: the cores belong to the model."""
    cv2.setNumThreads(1)


class SimCCDataset(Dataset):
    """A torch view of a :class:`PoseDataset`: ``{image, target_x, target_y, weight, index}``.

    Items are keyed ``(epoch, index)`` (a bare index means epoch 0), and
    augmentation is seeded by ``(seed, epoch, index)``: a sample is the same
    whatever worker, order or resumed run loads it, with no state to keep in
    step across DataLoader workers.

    ``views`` > 1 (augmentation multiplicity, for DP): each item holds that
    many augmentations of the one person, stacked on a leading axis (image
    ``(views, 3, H, W)``), view ``v`` seeded by ``(seed, epoch, index, v)``.
    """

    def __init__(self, dataset: PoseDataset, codec: SimCCCodec, *, augment: AugmentConfig | None = None,
                 seed: int = 0, views: int = 1):
        self.dataset = dataset
        self.codec = codec
        self.augment = augment
        self.seed = seed
        self.views = views

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        record = self.dataset.records[index]
        image = self.dataset.load_image(record)
        if self.views == 1:
            return {**self._view(image, record, [self.seed, epoch, index]), "index": torch.tensor(index)}
        views = [self._view(image, record, [self.seed, epoch, index, v]) for v in range(self.views)]
        return {**{k: torch.stack([v[k] for v in views]) for k in views[0]}, "index": torch.tensor(index)}

    def _view(self, image: np.ndarray, record: PersonRecord, seed_words: list[int]) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(seed_words) if self.augment else None
        crop, joints, visible, _ = crop_person(image, record, self.codec.input_size, rng=rng, augment=self.augment)
        target_x, target_y, weight = self.codec.encode(joints, visible)
        return {
            "image": torch.from_numpy(normalize_crop(crop)),
            "target_x": torch.from_numpy(target_x),
            "target_y": torch.from_numpy(target_y),
            "weight": torch.from_numpy(weight),
        }


class CachedPrefixDataset(Dataset):
    """A :class:`SimCCDataset` (without augmentation) whose images are replaced by
    the model's frozen-prefix features, computed once.

    Valid while the prefix stays frozen, which ``TinyViTSimCC.frozen_prefix``
    guarantees for the run's strategy: a DP epoch then pays only for the part
    that trains. Features are float32, so cached and uncached steps agree.

    ``augmented`` (a :class:`SimCCDataset` with ``views`` = K - 1 and augmentation on):
    each person is cached as K fixed views, the plain crop first, then its augmentations
    of epoch 0, stacked on a leading axis as ``SimCCDataset(views=K)`` stacks them
    (augmentation multiplicity; the views are drawn once, not each epoch).
    """

    def __init__(self, base: SimCCDataset, model, units: int, *, augmented: SimCCDataset | None = None,
                 batch_size: int = 32):
        if base.augment is not None and base.augment.enabled:
            raise ValueError("cached features need a dataset without augmentation")
        augments = augmented is not None and augmented.augment is not None and augmented.augment.enabled
        if augmented is not None and (len(augmented) != len(base) or not augments):
            raise ValueError("augmented views need the same people with augmentation on")
        self.base = base
        self.units = units
        items = [base[i] for i in range(len(base))]
        if augmented is not None:  # (K, ...) per person: the plain view, then the augmented ones
            items = [_stack_views(item, augmented[i], augmented.views) for i, item in enumerate(items)]
        views = [it["image"] for it in items] if augmented is None else [v for it in items for v in it["image"]]
        device = next(model.parameters()).device
        with torch.no_grad():  # every view through the prefix alike, a batch at a time
            features = [model.forward_prefix(torch.stack(views[i:i + batch_size]).to(device), units).cpu()
                        for i in range(0, len(views), batch_size)]
        self.features = torch.cat(features) if features else torch.zeros(0)
        if augmented is not None and features:
            self.features = self.features.reshape(len(items), augmented.views + 1, *self.features.shape[1:])
        self.items = [{k: v for k, v in it.items() if k != "image"} for it in items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index = key[1] if isinstance(key, tuple) else key  # nothing is random once features are cached
        return {"image": self.features[index], **self.items[index]}


def _stack_views(plain: dict[str, torch.Tensor], augmented: dict[str, torch.Tensor], views: int) -> dict:
    """One person's plain item and its ``views`` augmented ones as one item of ``views`` + 1 views."""
    if views == 1:  # SimCCDataset(views=1) returns one unstacked view
        augmented = {k: v.unsqueeze(0) for k, v in augmented.items() if k != "index"}
    return {k: (torch.cat([v.unsqueeze(0), augmented[k]]) if k != "index" else v) for k, v in plain.items()}
