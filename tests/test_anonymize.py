"""Anonymizing: face boxes from head joints (or the box top), blur/pixelate change only those, skeleton blanks,
avatars keep nothing of the person but coarse cell means; the hidden regions as keypoints.json records them."""

from __future__ import annotations

import numpy as np
import pytest

from dp_pose_zoo.video.anonymize import NECK, SMEAR_CELLS, TOP, anonymize, face_box, hidden_regions
from dp_pose_zoo.runtime import Person
from dp_pose_zoo.skeleton import JOINT_INDEX as J


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


def _standing(box=(24.0, 12.0, 84.0, 132.0)) -> Person:
    """A person standing in ``box`` (60 x 120 px: 6 x 6 cells of 10 x 20 px), every joint well inside it."""
    x1, y1, x2, y2 = box
    cx, w, h = (x1 + x2) / 2, x2 - x1, y2 - y1
    at = {"head_top": (0, 0.08), "upper_neck": (0, 0.22), "thorax": (0, 0.26), "pelvis": (0, 0.55),
          "right_shoulder": (-0.22, 0.28), "left_shoulder": (0.22, 0.28), "right_elbow": (-0.28, 0.42),
          "left_elbow": (0.28, 0.42), "right_wrist": (-0.3, 0.55), "left_wrist": (0.3, 0.55),
          "right_hip": (-0.12, 0.56), "left_hip": (0.12, 0.56), "right_knee": (-0.14, 0.74),
          "left_knee": (0.14, 0.74), "right_ankle": (-0.15, 0.9), "left_ankle": (0.15, 0.9)}
    kps = np.zeros((16, 2))
    for name, (dx, dy) in at.items():
        kps[J[name]] = [cx + dx * w, y1 + dy * h]
    return Person(box=np.array(box), keypoints=kps, scores=np.full(16, 0.9))


def _cell_shuffled(img: np.ndarray, box) -> np.ndarray:
    """``img`` with the pixels of every smear cell of ``box`` rolled by one: the same cell means, other pixels."""
    out = img.copy()
    x1, y1, x2, y2 = (int(v) for v in box)
    ch, cw = (y2 - y1) // SMEAR_CELLS, (x2 - x1) // SMEAR_CELLS
    for y in range(y1, y2, ch):
        for x in range(x1, x2, cw):
            cell = out[y:y + ch, x:x + cw]
            cell[...] = np.roll(cell.reshape(-1, 3), 1, axis=0).reshape(cell.shape)
    return out


def test_avatar_keeps_no_pixel_of_the_person_region():
    img = np.random.default_rng(3).integers(0, 256, (160, 120, 3), dtype=np.uint8)
    person = _standing()
    other = _cell_shuffled(img, person.box)
    region = (slice(12, 132), slice(24, 84))
    assert (other[region] != img[region]).any(axis=2).mean() > 0.95  # two different people ...
    out, out_other = anonymize(img, [person], mode="avatar"), anonymize(other, [person], mode="avatar")
    assert np.array_equal(out, out_other)  # ... with equal cell means give the very same avatar
    assert (out[region] == img[region]).all(axis=2).mean() < 0.01  # no original pixel left (but by chance)
    outside = np.ones(img.shape[:2], bool)
    outside[region] = False
    assert np.array_equal(out[outside], img[outside])  # the surroundings stay as they were


def test_avatar_also_hides_a_head_outside_the_box():
    person = _person()
    person = Person(box=np.array([30.0, 40.0, 70.0, 150.0]), keypoints=person.keypoints, scores=person.scores)
    assert hidden_regions((160, 120, 3), [person], mode="avatar") == [{"person": 0, "how": "avatar",
                                                                        "box": [30, 14, 70, 150]}]
    img = _noise()
    out = anonymize(img, [person], mode="avatar")
    assert (out[14:40, 36:64] == img[14:40, 36:64]).all(axis=2).mean() < 0.01


def test_avatar_is_posed_on_the_keypoints():
    flat = np.full((160, 120, 3), 90, np.uint8)
    person = _standing()
    out = anonymize(flat, [person], mode="avatar")
    changed = (out != flat).any(axis=2)
    for name in ("head_top", "left_wrist", "right_ankle", "pelvis"):  # the mannequin covers its joints
        x, y = np.round(person.keypoints[J[name]]).astype(int)
        assert changed[y, x], name
    lowered = Person(box=person.box, keypoints=person.keypoints, scores=np.where(np.arange(16) == J["left_wrist"],
                                                                                   0.0, 0.9))
    x, y = np.round(person.keypoints[J["left_wrist"]]).astype(int)
    assert not (anonymize(flat, [lowered], mode="avatar")[y, x] != flat[y, x]).any()  # a doubtful joint: not drawn


@pytest.mark.parametrize("mode, region, expected", [
    ("blur", "face", [{"person": 0, "how": "blur", "box": [34, 14, 66, 46]}]),
    ("pixelate", "body", [{"person": 0, "how": "pixelate", "box": [30, 10, 70, 150]}]),
    ("avatar", "face", [{"person": 0, "how": "avatar", "box": [30, 10, 70, 150]}]),
    ("skeleton", "face", [{"person": None, "how": "skeleton", "box": [0, 0, 120, 160]}]),
])
def test_hidden_regions_say_what_each_mode_hides(mode, region, expected):
    assert hidden_regions((160, 120, 3), [_person()], mode=mode, region=region) == expected
    outside = Person(box=np.array([200.0, 200.0, 260.0, 300.0]), keypoints=np.full((16, 2), 230.0),
                     scores=np.full(16, 0.9))
    assert hidden_regions((160, 120, 3), [outside], mode="blur", region="body") == []
