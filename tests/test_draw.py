"""Drawing: privacy labels, skeletons with hidden low-score joints, boxes with ids; saves a PNG to look at."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np

from _infer_fixtures import COCO_DIR
from dp_pose_zoo.video.draw import SIDE_COLORS, draw_label, draw_people, draw_skeleton, privacy_label, text_size
from dp_pose_zoo.runtime import Person
from dp_pose_zoo.skeleton import coco_to_mpii


def test_privacy_label():
    block = {"epsilon": 8.0, "delta": 1e-5, "clipping_norm": 1.0, "method": "dp-sgd"}
    assert privacy_label(block) == "ε=8.0 (δ=1e-05, C=1.0) dp-sgd"
    assert privacy_label({**block, "epsilon": 7.931}).startswith("ε=7.94 ")  # rounded up, never down
    assert privacy_label({**block, "epsilon": 7.9300000001}).startswith("ε=7.94 ")
    assert privacy_label({**block, "epsilon": 0.1}).startswith("ε=0.1 ")  # the decimal given, not its binary value
    assert privacy_label({**block, "epsilon": 0.2}).startswith("ε=0.2 ")
    assert privacy_label({**block, "epsilon": 0.10000001}).startswith("ε=0.11 ")
    assert privacy_label({"epsilon": math.inf, "method": "non-private"}) == "ε=∞ non-private"
    assert privacy_label(None).startswith("privacy unknown")


def test_a_claim_no_model_card_vouches_for_is_labelled_unverified():
    block = {"epsilon": 0.1, "delta": 1e-5, "clipping_norm": 1.0, "method": "dp-sgd"}
    assert "unverified" not in privacy_label(block)
    assert privacy_label(block, verified=False) == "ε=0.1 (δ=1e-05, C=1.0) dp-sgd, unverified (no model card)"
    assert privacy_label(None, verified=False).startswith("privacy unknown")
    img = np.zeros((120, 480, 3), np.uint8)
    assert not np.array_equal(draw_people(img, [], privacy=block), draw_people(img, [], privacy=block, verified=False))


def test_label_draws_greek_glyphs_not_question_marks():
    img = np.zeros((40, 300, 3), np.uint8)
    draw_label(img, "ε=8.0 (δ=1e-05)", scale=0.5)
    assert img.any() and text_size("ε", scale=0.5)[0] > 0


def test_skeleton_hides_low_score_joints():
    kps = np.array([[20 + 5 * i, 20 + 8 * i] for i in range(16)], float)
    img = np.zeros((200, 200, 3), np.uint8)
    draw_skeleton(img, kps, np.zeros(16), kpt_thr=0.3)
    assert not img.any()
    scores = np.zeros(16)
    scores[[0, 1]] = 1.0  # right ankle - right knee: a right-side bone
    draw_skeleton(img, kps, scores, kpt_thr=0.3, thickness=2, radius=1)
    mid = ((kps[0] + kps[1]) / 2).astype(int)
    assert tuple(img[mid[1], mid[0]]) == SIDE_COLORS[2]


def test_annotated_coco_photo(tmp_path):
    """Ground-truth MPII-16 joints of a real photo, drawn; the PNG is kept for a human look."""
    ann = json.loads((COCO_DIR / "test_coco.json").read_text())
    image_info = ann["images"][0]
    img = cv2.imread(str(COCO_DIR / image_info["file_name"]))
    people = []
    for a in ann["annotations"]:
        if a["image_id"] == image_info["id"] and a.get("num_keypoints", 0) > 0:
            joints, visible, _ = coco_to_mpii(np.array(a["keypoints"]))
            x, y, w, h = a["bbox"]
            people.append(Person(box=np.array([x, y, x + w, y + h]), keypoints=joints, scores=visible))
    out = draw_people(img, people, privacy={"epsilon": 8.0, "delta": 1e-5, "clipping_norm": 1.0,
                                            "method": "dp-sgd"})
    assert out.shape == img.shape and not np.array_equal(out, img) and people
    assert np.array_equal(img, cv2.imread(str(COCO_DIR / image_info["file_name"])))  # input untouched
    cv2.imwrite(str(tmp_path / "annotated.png"), out)
