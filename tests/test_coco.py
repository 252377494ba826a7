"""The COCO loader on real COCO val2017 annotations (mmpose's test sample in tests/data/coco-sample)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dp_pose_zoo.datasets.coco import load_coco
from dp_pose_zoo.errors import DatasetError, DatasetNotFoundError

SAMPLE = Path(__file__).resolve().parent / "data" / "coco-sample"
SAMPLE_JSON = SAMPLE / "test_coco.json"

# COCO indices, written out here rather than taken from the package.
C_L_SHO, C_R_SHO, C_R_WRI, C_L_HIP, C_R_HIP, C_L_ANK = 5, 6, 10, 11, 12, 15
# MPII indices.
M_R_ANK, M_L_ANK, M_PELVIS, M_THORAX, M_NECK, M_HEAD_TOP, M_R_WRI, M_L_SHO = 0, 5, 6, 7, 8, 9, 10, 13


def raw() -> dict:
    return json.loads(SAMPLE_JSON.read_text())


def kept_annotations(data: dict, min_visible: int = 3) -> list[dict]:
    """The filter, computed independently of the loader."""
    kept = []
    for ann in data["annotations"]:
        n_visible = sum(1 for v in ann["keypoints"][2::3] if v > 0)
        _, _, w, h = ann["bbox"]
        if ann["iscrowd"] == 0 and ann["category_id"] == 1 and n_visible >= min_visible and w > 0 and h > 0:
            kept.append(ann)
    return kept


def kp(ann: dict) -> np.ndarray:
    return np.array(ann["keypoints"], dtype=float).reshape(17, 3)


def write(tmp_path: Path, data: dict, name: str = "person_keypoints.json") -> Path:
    file = tmp_path / name
    file.write_text(json.dumps(data))
    return file


@pytest.mark.parametrize("min_visible", [1, 3, 15, 17])
def test_counts_match_independent_filter(min_visible):
    data = raw()
    ds = load_coco(SAMPLE_JSON, min_visible=min_visible)
    assert len(ds) == len(kept_annotations(data, min_visible))
    assert len(load_coco(SAMPLE_JSON)) == 12  # 14 annotations, 2 have no keypoints


def test_direct_joints_copied_and_records_in_annotation_order():
    data = raw()
    ds = load_coco(SAMPLE_JSON)
    files = {im["id"]: im["file_name"] for im in data["images"]}
    for rec, ann in zip(ds.records, kept_annotations(data)):
        k = kp(ann)
        assert rec.image == files[ann["image_id"]]
        assert rec.image_id == f"coco-{ann['image_id']}"
        np.testing.assert_array_equal(rec.joints[M_R_WRI], k[C_R_WRI, :2])
        np.testing.assert_array_equal(rec.joints[M_L_ANK], k[C_L_ANK, :2])
        np.testing.assert_array_equal(rec.joints[M_L_SHO], k[C_L_SHO, :2])
        assert rec.visible[M_R_WRI] == float(k[C_R_WRI, 2] > 0)
        assert rec.visible[M_R_ANK] == float(k[16, 2] > 0)


def test_derived_joints_flagged_and_midpoints():
    data = raw()
    ds = load_coco(SAMPLE_JSON)
    for rec, ann in zip(ds.records, kept_annotations(data)):
        assert rec.derived.tolist() == [i in (6, 7, 8, 9) for i in range(16)]
        k = kp(ann)
        if k[C_L_HIP, 2] > 0 and k[C_R_HIP, 2] > 0:
            assert rec.visible[M_PELVIS] == 1.0
            np.testing.assert_allclose(rec.joints[M_PELVIS], (k[C_L_HIP, :2] + k[C_R_HIP, :2]) / 2)
        if k[C_L_SHO, 2] > 0 and k[C_R_SHO, 2] > 0:
            np.testing.assert_allclose(rec.joints[M_THORAX], (k[C_L_SHO, :2] + k[C_R_SHO, :2]) / 2)


def test_faceless_person_has_no_neck_head_top_or_head_box():
    # Image 196141, the annotation with 12 keypoints: only one face keypoint (left ear) is
    # labelled, and the head top needs at least two.
    data = raw()
    ds = load_coco(SAMPLE_JSON)
    pairs = [(rec, ann) for rec, ann in zip(ds.records, kept_annotations(data)) if np.sum(kp(ann)[:5, 2] > 0) < 2]
    assert len(pairs) == 1
    rec, _ = pairs[0]
    assert rec.visible[M_NECK] == 0 and rec.visible[M_HEAD_TOP] == 0
    assert rec.head_box is None


def test_missing_hip_makes_pelvis_invisible(tmp_path):
    data = raw()
    ann = copy.deepcopy(data["annotations"][0])  # image 785: all 17 keypoints labelled
    ann["keypoints"][C_R_HIP * 3: C_R_HIP * 3 + 3] = [0, 0, 0]
    ann["keypoints"][C_L_SHO * 3 + 2] = 0
    data["annotations"] = [ann]
    rec = load_coco(write(tmp_path, data)).records[0]
    assert rec.visible[M_PELVIS] == 0 and rec.joints[M_PELVIS].tolist() == [0.0, 0.0]
    assert rec.visible[M_THORAX] == 0  # a shoulder is missing
    assert rec.visible[2] == 0  # MPII right_hip itself


def test_head_box_is_square_between_head_top_and_neck():
    for rec in load_coco(SAMPLE_JSON).records:
        if rec.head_box is None:
            continue
        top, neck = rec.joints[M_HEAD_TOP], rec.joints[M_NECK]
        side = np.linalg.norm(top - neck)
        x1, y1, x2, y2 = rec.head_box
        assert x2 - x1 == pytest.approx(side) and y2 - y1 == pytest.approx(side)
        np.testing.assert_allclose([(x1 + x2) / 2, (y1 + y2) / 2], (top + neck) / 2)


def test_bbox_to_center_and_scale():
    for rec, ann in zip(load_coco(SAMPLE_JSON).records, kept_annotations(raw())):
        x, y, w, h = ann["bbox"]
        np.testing.assert_allclose(rec.center, [x + w / 2, y + h / 2])
        # Box widened to the 192x256 aspect ratio, height / 200 px.
        assert rec.scale == pytest.approx(max(h, w * 256 / 192) / 200)


def test_images_load_with_json_sizes():
    data = raw()
    sizes = {im["file_name"]: (im["height"], im["width"], 3) for im in data["images"]}
    ds = load_coco(SAMPLE_JSON)
    for rec in ds.records:
        assert ds.load_image(rec).shape == sizes[rec.image]


def test_filters_crowd_category_and_empty_box(tmp_path):
    data = raw()
    anns = data["annotations"]
    anns[0]["iscrowd"] = 1
    anns[1]["category_id"] = 2
    anns[2]["bbox"][2] = 0.0
    data["categories"].append({"id": 2, "name": "dog"})
    ds = load_coco(write(tmp_path, data))
    assert len(ds) == 12 - 3
    assert len(ds) == len(kept_annotations(data))


def test_default_image_dir_for_coco_layout(tmp_path):
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    shutil.copy(SAMPLE_JSON, root / "annotations" / "person_keypoints_val2017.json")
    shutil.copytree(SAMPLE, root / "val2017", ignore=shutil.ignore_patterns("*.json"))
    ds = load_coco(root / "annotations" / "person_keypoints_val2017.json")
    assert ds.load_image(ds.records[0]).shape == (425, 640, 3)


def test_explicit_image_dir(tmp_path):
    file = tmp_path / "ann.json"
    shutil.copy(SAMPLE_JSON, file)
    ds = load_coco(file, image_dir=SAMPLE)
    assert ds.load_image(ds.records[0]).ndim == 3
    with pytest.raises(DatasetNotFoundError):
        load_coco(file, image_dir=tmp_path / "nope")


def test_missing_file_and_image(tmp_path):
    with pytest.raises(DatasetNotFoundError):
        load_coco(tmp_path / "missing.json")
    file = tmp_path / "ann.json"
    shutil.copy(SAMPLE_JSON, file)
    ds = load_coco(file)  # images are not beside this copy
    with pytest.raises(DatasetError, match="000000000785.jpg") as info:
        ds.load_image(ds.records[0])
    assert "\n" not in str(info.value)


def test_malformed_json_one_line_naming_file(tmp_path):
    file = tmp_path / "bad.json"
    file.write_text('{"images": [')
    with pytest.raises(DatasetError) as info:
        load_coco(file)
    assert str(file) in str(info.value) and "\n" not in str(info.value)
    file.write_text('{"images": []}')
    with pytest.raises(DatasetError, match="annotations"):
        load_coco(file)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda a: a.update(keypoints=a["keypoints"][:50]), r"annotation 4: 'keypoints' has 50 numbers, expected 51"),
        (lambda a: a.update(bbox=[1, 2, 3]), r"annotation 4: 'bbox' has 3 numbers"),
        (lambda a: a.pop("keypoints"), r"annotation 4: missing key\(s\) keypoints"),
        (lambda a: a.update(image_id=123456789), r"annotation 4: image_id 123456789 is not in 'images'"),
    ],
)
def test_bad_annotation_refused_with_file_and_index(tmp_path, change, expected):
    data = raw()
    change(data["annotations"][4])
    file = write(tmp_path, data)
    with pytest.raises(DatasetError, match=expected) as info:
        load_coco(file)
    assert str(file) in str(info.value)


def test_ground_truth_and_the_people_with_a_head_box():
    dataset = load_coco(SAMPLE_JSON, SAMPLE)
    gt, visible, head_boxes = dataset.ground_truth()
    assert gt.shape == (len(dataset), 16, 2) and visible.shape == (len(dataset), 16)
    missing = [i for i, r in enumerate(dataset.records) if r.head_box is None]
    assert missing and np.isnan(head_boxes[missing]).all() and np.isfinite(np.delete(head_boxes, missing, 0)).all()
    scorable = dataset.with_head_boxes()
    assert len(scorable) == len(dataset) - len(missing)
    assert [r.image_id for r in scorable.records] == [r.image_id for i, r in enumerate(dataset.records)
                                                      if i not in missing]
    np.testing.assert_array_equal(scorable.ground_truth()[0], np.delete(gt, missing, 0))
    assert scorable.load_image(scorable.records[0]).ndim == 3
