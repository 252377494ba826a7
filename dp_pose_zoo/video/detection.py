"""Person boxes for the top-down pose model: detectors that need no download, an ONNX one, or given boxes.

Every detector is a :class:`Detector`: ``detect(frame)`` gives an ``(N, 5)``
float array of ``x1 y1 x2 y2 score`` in frame pixels, best first (the image
detectors are also callables on a bare image), and ``close()`` -- or a
``with`` block -- releases what it holds. :func:`make_detector` builds one from
the CLI's spec:

``hog``
    OpenCV's built-in HOG + linear-SVM people detector (Dalal & Triggs), with
    non-maximum suppression. OpenCV 4.x has it; OpenCV 5 moved it to
    opencv-contrib, and asking for it there is a :class:`DetectorError` with a hint.
``motion``
    Moving-people blobs from OpenCV's MOG2 background subtractor (in every
    OpenCV build, no model file). Meant for a fixed camera (video or webcam):
    it must see every frame (:meth:`MotionDetector.observe`) and finds no one
    in a still image or in the first frames while it learns the background.
``onnx:PATH``
    A YOLOX- or RTMDet-style ONNX detector (see :class:`OnnxDetector`).
``full``
    One person filling the frame (a single-person video, a cropped photo).
``boxes.json``
    Boxes given per frame (see :class:`BoxesFile` for the schema).
``auto`` (the CLI default)
    ``hog`` where OpenCV has it; otherwise ``motion`` for a video or webcam and
    ``full`` for still images (with a warning saying so).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..errors import DetectorError
from .sources import Frame

log = logging.getLogger(__name__)

NO_BOXES = np.zeros((0, 5), dtype=np.float64)


class Detector:
    """Base of every detector: :meth:`detect` a frame's people; :meth:`close` (or ``with``) when done.

    An image detector implements ``__call__(image)``; one that needs to know
    which frame it is (:class:`BoxesFile`) overrides :meth:`detect`.
    """

    name = "detector"  # keypoints.json's settings.detector
    box_source = "detector"  # keypoints.json's box_source for the boxes it gives
    every_frame = False  # True: asked on every frame, never followed from keypoints in between

    def detect(self, frame: Frame) -> np.ndarray:
        """``(N, 5)`` boxes ``x1 y1 x2 y2 score`` of the people in ``frame``, best first."""
        return self(frame.image)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__ or detect")

    def observe(self, image: np.ndarray) -> None:
        """See a frame that is not detected on (the tracker follows keypoints there); most detectors need not."""

    def close(self) -> None:
        """Release what the detector holds (idempotent)."""

    def __enter__(self) -> "Detector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CallableDetector(Detector):
    """Any ``image -> (N, 5)`` callable (a stub, another library's detector) as a :class:`Detector`."""

    def __init__(self, function: Callable[[np.ndarray], np.ndarray]):
        self.function = function
        self.name = getattr(function, "name", type(function).__name__)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.function(image)


def as_detector(detector: Detector | Callable[[np.ndarray], np.ndarray]) -> Detector:
    """``detector`` itself, or a bare callable wrapped as one."""
    return detector if isinstance(detector, Detector) else CallableDetector(detector)


# --- pure box maths ----------------------------------------------------------

def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix ``(len(a), len(b))`` of ``x1 y1 x2 y2`` boxes (extra columns ignored)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, np.shape(a)[-1] if np.size(a) else 4)[:, :4]
    b = np.asarray(b, dtype=np.float64).reshape(-1, np.shape(b)[-1] if np.size(b) else 4)[:, :4]
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda t: np.clip(t[:, 2] - t[:, 0], 0, None) * np.clip(t[:, 3] - t[:, 1], 0, None)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, *, iou_thr: float = 0.45) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        ious = box_iou(boxes[i:i + 1], boxes[order[1:]])[0]
        order = order[1:][ious <= iou_thr]
    return np.array(keep, dtype=np.int64)


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Boxes clipped to the frame; columns past the fourth are kept."""
    out = np.array(boxes, dtype=np.float64).reshape(-1, np.shape(boxes)[-1] if np.size(boxes) else 5)
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    return out


def with_scores(boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``(N, 5)`` sorted by score, best first."""
    dets = np.hstack([np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64).reshape(-1, 1)])
    return dets[np.argsort(-dets[:, 4], kind="stable")] if len(dets) else NO_BOXES.copy()


# --- detectors -----------------------------------------------------------------

