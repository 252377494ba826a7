"""Tracking: boxes from keypoints, IoU matching with ids, det_every composition."""

from __future__ import annotations

import numpy as np

from dp_pose_zoo.runtime import Person
from dp_pose_zoo.video.tracking import IouTracker, PoseTracker, keypoints_to_box, match_by_iou


def test_keypoints_to_box_uses_confident_joints_only():
    kps = np.array([[10, 10], [20, 50], [15, 30], [500, 500]] + [[15, 20]] * 12, float)
    scores = np.array([0.9, 0.9, 0.9, 0.1] + [0.9] * 12)
    box = keypoints_to_box(kps, scores, kpt_thr=0.3, expand=1.0, frame_size=(100, 100))
    assert box.tolist() == [10, 10, 20, 50]
    assert keypoints_to_box(kps, np.zeros(16)) is None


def test_match_by_iou_is_greedy_and_thresholded():
    prev = np.array([[0, 0, 10, 10], [50, 50, 60, 60]], float)
    cur = np.array([[51, 51, 61, 61], [100, 100, 110, 110], [1, 0, 11, 10]], float)
    assert match_by_iou(prev, cur, iou_thr=0.3) == {0: 1, 2: 0}


def test_iou_tracker_keeps_ids_and_forgets_old_tracks():
    t = IouTracker(iou_thr=0.3, max_age=1)
    assert t.update(np.array([[0, 0, 10, 20], [50, 0, 60, 20]])) == [1, 2]
    assert t.update(np.array([[52, 0, 62, 20], [1, 0, 11, 20]])) == [2, 1]
    assert t.update(np.zeros((0, 4))) == []
    assert t.update(np.zeros((0, 4))) == []
    assert t.update(np.array([[0, 0, 10, 20]])) == [3]  # forgotten after max_age frames


class _Estimator:
    """A pose model that puts 16 confident joints along each box's vertical centre line."""

    def __call__(self, image, boxes):
        people = []
        for b in np.asarray(boxes, float):
            ys = np.linspace(b[1], b[3], 16)
            kps = np.stack([np.full(16, (b[0] + b[2]) / 2), ys], axis=1)
            kps[:8, 0] -= (b[2] - b[0]) / 3
            kps[8:, 0] += (b[2] - b[0]) / 3
            people.append(Person(box=b[:4].copy(), keypoints=kps, scores=np.full(16, 0.9)))
        return people


class _Detector:
    def __init__(self):
        self.calls = 0

    def __call__(self, image):
        self.calls += 1
        return np.array([[10, 10, 40, 90, 0.8], [100, 10, 130, 90, 0.7]])


def test_pose_tracker_detects_every_n_frames_and_follows_keypoints_between():
    det = _Detector()
    tracker = PoseTracker(_Estimator(), det, det_every=3)
    frame = np.zeros((120, 160, 3), np.uint8)
    runs = [tracker(frame) for _ in range(6)]
    assert det.calls == 2  # frames 0 and 3
    assert [p.box_source for p in runs[1]] == ["keypoints", "keypoints"]
    assert [p.box_source for p in runs[3]] == ["detector", "detector"]
    assert all([p.track_id for p in r] == [1, 2] for r in runs)
    assert runs[0][0].box_score == 0.8 and runs[1][0].box_score is None


def test_pose_tracker_given_boxes_and_reset():
    tracker = PoseTracker(_Estimator(), _Detector(), det_every=5, box_source="file")
    out = tracker(np.zeros((50, 50, 3), np.uint8), boxes=np.array([[0, 0, 20, 40, 1.0]]))
    assert len(out) == 1 and out[0].box_source == "file"
    tracker.reset()
    assert tracker(np.zeros((50, 50, 3), np.uint8))[0].box_source == "file"  # detects again after reset
