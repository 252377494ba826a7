"""The torch-free ONNX runtime: loading with metadata, running, decoding, refusing bad files."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from dp_pose_zoo.errors import CheckpointError
from dp_pose_zoo.runtime import OnnxModel, Person, PoseEstimator, decode_metadata, encode_metadata
from dp_pose_zoo.runtime.pose_estimator import boxes_to_center_scale, crop_batch, decode_to_frame
from dp_pose_zoo.skeleton import JOINT_NAMES

sys.path.insert(0, str(Path(__file__).parent))
from hub_server import simcc_onnx  # noqa: E402

COCO_DIR = Path(__file__).parent / "data" / "coco-sample"


def export_fp32(checkpoint: Path, path: Path) -> Path:
    """``model.onnx`` of ``checkpoint`` with our metadata, skipping the (slower) parity run."""
    from dp_pose_zoo.export.onnx_export import export_onnx, model_metadata
    from dp_pose_zoo.training.checkpoint import load_model

    model, config = load_model(checkpoint)
    meta = model_metadata(config, (checkpoint / "README.md").read_text(), precision="fp32")
    return export_onnx(model, path, metadata=meta)


@pytest.fixture(scope="module")
def onnx_path(tiny_checkpoint, tmp_path_factory):
    return export_fp32(tiny_checkpoint, tmp_path_factory.mktemp("onnx") / "model.onnx")


def test_metadata_reads_back_with_the_privacy_block(onnx_path, tiny_checkpoint):
    from dp_pose_zoo.card import parse_card

    meta = PoseEstimator(onnx_path).metadata
    card_privacy = parse_card((tiny_checkpoint / "README.md").read_text()).data.to_dict()["privacy"]
    assert meta["privacy"] == card_privacy  # epsilon inf for this non-private run survives JSON
    assert meta["privacy"]["epsilon"] == float("inf")
    assert meta["input_size"] == (64, 64) and meta["split_ratio"] == 2.0
    assert meta["joint_names"] == list(JOINT_NAMES)
    assert len(meta["weights_sha256"]) == 64 and meta["precision"] == "fp32"


def test_metadata_encoding_round_trips_non_finite_floats():
    meta = {"format_version": 1, "privacy": {"epsilon": float("inf"), "delta": None, "method": "non-private"},
            "input_size": [256, 192], "split_ratio": 2.0, "joint_names": list(JOINT_NAMES), "weights_sha256": "ab"}
    props = encode_metadata(meta)
    assert "Infinity" not in props["dp_pose_zoo.privacy"]  # strict JSON for other platforms' readers
    back = decode_metadata(props)
    assert back["privacy"] == meta["privacy"] and back["input_size"] == (256, 192)
    with pytest.raises(CheckpointError, match="newer"):
        decode_metadata({**props, "dp_pose_zoo.format_version": "99"})
    with pytest.raises(CheckpointError, match="malformed"):
        decode_metadata({**props, "dp_pose_zoo.privacy": "{not json"})


def test_pose_estimator_matches_the_torch_pipeline_on_real_photos(onnx_path, tiny_checkpoint):
    """Same crops as training/evaluate.py, same decode: keypoints within 0.5 px of torch eager."""
    import torch

    from dp_pose_zoo.codec import decode_simcc
    from dp_pose_zoo.geometry import apply_affine
    from dp_pose_zoo.training.checkpoint import load_model

    model, _ = load_model(tiny_checkpoint)
    model.eval()
    estimator = PoseEstimator(onnx_path, threads=1)
    image = cv2.imread(str(COCO_DIR / "000000000785.jpg"))
    boxes = np.array([[50.0, 20.0, 400.0, 420.0], [100.0, 60.0, 300.0, 400.0]])
    people = estimator(image, boxes)
    assert len(people) == 2 and all(isinstance(p, Person) for p in people)
    assert people[0].keypoints.shape == (16, 2) and people[0].scores.shape == (16,)
    np.testing.assert_array_equal(people[1].box, boxes[1])

    centers, scales = boxes_to_center_scale(boxes, (64, 64))
    batch, inverses = crop_batch(image, centers, scales, (64, 64))
    with torch.no_grad():
        sx, sy = model(torch.from_numpy(batch))
    crop_kpts, _ = decode_simcc(sx.numpy(), sy.numpy(), 2.0)
    torch_kpts = np.stack([apply_affine(k, inv) for k, inv in zip(crop_kpts, inverses)])
    ort_kpts = np.stack([p.keypoints for p in people])
    assert np.abs(ort_kpts - torch_kpts).max() <= 0.5


def test_a_records_box_gives_the_torch_evaluations_keypoints(onnx_path, tiny_checkpoint):
    """``dp-pose eval`` crops by a record's center/scale; the runtime, given center_scale_to_bbox of them
    (what benchmarks/real_pckh.py hands it), cuts the same crop and finds the same keypoints."""
    from dp_pose_zoo.datasets.coco import load_coco
    from dp_pose_zoo.geometry import center_scale_to_bbox
    from dp_pose_zoo.training.checkpoint import load_model
    from dp_pose_zoo.training.evaluate import predict

    dataset = load_coco(COCO_DIR / "test_coco.json", COCO_DIR)
    torch_kpts, _ = predict(load_model(tiny_checkpoint)[0], dataset)
    estimator = PoseEstimator(onnx_path, threads=1)
    h, w = estimator.input_size
    ort_kpts = np.stack([estimator(dataset.load_image(r), center_scale_to_bbox(r.center, r.scale, w / h)[None])[0]
                         .keypoints for r in dataset.records])
    assert np.abs(ort_kpts - torch_kpts).max() <= 0.5
    # The control: a box twice as wide for the same center/scale makes the runtime crop a larger region.
    boxed = np.stack([estimator(dataset.load_image(r), center_scale_to_bbox(r.center, r.scale, 2 * w / h)[None])[0]
                      .keypoints for r in dataset.records])
    assert np.abs(boxed - torch_kpts).max() > 0.5


def test_whole_frame_and_no_boxes(onnx_path):
    estimator = PoseEstimator(onnx_path)
    image = cv2.imread(str(COCO_DIR / "000000040083.jpg"))
    (person,) = estimator(image)
    h, w = image.shape[:2]
    np.testing.assert_array_equal(person.box, [0, 0, w, h])
    assert estimator(image, np.zeros((0, 4))) == []
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    assert len(estimator(grey)) == 1


def test_decode_to_frame_inverts_the_crop():
    """A joint at a crop pixel decodes to the frame pixel the crop matrix sends there."""
    centers, scales = boxes_to_center_scale(np.array([[10.0, 20.0, 110.0, 220.0]]), (64, 48))
    _, inverses = crop_batch(np.zeros((300, 300, 3), np.uint8), centers, scales, (64, 48))
    sx = np.zeros((1, 16, 96))
    sy = np.zeros((1, 16, 128))
    sx[0, :, 48] = 1.0  # crop x = 24 (the middle)
    sy[0, :, 64] = 1.0  # crop y = 32
    kpts, scores = decode_to_frame(sx, sy, 2.0, inverses)
    np.testing.assert_allclose(kpts[0, 0], centers[0], atol=1e-6)
    assert scores.shape == (1, 16)


def test_corrupt_and_truncated_files_are_refused_in_one_line(onnx_path, tmp_path):
    data = onnx_path.read_bytes()
    truncated = tmp_path / "half.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not an onnx model at all\n" * 10)
    for path in (truncated, garbage):
        with pytest.raises(CheckpointError) as info:
            PoseEstimator(path)
        message = str(info.value)
        assert "\n" not in message and str(path) in message and "corrupt or truncated" in message
    with pytest.raises(CheckpointError, match="not found"):
        PoseEstimator(tmp_path / "missing.onnx")


def _foreign_model(path: Path, *, height: int = 64, width: int = 48, joints: int = 16) -> Path:
    """A plain ONNX model (no dp_pose_zoo metadata, its own output names) with a SimCC-shaped layout."""
    model = simcc_onnx(height=height, width=width, joints=joints, outputs=("out_x", "out_y"))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_onnx_without_our_metadata_is_usable_with_a_warning(tmp_path, caplog):
    path = _foreign_model(tmp_path / "foreign.onnx")
    with caplog.at_level(logging.WARNING, logger="dp_pose_zoo"):
        estimator = PoseEstimator(path)
    assert "no dp_pose_zoo metadata" in caplog.text and "privacy is unknown" in caplog.text
    meta = estimator.metadata
    assert meta["privacy"] is None and meta["input_size"] == (64, 48) and meta["split_ratio"] == 2.0
    (person,) = estimator(np.zeros((100, 80, 3), np.uint8))
    assert person.keypoints.shape == (16, 2)
    with pytest.raises(CheckpointError, match="no dp_pose_zoo metadata"):
        OnnxModel(path, require_metadata=True)


def test_onnx_without_metadata_and_a_foreign_layout_is_refused(tmp_path):
    path = _foreign_model(tmp_path / "coco17.onnx", joints=17)
    with pytest.raises(CheckpointError, match="cannot use it"):
        PoseEstimator(path)
