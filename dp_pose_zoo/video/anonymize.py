"""Hiding who the people in an output video are: blurred or pixelated faces or bodies, or skeletons alone.

The model is private with respect to its training data; the *footage* it runs
on is not. ``blur`` and ``pixelate`` hide each found person's face -- located
from the head joints (``upper_neck`` and ``head_top``) -- or, with
``region="body"``, their whole box. When the head joints are not confident the
face is taken as the top of the person's box, so a doubt hides more, not less.
``skeleton`` keeps no pixel of the frame at all: skeletons on a blank frame.
``avatar`` replaces each found person's whole box (and their head where it
sticks out of the box) by a coarse smear of it (a
few cells of mean colour, smoothed: no face, clothing or body shape survives)
with a faceless mannequin on top, posed on their keypoints by SynthPose's own
painter, so the motion stays readable in its surroundings.

:func:`hidden_regions` says which boxes a mode hides (``keypoints.json`` records
them per frame); recoverable outputs seal the original pixels of everything a
frame changed (:mod:`dp_pose_zoo.video.recovery`).

Only people that were found are hidden: a person the detector missed stays
visible in ``blur``/``pixelate`` output; ``skeleton`` is the mode that cannot leak.
"""

from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np

from ..skeleton import JOINT_INDEX

MODES: tuple[str, ...] = ("blur", "pixelate", "skeleton", "avatar")
REGIONS: tuple[str, ...] = ("face", "body")
NECK, TOP = JOINT_INDEX["upper_neck"], JOINT_INDEX["head_top"]
SMEAR_CELLS = 6  # an avatar's backdrop: the person's box as 6 x 6 cells of mean colour, smoothed
AVATAR_PAINT = (196, 186, 170)  # BGR: one neutral colour for every body part
AVATAR_INK = (60, 55, 50)


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


def _coarsen_region(image: np.ndarray, box: np.ndarray, cells: int, interpolation: int) -> np.ndarray:
    """Replace ``box`` in place by its ``cells`` x ``cells`` (at most) mean colours, scaled back up with
    ``interpolation``: nothing finer than a cell survives."""
    where = _region(image, box)
    if where is not None:
        patch = image[where]
        h, w = patch.shape[:2]
        means = cv2.resize(patch, (max(1, min(cells, w)), max(1, min(cells, h))), interpolation=cv2.INTER_AREA)
        image[where] = cv2.resize(means, (w, h), interpolation=interpolation)
    return image


def pixelate_region(image: np.ndarray, box: np.ndarray, *, blocks: int = 6) -> np.ndarray:
    """Replace ``box`` in place by a ``blocks`` x ``blocks`` mosaic (at most)."""
    return _coarsen_region(image, box, blocks, cv2.INTER_NEAREST)


def smear_region(image: np.ndarray, box: np.ndarray, *, cells: int = SMEAR_CELLS) -> np.ndarray:
    """Replace ``box`` in place by its ``cells`` x ``cells`` mean colours, smoothly interpolated.

    The result depends on those cell means alone, so nothing finer than a cell
    (a face, a print on a shirt, the outline of a body) can be read from it.
    """
    return _coarsen_region(image, box, cells, cv2.INTER_LINEAR)


def paint_mannequin(image: np.ndarray, person, *, kpt_thr: float = 0.3) -> np.ndarray:
    """A faceless mannequin on ``person``'s confident keypoints, in place, by SynthPose's painter."""
    from ..datasets.synthpose import mannequin_parts, paint_parts

    box = np.asarray(person.box, dtype=np.float64)[:4]
    pts = np.asarray(person.keypoints, dtype=np.float64)
    shown = (np.asarray(person.scores) >= kpt_thr) & np.isfinite(pts).all(axis=1)
    parts = mannequin_parts(pts, shown, max(box[3] - box[1], 1.0))  # the box's height stands for the stature
    return paint_parts(image, parts, dict.fromkeys(("torso", "neck", "head", "thigh", "shin", "upper_arm",
                                                    "forearm", "hand"), AVATAR_PAINT), outline=AVATAR_INK)


def _check(mode: str, region: str) -> None:
    if mode not in MODES:
        raise ValueError(f"anonymize mode must be one of {', '.join(MODES)}, got {mode!r}")
    if region not in REGIONS:
        raise ValueError(f"anonymize region must be one of {', '.join(REGIONS)}, got {region!r}")


def _hidden_box(person, *, mode: str, region: str, kpt_thr: float) -> np.ndarray:
    box = np.asarray(person.box, dtype=np.float64)[:4]
    if region == "body" and mode != "avatar":
        return box
    face = face_box(person.keypoints, person.scores, person.box, kpt_thr=kpt_thr)
    if mode != "avatar":
        return face
    # An avatar hides the whole person: the box, and the head where it sticks out of the box.
    return np.concatenate([np.minimum(box[:2], face[:2]), np.maximum(box[2:], face[2:])])


def hidden_regions(image_shape: tuple[int, ...], people: Iterable, *, mode: str = "blur", region: str = "face",
                   kpt_thr: float = 0.3) -> list[dict]:
    """What :func:`anonymize` hides, as ``keypoints.json`` records it: per region the person's position in
    ``people`` (null for ``skeleton``, which hides the whole frame), ``how`` and the integer pixel ``box``
    ``[x1, y1, x2, y2]`` (clipped to the frame, end exclusive)."""
    _check(mode, region)
    h, w = image_shape[:2]
    if mode == "skeleton":
        return [{"person": None, "how": mode, "box": [0, 0, w, h]}]
    regions = []
    for i, person in enumerate(people):
        where = _region(np.empty((h, w, 0)), _hidden_box(person, mode=mode, region=region, kpt_thr=kpt_thr))
        if where is not None:
            ys, xs = where
            regions.append({"person": i, "how": mode, "box": [xs.start, ys.start, xs.stop, ys.stop]})
    return regions


def anonymize(image: np.ndarray, people: Iterable, *, mode: str = "blur", region: str = "face",
              kpt_thr: float = 0.3) -> np.ndarray:
    """A copy of ``image`` with ``people`` hidden; ``skeleton`` returns a blank frame (draw skeletons on it)."""
    _check(mode, region)
    if mode == "skeleton":
        return np.zeros_like(image)
    out = image.copy()
    people = list(people)
    hide = {"blur": blur_region, "pixelate": pixelate_region, "avatar": smear_region}[mode]
    for person in people:  # an avatar's backdrops all first, so no person's smear covers another's mannequin
        hide(out, _hidden_box(person, mode=mode, region=region, kpt_thr=kpt_thr))
    if mode == "avatar":
        for person in people:
            paint_mannequin(out, person, kpt_thr=kpt_thr)
    return out
