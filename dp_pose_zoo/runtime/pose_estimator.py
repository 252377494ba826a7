"""Top-down pose estimation with an ONNX SimCC model: preprocess -> inference -> postprocess.

The maths are pure functions (rtmlib's pre/post-processing split) and follow
``training/evaluate.py`` exactly -- same crop matrix, warp, normalisation and
arg-max decode -- so the ONNX model reproduces the torch model's keypoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..codec import decode_simcc, simcc_logits
from ..geometry import apply_affine, bbox_to_center_scale, crop_matrix, warp_crop
from ..preprocess import normalize_crop
from .onnx_model import OnnxModel


@dataclass
class Person:
    """One person found in a frame."""

    box: np.ndarray  # (4,) x1 y1 x2 y2 in frame pixels
    keypoints: np.ndarray  # (16, 2) frame pixels
    scores: np.ndarray  # (16,)


def full_frame_boxes(image: np.ndarray) -> np.ndarray:
    """``(1, 4)``: one person filling the frame."""
    h, w = image.shape[:2]
    return np.array([[0.0, 0.0, float(w), float(h)]])


def boxes_to_center_scale(boxes: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Centers ``(N, 2)`` and MPII scales ``(N,)`` of ``x1 y1 x2 y2`` boxes, widened to the crop's aspect."""
    h, w = input_size
    pairs = [bbox_to_center_scale(box, aspect_ratio=w / h) for box in np.asarray(boxes, dtype=np.float64)]
    centers = np.array([c for c, _ in pairs], dtype=np.float64).reshape(-1, 2)
    scales = np.array([s for _, s in pairs], dtype=np.float64)
    return centers, scales


def crop_batch(image: np.ndarray, centers: np.ndarray, scales: np.ndarray,
               input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Model input ``(N, 3, H, W)`` float32 and the crop-to-frame matrices ``(N, 2, 3)``."""
    crops, inverses = [], []
    for center, scale in zip(centers, scales):
        matrix = crop_matrix(center, float(scale), input_size)
        crops.append(normalize_crop(warp_crop(image, matrix, input_size)))
        inverses.append(crop_matrix(center, float(scale), input_size, inverse=True))
    h, w = input_size
    if not crops:
        return np.zeros((0, 3, h, w), np.float32), np.zeros((0, 2, 3))
    return np.stack(crops), np.stack(inverses)


def decode_to_frame(simcc_x: np.ndarray, simcc_y: np.ndarray, split_ratio: float,
                    inverses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arg-max decode, then crop pixels back to frame pixels: keypoints ``(N, K, 2)``, scores ``(N, K)``."""
    keypoints, scores = decode_simcc(simcc_x, simcc_y, split_ratio)
    frame = np.stack([apply_affine(k, inv) for k, inv in zip(keypoints, inverses)]) if len(keypoints) else \
        np.zeros(keypoints.shape, dtype=np.float64)
    return frame, scores


def as_bgr(image: np.ndarray) -> np.ndarray:
    """A BGR uint8 ``(H, W, 3)`` view of ``image`` (grey and BGRA are converted)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 BGR, got dtype {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) BGR, got shape {image.shape}")
    return image


class PoseEstimator(OnnxModel):
    """MPII-16 keypoints of the people in given boxes, from an exported dp-pose-zoo ONNX model.

    ``PoseEstimator("model.int8.onnx", threads=2)(frame, boxes)`` returns one
    :class:`Person` per box; with ``flip_test = True`` each crop also runs
    mirrored. ``metadata["privacy"]`` tells what the weights spent (None when
    the file carries no dp_pose_zoo metadata); it is the file's own claim
    until :meth:`from_pretrained` has checked it against a model card, which
    it then attaches as ``card``.
    """

    card = None  # the model card from_pretrained verified this model against; None for a bare file
    # Average each crop's logits with its mirror's (mmpose's flip test): a few PCKh points for twice the time.
    flip_test = False

    @classmethod
    def from_pretrained(cls, name_or_path: str = "default", *, precision: str = "fp32", revision: str | None = None,
                        threads: int | None = None, providers=None) -> "PoseEstimator":
        """``"default"`` (embedded), a local folder or ``.onnx``, or ``OWNER/REPO[@rev]``; the result has ``.card``."""
        from .reference import resolve_reference

        ref = resolve_reference(name_or_path, revision=revision, precision=precision)
        return cls.from_reference(ref, precision=precision, threads=threads, providers=providers)

    @classmethod
    def from_reference(cls, ref, *, precision: str = "fp32", threads: int | None = None,
                       providers=None) -> "PoseEstimator":
        """The ONNX model of a resolved :class:`~dp_pose_zoo.runtime.reference.ModelRef`, checked against its card:
        the metadata must name the card's weights, method and epsilon."""
        from ..release import check_consistent

        onnx_path, card = ref.onnx(precision)
        estimator = cls(onnx_path, threads=threads, providers=providers, require_metadata=True)
        check_consistent(estimator.metadata, card, source=str(onnx_path))
        estimator.card = card
        return estimator

    def __call__(self, image: np.ndarray, boxes: np.ndarray | None = None) -> list[Person]:
        """BGR frame; boxes ``(N, 4)`` x1y1x2y2; None = one person filling the frame."""
        image = as_bgr(image)
        boxes = full_frame_boxes(image) if boxes is None else np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        batch, inverses = self.preprocess(image, boxes)
        simcc_x, simcc_y = self.logits(batch)
        return self.postprocess(simcc_x, simcc_y, inverses, boxes)

    def logits(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`inference`, averaged with the mirrored crops' when ``flip_test`` is on."""
        return simcc_logits(self.inference, batch, self.split_ratio, flip_test=self.flip_test)

    def preprocess(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        centers, scales = boxes_to_center_scale(boxes, self.input_size)
        return crop_batch(image, centers, scales, self.input_size)

    def postprocess(self, simcc_x: np.ndarray, simcc_y: np.ndarray, inverses: np.ndarray,
                    boxes: np.ndarray) -> list[Person]:
        keypoints, scores = decode_to_frame(simcc_x, simcc_y, self.split_ratio, inverses)
        return [Person(box=box.copy(), keypoints=k, scores=s) for box, k, s in zip(boxes, keypoints, scores)]