class FullFrameDetector(Detector):
    """One person filling the frame (score 1)."""

    name = box_source = "full"

    def __call__(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        return np.array([[0.0, 0.0, float(w), float(h), 1.0]])


def has_hog() -> bool:
    """Whether this OpenCV build still carries the HOG people detector (OpenCV 4.x does, 5 does not)."""
    return hasattr(cv2, "HOGDescriptor") and hasattr(cv2, "HOGDescriptor_getDefaultPeopleDetector")


class HogDetector(Detector):
    """OpenCV's HOG people detector. Its window is 64x128, so small frames are upscaled first."""

    name = "hog"

    def __init__(self, *, min_height: int = 576, scale: float = 1.05, hit_threshold: float = 0.0,
                 iou_thr: float = 0.4):
        if not has_hog():
            raise DetectorError(f"this OpenCV ({cv2.__version__}) has no HOG people detector (OpenCV 5 moved it to "
                                "opencv-contrib); pip install \"opencv-python-headless<5\", or use --detector "
                                "motion|onnx:PATH, or --boxes full|boxes.json")
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.min_height, self.scale, self.hit_threshold, self.iou_thr = min_height, scale, hit_threshold, iou_thr

    def __call__(self, image: np.ndarray) -> np.ndarray:
        zoom = max(1.0, self.min_height / image.shape[0])
        work = cv2.resize(image, None, fx=zoom, fy=zoom) if zoom > 1.0 else image
        rects, weights = self._hog.detectMultiScale(work, hitThreshold=self.hit_threshold, winStride=(8, 8),
                                                    padding=(8, 8), scale=self.scale)
        if len(rects) == 0:
            return NO_BOXES.copy()
        rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4) / zoom
        boxes = np.hstack([rects[:, :2], rects[:, :2] + rects[:, 2:]])
        scores = np.asarray(weights, dtype=np.float64).ravel()
        keep = nms(boxes, scores, iou_thr=self.iou_thr)
        return with_scores(boxes[keep], scores[keep])


def merge_blobs(boxes: np.ndarray, *, reach_x: float = 0.2, reach_y: float = 0.35) -> np.ndarray:
    """Union ``x1 y1 x2 y2`` boxes that come within ``reach_x`` / ``reach_y`` x the taller one's height.

    A walking person often splits into head, torso and legs blobs (or left and
    right halves); this puts them back together. Pure; repeated until nothing merges.
    """
    boxes = [np.asarray(b, dtype=np.float64) for b in np.asarray(boxes, dtype=np.float64).reshape(-1, 4)]
    merged = True
    while merged and len(boxes) > 1:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                tall = max(a[3] - a[1], b[3] - b[1])
                gap_x = max(a[0], b[0]) - min(a[2], b[2])
                gap_y = max(a[1], b[1]) - min(a[3], b[3])
                if gap_x < reach_x * tall and gap_y < reach_y * tall:
                    boxes[i] = np.array([min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])])
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return np.array(boxes).reshape(-1, 4)


