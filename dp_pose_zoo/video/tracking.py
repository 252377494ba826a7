"""Following people through a video: detect every N frames, track boxes from keypoints in between.

As rtmlib's ``PoseTracker(Body, det_frequency)``: the detector runs on every
``det_every``-th frame (and on any frame where no one is being followed); on
the others each person's box is the box of their last keypoints, slightly
enlarged, so the pose model follows them without the detector's cost. Track
ids are kept by box overlap (greedy IoU matching), and a track unseen for
``max_age`` frames is forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..skeleton import DEFAULT_KPT_THR
from .detection import Detector, as_detector, box_iou
from .sources import Frame

BOX_SOURCES = ("detector", "keypoints", "file", "full")


@dataclass
class TrackedPerson:
    """One person in one frame, with the id that follows them across frames."""

    track_id: int
    box: np.ndarray  # (4,) x1 y1 x2 y2, the box the pose model was run on
    keypoints: np.ndarray  # (16, 2) frame pixels
    scores: np.ndarray  # (16,)
    box_score: float | None = None  # the detector's score; None for boxes from keypoints
    box_source: str = "detector"  # one of BOX_SOURCES


def keypoints_to_box(keypoints: np.ndarray, scores: np.ndarray, *, kpt_thr: float = DEFAULT_KPT_THR,
                     expand: float = 1.2,
                     min_joints: int = 4, frame_size: tuple[int, int] | None = None) -> np.ndarray | None:
    """The box around the confident joints, enlarged by ``expand`` about its centre; None if too few joints.

    ``frame_size`` is ``(height, width)``; the box is clipped to it.
    """
    pts = np.asarray(keypoints, dtype=np.float64)[np.asarray(scores) >= kpt_thr]
    if len(pts) < min_joints:
        return None
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre, half = (lo + hi) / 2, (hi - lo) / 2 * expand
    half = np.maximum(half, [half[1] * 0.25, half[0] * 0.25])  # never a sliver
    box = np.concatenate([centre - half, centre + half])
    if frame_size is not None:
        h, w = frame_size
        box = np.clip(box, 0, [w, h, w, h])
    if box[2] - box[0] < 2 or box[3] - box[1] < 2:
        return None
    return box


def match_by_iou(previous: np.ndarray, current: np.ndarray, *, iou_thr: float = 0.3,
                 also: np.ndarray | None = None) -> dict[int, int]:
    """Greedy matching, highest IoU first: ``{current index: previous index}`` for pairs above ``iou_thr``.

    ``also`` is a second box per previous track (same order); the better of the two overlaps counts.
    """
    if not len(previous) or not len(current):
        return {}
    ious = box_iou(current, previous)
    if also is not None:
        ious = np.maximum(ious, box_iou(current, also))
    pairs: dict[int, int] = {}
    used: set[int] = set()
    for flat in np.argsort(-ious, axis=None, kind="stable"):
        c, p = np.unravel_index(flat, ious.shape)
        if ious[c, p] < iou_thr:
            break
        if c not in pairs and p not in used:
            pairs[int(c)] = int(p)
            used.add(int(p))
    return pairs


class IouTracker:
    """Track ids for boxes, kept by overlap with each track's last box."""

    def __init__(self, *, iou_thr: float = 0.3, max_age: int = 10):
        self.iou_thr, self.max_age = iou_thr, max_age
        self._boxes: dict[int, np.ndarray] = {}
        self._detected: dict[int, tuple[np.ndarray, int]] = {}
        self._velocity: dict[int, np.ndarray] = {}
        self._frame = 0
        self._age: dict[int, int] = {}
        self._next_id = 1

    def update(self, boxes: np.ndarray, *, ids: list[int] | None = None) -> list[int]:
        """Ids for ``boxes`` ``(N, >=4)``, in order; new people get new ids.

        ``ids`` are given when the boxes are known to continue those tracks
        (boxes made from each track's own keypoints): no matching is needed.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, np.shape(boxes)[-1] if np.size(boxes) else 4)[:, :4]
        ids_prev = list(self._boxes)
        if ids is None:
            # Detected boxes are compared with each track's last box and its last detected box, whichever
            # overlaps more: boxes made from keypoints can drift between detections.
            prev = np.array([self._boxes[i] for i in ids_prev]).reshape(-1, 4)
            prev_det = np.array([self._predicted(i) for i in ids_prev]).reshape(-1, 4)
            pairs = match_by_iou(prev, boxes, iou_thr=self.iou_thr, also=prev_det)
            ids = [ids_prev[pairs[c]] if c in pairs else self._new_id() for c in range(len(boxes))]
            for track, box in zip(ids, boxes):
                self._remember_detection(track, box)
        elif len(ids) != len(boxes):
            raise ValueError(f"{len(ids)} ids for {len(boxes)} boxes")
        self._frame += 1
        for track in ids_prev:
            self._age[track] = self._age.get(track, 0) + 1
        for track, box in zip(ids, boxes):
            self._boxes[track], self._age[track] = box, 0
        for track in [t for t, age in self._age.items() if age > self.max_age]:
            del self._boxes[track], self._age[track]
            self._detected.pop(track, None)
            self._velocity.pop(track, None)
        return ids

    def _remember_detection(self, track: int, box: np.ndarray) -> None:
        """Keep the detected box and a per-frame velocity from the previous detection."""
        if track in self._detected:
            old, frame = self._detected[track]
            steps = max(1, self._frame - frame)
            self._velocity[track] = (box - old) / steps
        self._detected[track] = (box.copy(), self._frame)

    def _predicted(self, track: int) -> np.ndarray:
        """The last detected box moved at its velocity to now (constant-velocity, as SORT without Kalman)."""
        if track not in self._detected:
            return self._boxes[track]
        box, frame = self._detected[track]
        return box + self._velocity.get(track, 0.0) * (self._frame - frame)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def reset(self) -> None:
        """Forget every track (ids keep counting up)."""
        self._boxes.clear()
        self._detected.clear()
        self._velocity.clear()
        self._age.clear()


class PoseTracker:
    """``PoseTracker(estimator, detector, det_every=5)(frame)``: tracked people with ids (rtmlib's composition).

    ``estimator`` is a :class:`~dp_pose_zoo.runtime.PoseEstimator` (or any
    callable ``(image, boxes) -> list[Person]``); ``detector`` a
    :class:`~dp_pose_zoo.video.detection.Detector` or any callable ``image -> (N, 5)``.
    ``box_source`` (default: the detector's) is what the people's ``box_source`` says of detected boxes.
    """

    def __init__(self, estimator: Callable, detector: Detector | Callable, *, det_every: int = 5,
                 kpt_thr: float = DEFAULT_KPT_THR,
                 iou_thr: float = 0.3, max_age: int = 10, box_source: str | None = None):
        if det_every < 1:
            raise ValueError(f"det_every must be at least 1, got {det_every}")
        self.estimator, self.detector = estimator, as_detector(detector)
        self.det_every = 1 if self.detector.every_frame else det_every
        self.kpt_thr, self.box_source = kpt_thr, box_source or self.detector.box_source
        self.tracker = IouTracker(iou_thr=iou_thr, max_age=max_age)
        self._last: list[TrackedPerson] = []
        self._frame = 0

    def __call__(self, frame: Frame | np.ndarray, *, boxes: np.ndarray | None = None) -> list[TrackedPerson]:
        """People in ``frame`` (a bare image is taken as the next frame); ``boxes`` ``(N, 4|5)`` replace the
        detector on this frame when given."""
        if not isinstance(frame, Frame):
            frame = Frame(frame, index=self._frame, name=f"frame_{self._frame:06d}", timestamp=float(self._frame))
        image = frame.image
        known_ids: list[int] | None = None
        if boxes is None and (self._frame % self.det_every == 0 or not self._last):
            dets, source = self.detector.detect(frame), self.box_source
        else:
            self.detector.observe(image)  # a background model must see the frames it does not detect on
            if boxes is not None:
                dets, source = np.asarray(boxes, dtype=np.float64), self.box_source
            else:
                dets, known_ids = self._boxes_from_keypoints(image.shape[:2])
                source = "keypoints"
        self._frame += 1
        dets = np.asarray(dets, dtype=np.float64).reshape(-1, dets.shape[-1] if dets.size else 5)
        people = self.estimator(image, dets[:, :4]) if len(dets) else []
        ids = self.tracker.update(dets[:, :4], ids=known_ids)
        self._last = [
            TrackedPerson(track_id=tid, box=p.box, keypoints=p.keypoints, scores=p.scores,
                          box_score=float(d[4]) if source != "keypoints" and len(d) > 4 else None, box_source=source)
            for tid, p, d in zip(ids, people, dets)
        ]
        return list(self._last)

    def _boxes_from_keypoints(self, frame_size: tuple[int, int]) -> tuple[np.ndarray, list[int]]:
        """Each followed person's next box, and their ids; people whose joints faded are dropped."""
        boxes, ids = [], []
        for p in self._last:
            box = keypoints_to_box(p.keypoints, p.scores, kpt_thr=self.kpt_thr, frame_size=frame_size)
            if box is not None:
                boxes.append(box)
                ids.append(p.track_id)
        return np.array(boxes, dtype=np.float64).reshape(-1, 4), ids

    def reset(self) -> None:
        """Start afresh (next frame is detected, no one is followed), e.g. between unrelated images."""
        self.tracker.reset()
        self._last = []
        self._frame = 0
