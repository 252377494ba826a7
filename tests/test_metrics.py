"""PCKh against numbers worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from dp_pose_zoo.errors import DatasetError
from dp_pose_zoo.metrics import format_limb_line, format_pckh_table, limb_pckh, pckh_per_joint, pckh_table
from dp_pose_zoo.skeleton import JOINT_NAMES

# Head box 0: (0, 0) - (30, 40): diagonal sqrt(30^2 + 40^2) = 50, head size 0.6 * 50 = 30,
#   so alpha 0.5 -> 15 px, alpha 0.1 -> 3 px.
# Head box 1: (10, 20) - (16, 28): diagonal sqrt(6^2 + 8^2) = 10, head size 6,
#   so alpha 0.5 -> 3 px, alpha 0.1 -> 0.6 px.
BOXES = np.array([[0.0, 0.0, 30.0, 40.0], [10.0, 20.0, 16.0, 28.0]])

# Prediction offset (dx, dy) and visibility per joint, for person 0 and person 1.
# Columns: joint, p0 offset, p0 visible, p1 offset, p1 visible.
CASE = [
    (0, (0, 0), 1, (0, 0), 1),            # r_ankle: all right
    (1, (0, 14.9), 1, (0, 2.9), 1),       # r_knee: 14.9/30 = .497 and 2.9/6 = .483 -> right @.5, wrong @.1
    (2, (0, 15.1), 1, (1e6, 1e6), 0),     # r_hip: 15.1/30 = .503 wrong; p1 invisible with a wild guess
    (3, (9, 12), 1, (0, 0), 1),           # l_hip: p0 exactly 15 = .5 -> right (<=) @.5, wrong @.1; p1 right
    (4, (0, 0), 1, (3.1, 0), 1),          # l_knee: p1 3.1/6 = .517 wrong
    (5, (0, 0), 1, (0, 0), 1),            # l_ankle
    (6, (500, 0), 1, (500, 0), 1),        # pelvis: wrong, excluded from Mean
    (7, (0, 500), 1, (0, 500), 1),        # thorax: wrong, excluded from Mean
    (8, (0, 0), 1, (0, 0), 1),            # upper_neck
    (9, (0, 2), 1, (0.5, 0), 1),          # head_top: 2/30 = .067, .5/6 = .083 -> right even @.1
    (10, (20, 0), 1, (0, 0), 0),          # r_wrist: p0 20/30 wrong, p1 invisible
    (11, (0, 0), 1, (0, 0), 1),           # r_elbow
    (12, (0, 0), 1, (0, 0), 1),           # r_shoulder
    (13, (0, 0), 1, (0, 0), 1),           # l_shoulder
    (14, (0, 0), 1, (0, 0), 1),           # l_elbow
    (15, (0, 0), 1, (0, 0), 1),           # l_wrist
]


def make_case() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    gt = np.zeros((2, 16, 2))
    gt[:, :, 0] = 100.0 + 10.0 * np.arange(16)  # arbitrary ground-truth positions
    gt[:, :, 1] = 200.0
    gt[1] += 37.0
    pred = gt.copy()
    visible = np.zeros((2, 16))
    for joint, off0, vis0, off1, vis1 in CASE:
        pred[0, joint] += off0
        pred[1, joint] += off1
        visible[0, joint], visible[1, joint] = vis0, vis1
    return pred, gt, visible, BOXES.copy()


def test_per_joint_values_and_counts():
    pckh, counts = pckh_per_joint(*make_case())
    # counts: every joint visible twice except r_hip (2) and r_wrist (10), once each.
    expected_counts = [2] * 16
    expected_counts[2] = expected_counts[10] = 1
    assert counts.tolist() == expected_counts
    expected = np.full(16, 100.0)
    expected[2] = 0.0    # r_hip: 0 of 1 (the invisible wild guess is not counted)
    expected[4] = 50.0   # l_knee: 1 of 2
    expected[6] = 0.0    # pelvis: 0 of 2
    expected[7] = 0.0    # thorax: 0 of 2
    expected[10] = 0.0   # r_wrist: 0 of 1
    np.testing.assert_allclose(pckh, expected)


def test_per_joint_at_alpha_01():
    pckh, _ = pckh_per_joint(*make_case(), alpha=0.1)
    assert pckh[1] == 0.0    # r_knee: 14.9 > 3 and 2.9 > 0.6
    assert pckh[3] == 50.0   # l_hip: p0 15 > 3 wrong, p1 0 right
    assert pckh[9] == 100.0  # head_top: 2 <= 3 and 0.5 <= 0.6


def test_boundary_just_inside_and_outside():
    pred, gt, visible, boxes = make_case()
    # Person 0 only, r_ankle: move the prediction to 14.99 px (inside) then 15.01 px (outside).
    for dy, expected in ((14.99, 100.0), (15.0, 100.0), (15.01, 50.0)):
        pred[0, 0] = gt[0, 0] + (0.0, dy)
        pckh, _ = pckh_per_joint(pred, gt, visible, boxes)
        assert pckh[0] == expected, dy  # p1's r_ankle is always right: 2/2 or 1/2


def test_invisible_wild_prediction_does_not_count():
    pred, gt, visible, boxes = make_case()
    before, counts_before = pckh_per_joint(pred, gt, visible, boxes)
    pred[1, 2] = (-1e9, 1e9)   # p1's r_hip is invisible: any guess, even nan, changes nothing
    pred[1, 10] = np.nan
    after, counts_after = pckh_per_joint(pred, gt, visible, boxes)
    np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(counts_before, counts_after)


def test_table_by_hand():
    table = pckh_table(*make_case())
    assert list(table) == ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean@0.1"]
    assert table["Head"] == pytest.approx(100.0)     # head_top only
    assert table["Shoulder"] == pytest.approx(100.0)
    assert table["Elbow"] == pytest.approx(100.0)
    # Wrist: 0.5 * (r 0 + l 100) = 50. Pooling instances would give (0 + 2) / 3 = 66.67.
    assert table["Wrist"] == pytest.approx(50.0)
    # Hip: 0.5 * (r 0 + l 100) = 50 (pooled: 2 / 3 = 66.67).
    assert table["Hip"] == pytest.approx(50.0)
    # Knee: 0.5 * (r 100 + l 50) = 75.
    assert table["Knee"] == pytest.approx(75.0)
    assert table["Ankle"] == pytest.approx(100.0)
    # Mean over the 14 joints other than pelvis/thorax, weighted by visible counts:
    # 12 joints with 2 instances + r_hip and r_wrist with 1 = 26 instances.
    # Correct @.5: 2 each for 11 joints (0,1,3,5,8,9,11..15) = 22, plus l_knee 1 = 23.
    # Mean = 100 * 23 / 26 = 88.4615... (the unweighted mean of per-joint values would be 1150/14 = 82.14).
    assert table["Mean"] == pytest.approx(100.0 * 23 / 26)
    # Correct @.1: r_ankle 2, r_knee 0, r_hip 0, l_hip 1, l_knee 1, l_ankle 2, neck 2, head 2,
    # r_wrist 0, five others 2 each = 10 -> 20. Mean@0.1 = 100 * 20 / 26 = 76.923...
    assert table["Mean@0.1"] == pytest.approx(100.0 * 20 / 26)
    assert table["Mean@0.1"] != table["Mean"]


def test_pelvis_and_thorax_do_not_change_mean():
    pred, gt, visible, boxes = make_case()
    wrong = pckh_table(pred, gt, visible, boxes)
    pred[:, 6:8] = gt[:, 6:8]  # now pelvis and thorax are exact
    right = pckh_table(pred, gt, visible, boxes)
    assert pckh_per_joint(pred, gt, visible, boxes)[0][6] == 100.0
    assert right["Mean"] == wrong["Mean"]
    assert right["Mean@0.1"] == wrong["Mean@0.1"]


def test_mean_is_weighted_by_visible_counts():
    # 3 people, everything exact except the right wrist of person 0, which is wrong.
    # Only persons 0..2's r_wrist and l_wrist are visible; l_wrist is visible for all 3,
    # r_wrist only for person 0. Per joint: r_wrist 0% (1 instance), l_wrist 100% (3).
    # Weighted Mean = (0 * 1 + 100 * 3) / 4 = 75; an unweighted mean would be 50.
    gt = np.zeros((3, 16, 2)) + 50.0
    pred = gt.copy()
    pred[0, 10] += (100.0, 0.0)
    visible = np.zeros((3, 16))
    visible[:, 15] = 1
    visible[0, 10] = 1
    boxes = np.tile(BOXES[0], (3, 1))
    table = pckh_table(pred, gt, visible, boxes)
    assert table["Mean"] == pytest.approx(75.0)
    assert table["Wrist"] == pytest.approx(50.0)  # 0.5 * (0 + 100)


def test_joint_with_no_visible_instance_is_nan_and_group_uses_other_side():
    pred, gt, visible, boxes = make_case()
    visible[:, 12] = 0  # no visible right shoulder at all
    pckh, counts = pckh_per_joint(pred, gt, visible, boxes)
    assert counts[12] == 0 and np.isnan(pckh[12])
    table = pckh_table(pred, gt, visible, boxes)
    assert table["Shoulder"] == pytest.approx(100.0)  # left shoulder alone
    # The Mean loses r_shoulder's 2 right instances: 100 * 21 / 24.
    assert table["Mean"] == pytest.approx(100.0 * 21 / 24)


def test_missing_or_degenerate_head_boxes_refused_with_count():
    pred, gt, visible, _ = make_case()
    with pytest.raises(DatasetError, match="1 of 2"):
        pckh_per_joint(pred, gt, visible, [BOXES[0], None])
    with pytest.raises(DatasetError, match="2 of 2"):
        pckh_table(pred, gt, visible, np.array([[5.0, 5.0, 5.0, 5.0], [np.nan] * 4]))


@pytest.mark.parametrize("which", ["pred", "visible", "boxes"])
def test_shape_mismatch_is_value_error(which):
    pred, gt, visible, boxes = make_case()
    if which == "pred":
        pred = pred[:, :15]
    elif which == "visible":
        visible = visible[:1]
    else:
        boxes = np.vstack([boxes, boxes])
    with pytest.raises(ValueError):
        pckh_per_joint(pred, gt, visible, boxes)


def test_format_has_columns_in_order_and_aligned():
    table = pckh_table(*make_case())
    text = format_pckh_table(table, title="hand case")
    header, values = text.split("\n")
    names = ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean@0.1"]
    assert header.split() == names
    cells = values.split()
    assert " ".join(cells[:2]) == "hand case"
    assert cells[2:] == ["100.00", "100.00", "100.00", "50.00", "50.00", "75.00", "100.00", "88.46", "76.92"]
    # Right-aligned: each value ends where its header ends.
    header_ends = [m.end() for m in re.finditer(r"\S+", header)]
    value_ends = [m.end() for m in re.finditer(r"\S+", values)][2:]
    assert header_ends == value_ends


def test_format_without_title_and_missing_column():
    table = pckh_table(*make_case())
    assert format_pckh_table(table).split("\n")[1].split()[0] == "100.00"
    del table["Knee"]
    with pytest.raises(ValueError, match="Knee"):
        format_pckh_table(table)


def test_limbs_by_hand():
    limbs = limb_pckh(*make_case())
    assert list(limbs) == ["Limbs", "Limbs@0.1"]
    # The 12 limb joints (all but pelvis, thorax, upper_neck, head_top): 24 instances, less p1's r_hip and r_wrist = 22.
    # Correct @.5: r_ankle 2, r_knee 2, r_hip 0, l_hip 2, l_knee 1, l_ankle 2, r_wrist 0, r_elbow,
    # shoulders, l_elbow, l_wrist 2 each (10) = 19.
    assert limbs["Limbs"] == pytest.approx(100.0 * 19 / 22)
    # Correct @.1: r_ankle 2, r_knee 0, r_hip 0, l_hip 1, l_knee 1, l_ankle 2, r_wrist 0, the other five 2 each = 16.
    assert limbs["Limbs@0.1"] == pytest.approx(100.0 * 16 / 22)


def _limbs_by_loops(pred, gt, visible, boxes, alpha):
    """The limb figure counted person by person, joint by joint, from the MPII definition."""
    limbs = [i for i, name in enumerate(JOINT_NAMES) if name.split("_", 1)[-1] in
             ("ankle", "knee", "hip", "wrist", "elbow", "shoulder")]
    assert len(limbs) == 12
    seen = right = 0
    for n in range(len(gt)):
        (x1, y1, x2, y2) = boxes[n]
        head = 0.6 * ((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5
        for j in limbs:
            if visible[n][j]:
                seen += 1
                dx, dy = pred[n][j][0] - gt[n][j][0], pred[n][j][1] - gt[n][j][1]
                right += (dx * dx + dy * dy) ** 0.5 <= alpha * head
    return 100.0 * right / seen


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_limbs_match_a_count_by_loops(seed):
    rng = np.random.default_rng(seed)
    n = 40
    gt = rng.uniform(0, 500, (n, 16, 2))
    corner = rng.uniform(0, 400, (n, 2))
    boxes = np.hstack([corner, corner + rng.uniform(10, 60, (n, 2))])
    # Errors spread over 0..1 head sizes, so both alphas sit inside the spread.
    sizes = 0.6 * np.linalg.norm(boxes[:, 2:] - boxes[:, :2], axis=1)
    angle = rng.uniform(0, 2 * np.pi, (n, 16))
    radius = rng.uniform(0, 1.0, (n, 16)) * sizes[:, None]
    pred = gt + np.stack([np.cos(angle), np.sin(angle)], axis=2) * radius[..., None]
    visible = (rng.uniform(size=(n, 16)) > 0.3).astype(float)
    limbs = limb_pckh(pred, gt, visible, boxes)
    for key, alpha in (("Limbs", 0.5), ("Limbs@0.1", 0.1)):
        expected = _limbs_by_loops(pred, gt, visible, boxes, alpha)
        assert limbs[key] == pytest.approx(expected)
        assert 0.0 < expected < 100.0  # a figure that could have come out otherwise
    assert limbs["Limbs"] != pytest.approx(pckh_table(pred, gt, visible, boxes)["Mean"])


def test_limbs_ignore_head_neck_pelvis_thorax_but_not_a_wrist():
    pred, gt, visible, boxes = make_case()
    before = limb_pckh(pred, gt, visible, boxes)
    pred[:, 6:10] += 1000.0  # pelvis, thorax, upper neck, head top all far off
    assert limb_pckh(pred, gt, visible, boxes) == before
    assert pckh_table(pred, gt, visible, boxes)["Mean"] < 100.0 * 23 / 26  # the Mean does see the head
    pred[0, 15] += 1000.0  # p0's left wrist, right before, now wrong
    assert limb_pckh(pred, gt, visible, boxes)["Limbs"] == pytest.approx(100.0 * 18 / 22)


def test_limbs_nan_without_visible_limbs_and_line_format():
    pred, gt, visible, boxes = make_case()
    visible[:, [0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15]] = 0
    assert all(np.isnan(v) for v in limb_pckh(pred, gt, visible, boxes).values())
    line = format_limb_line(limb_pckh(*make_case()))
    assert line.startswith("Limbs (12 joints")
    assert line.split()[-4:] == ["PCKh@0.5", f"{100 * 19 / 22:.2f}", "PCKh@0.1", f"{100 * 16 / 22:.2f}"]
