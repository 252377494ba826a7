"""The MPII loader on real MPII records (mmpose's test sample in tests/data/mpii-sample)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from dp_pose_zoo.datasets.mpii import load_mpii
from dp_pose_zoo.errors import DatasetError, DatasetNotFoundError, MissingExtraError

SAMPLE = Path(__file__).resolve().parent / "data" / "mpii-sample"
SAMPLE_JSON = SAMPLE / "test_mpii.json"
MPII_JOINT_CODES = ("rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thrx",
                    "neck", "head", "rwri", "relb", "rsho", "lsho", "lelb", "lwri")


def raw_records() -> list[dict]:
    return json.loads(SAMPLE_JSON.read_text())


def write_gt_mat(path: Path, records: list[dict], head_boxes: np.ndarray) -> None:
    """A ground-truth .mat in HRNet's exact layout (gt_valid.mat / mmpose's mpii_gt_val.mat)."""
    from scipy.io import savemat

    n = len(head_boxes)
    joints = np.array([r["joints"] for r in records], dtype=np.float64)[:n]
    vis = np.array([r["joints_vis"] for r in records], dtype=np.float64)[:n]
    dataset_joints = np.empty((1, 16), dtype=object)
    for i, code in enumerate(MPII_JOINT_CODES):
        dataset_joints[0, i] = np.array([code])
    savemat(str(path), {
        "dataset_joints": dataset_joints,                                   # (1, 16) cell of names
        "jnt_missing": (1 - vis).T.astype(np.uint8),                         # (16, N)
        "pos_gt_src": np.transpose(joints, (1, 2, 0)),                       # (16, 2, N)
        "headboxes_src": np.stack([head_boxes[:, 0:2].T, head_boxes[:, 2:4].T]),  # (2, 2, N)
    })


def sample_head_boxes(records: list[dict]) -> np.ndarray:
    """A distinct box per record, around its head top, so order mix-ups show."""
    boxes = []
    for i, r in enumerate(records):
        x, y = r["joints"][9]
        boxes.append([x - 20 - i, y - 5, x + 20 + 2 * i, y + 45 + i])
    return np.array(boxes)


def make_mmpose_root(root: Path, records: list[dict], split: str = "val") -> Path:
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / f"mpii_{split}.json").write_text(json.dumps(records))
    shutil.copytree(SAMPLE, root / "images", ignore=shutil.ignore_patterns("*.json"))
    return root


def test_sample_records_match_json():
    raw = raw_records()
    ds = load_mpii(SAMPLE_JSON)
    assert len(ds) == len(raw) == 5
    for rec, r in zip(ds.records, raw):
        assert rec.image == r["image"]
        np.testing.assert_allclose(rec.joints, np.array(r["joints"]), rtol=0, atol=1e-9)
        np.testing.assert_array_equal(rec.visible, (np.array(r["joints_vis"]) > 0).astype(float))
        assert rec.head_box is None  # the sample has no head boxes and no .mat
        assert not rec.derived.any()


def test_center_moved_down_15_scale_units_and_scale_not_padded():
    for rec, r in zip(load_mpii(SAMPLE_JSON).records, raw_records()):
        # MPII centres sit high: y + 15 * scale; the crop pads by 1.25, the loader must not.
        assert rec.center[0] == pytest.approx(r["center"][0])
        assert rec.center[1] == pytest.approx(r["center"][1] + 15.0 * r["scale"])
        assert rec.scale == pytest.approx(r["scale"])


def test_images_load_and_hold_their_people():
    ds = load_mpii(SAMPLE_JSON)
    assert ds.load_image(ds.records[0]).shape == (720, 1280, 3)  # 005808361.jpg is 1280x720
    for rec in ds.records:
        image = ds.load_image(rec)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        h, w = image.shape[:2]
        pts = rec.joints[rec.visible > 0]
        assert np.all((pts >= -1) & (pts <= [w, h])), rec.image
        assert 0 <= rec.center[0] <= w and 0 <= rec.center[1] <= h


def test_image_ids_unique_and_default_to_file_name():
    ds = load_mpii(SAMPLE_JSON)
    assert [r.image_id for r in ds.records] == [r["image"] for r in raw_records()]
    assert len(ds.image_ids()) == len(ds)


def test_optional_keys_head_box_and_image_id(tmp_path):
    raw = raw_records()
    raw[1]["head_box"] = [1.0, 2.0, 31.0, 42.0]
    raw[1]["image_id"] = "synth-val-000001"
    file = tmp_path / "mpii_val.json"
    file.write_text(json.dumps(raw))
    ds = load_mpii(file)
    np.testing.assert_array_equal(ds.records[1].head_box, [1.0, 2.0, 31.0, 42.0])
    assert ds.records[1].image_id == "synth-val-000001"
    assert ds.records[0].head_box is None


def test_mmpose_layout_reads_gt_mat_head_boxes_in_order(tmp_path):
    raw = raw_records()
    root = make_mmpose_root(tmp_path / "mpii", raw)
    boxes = sample_head_boxes(raw)
    write_gt_mat(root / "annotations" / "mpii_gt_val.mat", raw, boxes)
    ds = load_mpii(root, split="val")
    assert len(ds) == len(raw)
    for rec, box in zip(ds.records, boxes):
        np.testing.assert_allclose(rec.head_box, box)
    assert ds.load_image(ds.records[2]).ndim == 3  # images/ of the mmpose layout


def test_record_head_box_wins_over_mat(tmp_path):
    raw = raw_records()
    raw[3]["head_box"] = [0.0, 0.0, 3.0, 4.0]
    root = make_mmpose_root(tmp_path / "mpii", raw)
    boxes = sample_head_boxes(raw)
    write_gt_mat(root / "annotations" / "mpii_gt_val.mat", raw, boxes)
    ds = load_mpii(root)
    np.testing.assert_array_equal(ds.records[3].head_box, [0.0, 0.0, 3.0, 4.0])
    np.testing.assert_allclose(ds.records[4].head_box, boxes[4])


def test_json_file_finds_images_in_parent_images_folder(tmp_path):
    root = make_mmpose_root(tmp_path / "mpii", raw_records(), split="train")
    ds = load_mpii(root / "annotations" / "mpii_train.json")
    assert ds.load_image(ds.records[0]).shape == (720, 1280, 3)


def test_mismatched_mat_count_refused(tmp_path):
    raw = raw_records()
    root = make_mmpose_root(tmp_path / "mpii", raw)
    write_gt_mat(root / "annotations" / "mpii_gt_val.mat", raw, sample_head_boxes(raw)[:4])
    with pytest.raises(DatasetError, match="4 head boxes.*5 records"):
        load_mpii(root)


def test_mat_without_scipy_asks_for_the_extra(tmp_path, monkeypatch):
    raw = raw_records()
    root = make_mmpose_root(tmp_path / "mpii", raw)
    write_gt_mat(root / "annotations" / "mpii_gt_val.mat", raw, sample_head_boxes(raw))
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(MissingExtraError, match="scipy"):
        load_mpii(root)


def test_malformed_json_refused_in_one_line_naming_file(tmp_path):
    file = tmp_path / "broken.json"
    file.write_text('[{"image": "a.jpg", "center": [1, 2],')
    with pytest.raises(DatasetError) as info:
        load_mpii(file)
    message = str(info.value)
    assert "\n" not in message and str(file) in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r.update(joints=r["joints"][:15]), r"record 2: 'joints' has 15 entries, expected 16"),
        (lambda r: r.update(joints_vis=r["joints_vis"] + [1]), r"record 2: 'joints_vis' has 17 entries"),
        (lambda r: r.pop("scale"), r"record 2: missing key\(s\) scale"),
        (lambda r: r.update(center=[1.0]), r"record 2: 'center' has shape"),
        (lambda r: r.update(scale=0), r"record 2: scale must be positive"),
    ],
)
def test_bad_records_refused_with_file_and_index(tmp_path, change, expected):
    raw = raw_records()
    change(raw[2])
    file = tmp_path / "bad.json"
    file.write_text(json.dumps(raw))
    with pytest.raises(DatasetError, match=expected) as info:
        load_mpii(file)
    assert str(file) in str(info.value) and "\n" not in str(info.value)


def test_top_level_not_a_list_refused(tmp_path):
    file = tmp_path / "obj.json"
    file.write_text('{"images": []}')
    with pytest.raises(DatasetError, match="list"):
        load_mpii(file)


def test_missing_paths_are_not_found(tmp_path):
    with pytest.raises(DatasetNotFoundError):
        load_mpii(tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match="mpii_val.json"):
        load_mpii(tmp_path)  # a directory without annotations/


def test_missing_and_unreadable_images_raise_dataset_error(tmp_path):
    file = tmp_path / "test_mpii.json"
    shutil.copy(SAMPLE_JSON, file)
    ds = load_mpii(file)  # no images beside it
    with pytest.raises(DatasetError, match="005808361.jpg") as info:
        ds.load_image(ds.records[0])
    assert "\n" not in str(info.value)
    (tmp_path / "005808361.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="unreadable.*005808361.jpg"):
        ds.load_image(ds.records[0])
