"""PCKh against numbers worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from dp_pose_zoo.errors import DatasetError
from dp_pose_zoo.metrics import format_pckh_table, pckh_per_joint, pckh_table

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
