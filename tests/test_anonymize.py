"""Anonymizing: face boxes from head joints (or the box top), blur/pixelate change only those, skeleton blanks."""

from __future__ import annotations

import numpy as np
import pytest

from dp_pose_zoo.anonymize import NECK, TOP, anonymize, face_box
from dp_pose_zoo.runtime import Person


def _person(head_score: float = 0.9) -> Person:
    kps = np.tile([50.0, 100.0], (16, 1))
    kps[NECK], kps[TOP] = [50, 40], [50, 20]
    scores = np.full(16, 0.9)
    scores[[NECK, TOP]] = head_score
    return Person(box=np.array([30.0, 10.0, 70.0, 150.0]), keypoints=kps, scores=scores)


def _noise() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (160, 120, 3), dtype=np.uint8)


def test_face_box_from_head_joints_or_box_top():
    p = _person()
    assert face_box(p.keypoints, p.scores, p.box).tolist() == pytest.approx([34, 14, 66, 46])
    q = _person(head_score=0.0)
    box = face_box(q.keypoints, q.scores, q.box)
    assert box[1] == pytest.approx(10) and box[3] - box[1] >= 35  # the top of the person's box


@pytest.mark.parametrize("mode", ["blur", "pixelate"])
def test_blur_and_pixelate_change_the_face_only(mode):
    img = _noise()
    out = anonymize(img, [_person()], mode=mode)
    assert not np.array_equal(out[16:44, 36:64], img[16:44, 36:64])
    assert np.array_equal(out[60:, :], img[60:, :]) and np.array_equal(img, _noise())
    body = anonymize(img, [_person()], mode=mode, region="body")
    assert not np.array_equal(body[100:140, 35:65], img[100:140, 35:65])


def test_skeleton_mode_keeps_no_pixel():
    assert not anonymize(_noise(), [_person()], mode="skeleton").any()
    with pytest.raises(ValueError):
        anonymize(_noise(), [], mode="smudge")
