"""Detectors: box maths, motion blobs, the ONNX detector's two layouts, boxes.json, make_detector."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from _infer_fixtures import CLIP
from dp_pose_zoo.video.detection import (BoxesFile, FullFrameDetector, HogDetector, MotionDetector, OnnxDetector, box_iou,
                                   decode_yolox, has_hog, letterbox, make_detector, merge_blobs, nms)
from dp_pose_zoo.errors import DetectorError
from dp_pose_zoo.video.sources import open_source


def test_iou_and_nms():
    a = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    iou = box_iou(a, a)
    assert iou[0, 0] == 1 and iou[0, 1] == pytest.approx(50 / 150) and iou[0, 2] == 0
    keep = nms(a, np.array([0.9, 0.8, 0.7]), iou_thr=0.3)
    assert keep.tolist() == [0, 2]
    assert nms(a, np.array([0.9, 0.8, 0.7]), iou_thr=0.5).tolist() == [0, 1, 2]


def test_merge_blobs_joins_a_split_person():
    parts = np.array([[10, 10, 20, 20], [10, 22, 22, 50], [100, 10, 110, 40]], float)
    merged = merge_blobs(parts)
    assert len(merged) == 2 and merged[0].tolist() == [10, 10, 22, 50]


def test_motion_detector_finds_walkers_in_the_clip():
    det = MotionDetector()
    counts = [len(det(f.image)) for f in open_source(CLIP, max_frames=12)]
    assert counts[0] == 0 and max(counts[6:]) >= 2  # learns the background, then sees people


def test_full_and_hog():
    img = np.zeros((40, 30, 3), np.uint8)
    assert FullFrameDetector()(img).tolist() == [[0, 0, 30, 40, 1]]
    if has_hog():
        assert HogDetector()(img).shape[1] == 5
    else:
        with pytest.raises(DetectorError, match="opencv-contrib"):
            HogDetector()


def test_letterbox_and_yolox_decode():
    canvas, ratio = letterbox(np.full((100, 200, 3), 7, np.uint8), (64, 64))
    assert ratio == pytest.approx(0.32) and canvas[0, 0, 0] == 7 and canvas[40, 0, 0] == 114
    n = (64 // 8) ** 2 + (64 // 16) ** 2 + (64 // 32) ** 2
    raw = np.zeros((n, 6))
    raw[9] = [0.5, 0.5, np.log(2), np.log(4), 0.8, 0.5]  # cell (1, 1) at stride 8
    boxes, scores = decode_yolox(raw, (64, 64))
    assert scores[9] == pytest.approx(0.4)
    assert boxes[9].tolist() == pytest.approx([12 - 8, 12 - 16, 12 + 8, 12 + 16])


def _constant_model(path, outputs: dict[str, np.ndarray]):
    nodes = [helper.make_node("Constant", [], [name], value=helper.make_tensor(
        name + "_v", TensorProto.FLOAT, value.shape, value.ravel().tolist())) for name, value in outputs.items()]
    graph = helper.make_graph(nodes, "det", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                                          [1, 3, 64, 64])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(v.shape))
                               for n, v in outputs.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_onnx_detector_end_to_end_layout(tmp_path):
    dets = np.array([[[4, 4, 20, 40, 0.9], [30, 4, 40, 20, 0.2], [0, 0, 10, 10, 0.95]]], np.float32)
    labels = np.array([[0, 0, 3]], np.float32)
    det = OnnxDetector(_constant_model(tmp_path / "d.onnx", {"dets": dets, "labels": labels}))
    out = det(np.zeros((128, 128, 3), np.uint8))  # ratio 0.5: boxes scale back by 2
    assert out.shape == (1, 5) and out[0].tolist() == pytest.approx([8, 8, 40, 80, 0.9], abs=1e-4)


def test_onnx_detector_bad_files(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x01garbage")
    with pytest.raises(DetectorError, match="detector"):
        OnnxDetector(bad)
    with pytest.raises(DetectorError, match="not found"):
        make_detector(f"onnx:{tmp_path / 'none.onnx'}")


def test_boxes_file_schema(tmp_path):
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps({"frames": {"0": [[1, 2, 30, 40]], "photo": [[0, 0, 5, 5, 0.5]]},
                                "default": [[0, 0, 10, 10]]}))
    boxes = BoxesFile(path)
    assert boxes.boxes_for(0).tolist() == [[1, 2, 30, 40, 1]]
    assert boxes.boxes_for(7, "photo").tolist() == [[0, 0, 5, 5, 0.5]]
    assert boxes.boxes_for(3).tolist() == [[0, 0, 10, 10, 1]]
    path.write_text(json.dumps({"frames": {"0": [[10, 2, 3, 40]]}}))
    with pytest.raises(DetectorError, match="x2 <= x1"):
        BoxesFile(path)
    path.write_text("{nope")
    with pytest.raises(DetectorError, match="cannot read"):
        BoxesFile(path)


def test_make_detector_specs():
    assert isinstance(make_detector("full"), FullFrameDetector)
    assert isinstance(make_detector("motion"), MotionDetector)
    auto_images = make_detector("auto", video=False)
    assert isinstance(auto_images, HogDetector if has_hog() else FullFrameDetector)
    with pytest.raises(DetectorError, match="unknown detector"):
        make_detector("yolo")