class MotionDetector(Detector):
    """Moving people as foreground blobs of a MOG2 background model (fixed camera; no model file).

    The model must see every frame: the tracker shows it the frames it does not detect on (:meth:`observe`).
    """

    name = "motion"

    def __init__(self, *, work_width: int = 384, min_area: float = 0.0008, history: int = 100,
                 var_threshold: float = 25.0, pad: float = 0.1):
        self.work_width, self.min_area, self.pad = work_width, min_area, pad
        self._subtractor = cv2.createBackgroundSubtractorMOG2(history=history, varThreshold=var_threshold,
                                                              detectShadows=True)
        self._mask: np.ndarray | None = None
        self._zoom = 1.0

    def observe(self, image: np.ndarray) -> None:
        """Feed a frame to the background model."""
        self._zoom = min(1.0, self.work_width / image.shape[1])
        small = cv2.resize(image, None, fx=self._zoom, fy=self._zoom, interpolation=cv2.INTER_AREA) \
            if self._zoom < 1.0 else image
        mask = self._subtractor.apply(small)
        mask = ((mask > 200) * 255).astype(np.uint8)  # 127 is MOG2's shadow label
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        self._mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 11)))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Boxes of the moving people in ``image`` (which the background model sees first)."""
        self.observe(image)
        mask = self._mask
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        min_px = self.min_area * mask.shape[0] * mask.shape[1]
        rects = np.array([s[:4] for s in stats[1:n] if s[4] >= min_px / 4], dtype=np.float64).reshape(-1, 4)
        boxes = merge_blobs(np.hstack([rects[:, :2], rects[:, :2] + rects[:, 2:]]))
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        boxes = boxes[area >= min_px]
        if not len(boxes):
            return NO_BOXES.copy()
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        boxes = boxes + np.stack([-w, -h, w, h], axis=1) * self.pad / 2
        boxes /= self._zoom
        fill = np.array([mask[int(b[1] * self._zoom):int(b[3] * self._zoom) + 1,
                              int(b[0] * self._zoom):int(b[2] * self._zoom) + 1].mean() / 255 for b in boxes])
        return with_scores(clip_boxes(boxes, image.shape[1], image.shape[0])[:, :4], fill)


class BoxesFile(Detector):
    """Boxes given per frame in a JSON file, for footage whose people are already found elsewhere.

    Schema (documented in docs/output-format.md)::

        {"frames": {"0": [[x1, y1, x2, y2], [x1, y1, x2, y2, score]], "12": []},
         "default": [[x1, y1, x2, y2]]}

    Keys of ``frames`` are 0-based frame indices (as strings, JSON's rule) or,
    for image folders, image file stems. A frame not listed gets ``default``
    (or no one when it is absent). Boxes are in frame pixels; score defaults to 1.
    A bare list ``[[x1, y1, x2, y2], ...]`` is the same boxes on every frame.
    """

    name, box_source = "boxes-file", "file"
    every_frame = True  # its boxes are given for every frame: nothing to follow between detections

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            raise DetectorError(f"boxes file not found: {self.path}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DetectorError(f"cannot read boxes file {self.path}: {e}") from None
        if isinstance(data, list):
            data = {"default": data}
        if not isinstance(data, dict) or not isinstance(data.get("frames", {}), dict):
            raise DetectorError(f"{self.path}: expected {{\"frames\": {{index: [[x1, y1, x2, y2], ...]}}}}")
        self.frames = {str(k): self._parse(v, f"frames[{k!r}]") for k, v in data.get("frames", {}).items()}
        self.default = self._parse(data["default"], "default") if "default" in data else NO_BOXES.copy()

    def _parse(self, value, where: str) -> np.ndarray:
        rows = []
        for box in value if isinstance(value, list) else [None]:
            if not isinstance(box, list) or len(box) not in (4, 5) or \
                    not all(isinstance(v, (int, float)) and np.isfinite(v) for v in box):
                raise DetectorError(f"{self.path}: {where} must be a list of [x1, y1, x2, y2(, score)] numbers")
            if box[2] <= box[0] or box[3] <= box[1]:
                raise DetectorError(f"{self.path}: {where} has a box with x2 <= x1 or y2 <= y1: {box}")
            rows.append([*box[:4], box[4] if len(box) == 5 else 1.0])
        return np.array(rows, dtype=np.float64).reshape(-1, 5)

    def boxes_for(self, index: int, name: str | None = None) -> np.ndarray:
        """Boxes of frame ``index`` (or of the image named ``name``)."""
        for key in (str(index), name):
            if key is not None and key in self.frames:
                return self.frames[key].copy()
        return self.default.copy()

    def detect(self, frame: Frame) -> np.ndarray:
        return self.boxes_for(frame.index, frame.name)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.default.copy()


YOLOX_STRIDES: tuple[int, ...] = (8, 16, 32)
PAD_VALUE = 114  # YOLOX's and RTMDet's letterbox fill


def letterbox(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Resize keeping the aspect into the top-left of a ``(h, w)`` canvas filled with 114; returns it and the ratio."""
    h, w = size
    ratio = min(h / image.shape[0], w / image.shape[1])
    new_w, new_h = max(1, int(round(image.shape[1] * ratio))), max(1, int(round(image.shape[0] * ratio)))
    resized = cv2.resize(image, (new_w, new_h),
                         interpolation=cv2.INTER_LINEAR)
    canvas = np.full((h, w, 3), PAD_VALUE, dtype=np.uint8)
    canvas[:resized.shape[0], :resized.shape[1]] = resized[:h, :w]
    return canvas, ratio


def decode_yolox(raw: np.ndarray, size: tuple[int, int], *,
                 strides: tuple[int, ...] = YOLOX_STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """A raw YOLOX head ``(A, 5 + C)`` (grid offsets, log sizes, objectness, classes) to person boxes and scores."""
    h, w = size
    grids, steps = [], []
    for s in strides:
        ys, xs = np.meshgrid(np.arange(h // s), np.arange(w // s), indexing="ij")
        grids.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        steps.append(np.full((xs.size, 1), s))
    grid, step = np.concatenate(grids).astype(np.float64), np.concatenate(steps).astype(np.float64)
    if len(grid) != len(raw):
        raise DetectorError(f"raw YOLOX output has {len(raw)} anchors; a {h}x{w} input with strides {strides} "
                            f"makes {len(grid)}")
    centre = (raw[:, :2] + grid) * step
    half = np.exp(np.clip(raw[:, 2:4], -20, 20)) * step / 2
    scores = raw[:, 4] * raw[:, 5]  # objectness x person (class 0)
    return np.hstack([centre - half, centre + half]), scores


class OnnxDetector(Detector):
    """A YOLOX- or RTMDet-style person detector exported to ONNX (rtmlib's layout).

    Input: one ``(1, 3, H, W)`` float32 tensor, fixed H and W (640x640 when the
    graph leaves them free): the frame in BGR, letterboxed into the top-left
    corner (aspect kept, the rest filled with 114), values 0-255 -- or
    ``(x - mean) / std`` per BGR channel when ``mean`` and ``std`` are given
    (RTMDet's are 103.53, 116.28, 123.675 and 57.375, 57.12, 58.395).

    Output, either of:

    - end-to-end (NMS inside the graph, as mmdeploy and rtmlib export them):
      ``dets (1, N, 5)`` ``x1 y1 x2 y2 score`` in input pixels, and optionally
      ``labels (1, N)``, of which class 0 (person) is kept;
    - a raw YOLOX head ``(1, A, 5 + C)``: per anchor of strides 8, 16, 32, the
      centre offset in cells, log width and height, objectness and C class
      scores; decoded here, scored objectness x class 0, then NMS.
    """

    name = "onnx"

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None, score_thr: float = 0.3,
                 iou_thr: float = 0.45, mean: tuple[float, float, float] | None = None,
                 std: tuple[float, float, float] | None = None):
        from ..runtime.onnx_model import open_session

        self.path = Path(path)
        try:
            self.session = open_session(self.path, threads=threads)
        except Exception as e:  # CheckpointError speaks of pose models; say detector
            raise DetectorError(str(e).replace("ONNX model", "ONNX detector")) from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = inputs[0].shape
        if len(inputs) != 1 or len(shape) != 4 or shape[1] not in (3, "3"):
            raise DetectorError(f"{self.path}: a detector needs one (1, 3, H, W) input, "
                                f"got {[i.shape for i in inputs]}")
        self.input_name = inputs[0].name
        self.input_size = tuple(d if isinstance(d, int) and d > 0 else 640 for d in shape[2:])
        self.output_names = [o.name for o in outputs]
        self.score_thr, self.iou_thr = score_thr, iou_thr
        self.mean = None if mean is None else np.asarray(mean, np.float32)
        self.std = None if std is None else np.asarray(std, np.float32)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        canvas, ratio = letterbox(image, self.input_size)
        x = canvas.astype(np.float32)
        if self.mean is not None and self.std is not None:
            x = (x - self.mean) / self.std
        outputs = self.session.run(self.output_names, {self.input_name: x.transpose(2, 0, 1)[None]})
        boxes, scores = self.postprocess(outputs)
        keep = scores >= self.score_thr
        boxes, scores = boxes[keep] / ratio, scores[keep]
        idx = nms(boxes, scores, iou_thr=self.iou_thr)
        return with_scores(clip_boxes(boxes[idx], image.shape[1], image.shape[0]), scores[idx])

    def postprocess(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Boxes ``(N, 4)`` in input pixels and scores ``(N,)`` from either output layout."""
        first = np.asarray(outputs[0], dtype=np.float64)
        if first.ndim != 3 or first.shape[0] != 1:
            raise DetectorError(f"{self.path}: expected a (1, N, 5) or (1, A, 5 + C) output, got {first.shape}")
        first = first[0]
        if first.shape[1] == 5:
            boxes, scores = first[:, :4], first[:, 4]
            if len(outputs) > 1:
                labels = np.asarray(outputs[1]).reshape(-1)[:len(first)]
                boxes, scores = boxes[labels == 0], scores[labels == 0]
            return boxes, scores
        if first.shape[1] > 5:
            return decode_yolox(first, self.input_size)
        raise DetectorError(f"{self.path}: output {outputs[0].shape} is neither (1, N, 5) nor (1, A, 5 + C)")

    def close(self) -> None:
        self.session = None  # ONNX Runtime frees a session's memory with its last reference


def make_detector(spec: str = "auto", *, video: bool = True, threads: int | None = None) -> Detector:
    """The detector a CLI spec names: ``auto``, ``hog``, ``motion``, ``full``, ``onnx:PATH`` or a boxes ``.json``."""
    if spec == "auto":
        if has_hog():
            return HogDetector()
        if video:
            log.info("OpenCV %s has no HOG people detector; using motion blobs", cv2.__version__)
            return MotionDetector()
        log.warning("OpenCV %s has no built-in people detector for still images; each image is taken as one "
                    "person (use --detector onnx:PATH to find several)", cv2.__version__)
        return FullFrameDetector()
    if spec == "hog":
        return HogDetector()
    if spec == "motion":
        return MotionDetector()
    if spec == "full":
        return FullFrameDetector()
    if spec.startswith("onnx:"):
        return OnnxDetector(spec[len("onnx:"):], threads=threads)
    if spec.endswith(".json"):
        return BoxesFile(spec)
    raise DetectorError(f"unknown detector {spec!r}; use auto, hog, motion, full, onnx:PATH or a boxes .json")
