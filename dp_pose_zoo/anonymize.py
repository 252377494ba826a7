"""Hiding who the people in an output video are: blurred or pixelated faces or bodies, or skeletons alone.

The model is private with respect to its training data; the *footage* it runs
on is not. ``blur`` and ``pixelate`` hide each found person's face -- located
from the head joints (``upper_neck`` and ``head_top``) -- or, with
``region="body"``, their whole box. When the head joints are not confident the
face is taken as the top of the person's box, so a doubt hides more, not less.
``skeleton`` keeps no pixel of the frame at all: skeletons on a blank frame.

Only people that were found are hidden: a person the detector missed stays
visible in ``blur``/``pixelate`` output; ``skeleton`` is the mode that cannot leak.
"""

from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np

from .skeleton import JOINT_INDEX

MODES: tuple[str, ...] = ("blur", "pixelate", "skeleton")
REGIONS: tuple[str, ...] = ("face", "body")
NECK, TOP = JOINT_INDEX["upper_neck"], JOINT_INDEX["head_top"]


def face_box(keypoints: np.ndarray, scores: np.ndarray, box: np.ndarray, *, kpt_thr: float = 0.3,
             margin: float = 1.6) -> np.ndarray:
    """A square ``x1 y1 x2 y2`` over the head: from neck and head top when both are confident, else the box's top.

    The square's side is ``margin`` times the neck-to-top distance (at least a
    fifth of the box's width, so a foreshortened head is still covered).
    """
    box = np.asarray(box, dtype=np.float64)[:4]
    bw, bh = box[2] - box[0], box[3] - box[1]
    pts, sc = np.asarray(keypoints, dtype=np.float64), np.asarray(scores)
    if sc[NECK] >= kpt_thr and sc[TOP] >= kpt_thr:
        centre = (pts[NECK] + pts[TOP]) / 2
        side = max(np.linalg.norm(pts[TOP] - pts[NECK]) * margin, 0.2 * bw, 4.0)
    else:  # no head seen: the top of the box, as wide as the box and a quarter as tall (at least square)
        side = max(bw * 0.6, bh * 0.25, 4.0)
        centre = np.array([box[0] + bw / 2, box[1] + side / 2])
    return np.concatenate([centre - side / 2, centre + side / 2])


def _region(image: np.ndarray, box: np.ndarray) -> tuple[slice, slice] | None:
    h, w = image.shape[:2]
    x1, y1 = int(np.floor(max(0, box[0]))), int(np.floor(max(0, box[1])))
    x2, y2 = int(np.ceil(min(w, box[2]))), int(np.ceil(min(h, box[3])))
    if x2 - x1 < 1 or y2 - y1 < 1:
        return None
    return slice(y1, y2), slice(x1, x2)


def blur_region(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Gaussian-blur ``box`` in place, strongly enough (kernel ~ half its size) that a face cannot be read."""
    where = _region(image, box)
    if where is not None:
        patch = image[where]
        k = max(3, (max(patch.shape[:2]) // 2) | 1)
        image[where] = cv2.GaussianBlur(patch, (k, k), 0)
    return image


def pixelate_region(image: np.ndarray, box: np.ndarray, *, blocks: int = 6) -> np.ndarray:
    """Replace ``box`` in place by a ``blocks`` x ``blocks`` mosaic (at most)."""
    where = _region(image, box)
    if where is not None:
        patch = image[where]
        h, w = patch.shape[:2]
        small = cv2.resize(patch, (max(1, min(blocks, w)), max(1, min(blocks, h))), interpolation=cv2.INTER_AREA)
        image[where] = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    return image


def anonymize(image: np.ndarray, people: Iterable, *, mode: str = "blur", region: str = "face",
              kpt_thr: float = 0.3) -> np.ndarray:
    """A copy of ``image`` with ``people`` hidden; ``skeleton`` returns a blank frame (draw skeletons on it)."""
    if mode not in MODES:
        raise ValueError(f"anonymize mode must be one of {', '.join(MODES)}, got {mode!r}")
    if region not in REGIONS:
        raise ValueError(f"anonymize region must be one of {', '.join(REGIONS)}, got {region!r}")
    if mode == "skeleton":
        return np.zeros_like(image)
    out = image.copy()
    hide = blur_region if mode == "blur" else pixelate_region
    for person in people:
        box = person.box if region == "body" else face_box(person.keypoints, person.scores, person.box,
                                                           kpt_thr=kpt_thr)
        hide(out, box)
    return out
