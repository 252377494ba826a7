"""The LSP / LSP-extended loader on 6 real LSP-extended photos (tests/data/lspet, attribution in its README)."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from dp_pose_zoo.codec import SimCCCodec
from dp_pose_zoo.datasets import load_dataset
from dp_pose_zoo.datasets.lsp import LSP_TO_MPII, load_lsp
from dp_pose_zoo.errors import DatasetError, DatasetNotFoundError
from dp_pose_zoo.metrics import head_sizes
from dp_pose_zoo.skeleton import JOINT_INDEX
from dp_pose_zoo.training.data import SimCCDataset

LSPET = Path(__file__).parent / "data" / "lspet"
PELVIS, THORAX = JOINT_INDEX["pelvis"], JOINT_INDEX["thorax"]


def raw_joints():
    return loadmat(str(LSPET / "joints.mat"))["joints"]  # (14, 3, 6), as LSP-extended stores it


def test_reads_every_person_and_maps_lsp_joints_onto_mpii():
    data = load_dataset(f"lsp:{LSPET}")
    raw = raw_joints()
    assert len(data) == 6
    assert [r.image for r in data.records] == [f"im0000{i}.jpg" for i in range(1, 7)]
    for n, record in enumerate(data.records):
        for lsp, mpii in enumerate(LSP_TO_MPII):
            visible = raw[lsp, 2, n] > 0
            assert record.visible[mpii] == float(visible)
            if visible:
                np.testing.assert_array_equal(record.joints[mpii], raw[lsp, :2, n])
        assert data.load_image(record).shape[2] == 3
    # LSP's neck is MPII's upper neck, its head top MPII's head top (row 12 and 13 of joints.mat).
    np.testing.assert_array_equal(data.records[1].joints[JOINT_INDEX["upper_neck"]], raw[12, :2, 1])
    np.testing.assert_array_equal(data.records[1].joints[JOINT_INDEX["head_top"]], raw[13, :2, 1])
    np.testing.assert_array_equal(data.records[1].joints[JOINT_INDEX["left_wrist"]], raw[11, :2, 1])


def test_pelvis_thorax_and_invisible_joints_never_enter_the_loss():
    data = load_dataset(f"lsp:{LSPET}")
    first = data.records[0]
    assert raw_joints()[0, 2, 0] == 0 and raw_joints()[0, 1, 0] < 0  # right ankle: invisible, junk (0, -26.1)
    ankle = JOINT_INDEX["right_ankle"]
    assert first.visible[ankle] == 0 and not first.joints[ankle].any()  # junk is not kept
    for record in data.records:
        assert record.visible[PELVIS] == 0 and record.visible[THORAX] == 0  # LSP has none: never invented
    items = SimCCDataset(data, SimCCCodec((128, 96)))
    for i, record in enumerate(data.records):
        weight = items[i]["weight"].numpy()
        np.testing.assert_array_equal(weight > 0, record.visible > 0)
    assert (items[2]["weight"].numpy() == 0).sum() == 5  # pelvis, thorax and 3 invisible right-arm joints


def test_person_box_and_head_box():
    data = load_dataset(f"lsp:{LSPET}")
    for record in data.records:
        seen = record.joints[record.visible > 0]
        # The crop box (scale * 200 tall, 3:4, padded 1.25 by the crop) holds every visible joint.
        half_h, half_w = record.scale * 100, record.scale * 100 * 0.75
        assert np.all(np.abs(seen - record.center) <= [half_w + 1e-6, half_h + 1e-6])
        top, neck = record.joints[JOINT_INDEX["head_top"]], record.joints[JOINT_INDEX["upper_neck"]]
        # PCKh's head size (0.6 x the head box diagonal) is the head-top to neck distance.
        assert head_sizes(record.head_box[None])[0] == pytest.approx(np.linalg.norm(top - neck))


def test_original_lsp_layout_with_its_inverted_flag(tmp_path):
    """LSP (not extended) stores (3, 14, N) with 1 meaning occluded, and names images im0001.jpg."""
    raw = raw_joints()
    lsp = np.transpose(raw, (1, 0, 2)).copy()
    lsp[2] = 1 - lsp[2]
    (tmp_path / "images").mkdir()
    savemat(str(tmp_path / "joints.mat"), {"joints": lsp})
    for i in range(1, 7):
        shutil.copy(LSPET / "images" / f"im0000{i}.jpg", tmp_path / "images" / f"im000{i}.jpg")
    original, extended = load_lsp(tmp_path), load_lsp(LSPET)
    assert [r.image for r in original.records] == [f"im000{i}.jpg" for i in range(1, 7)]
    for a, b in zip(original.records, extended.records):
        np.testing.assert_array_equal(a.visible, b.visible)
        np.testing.assert_array_equal(a.joints, b.joints)


def copy_lspet(tmp_path) -> Path:
    root = tmp_path / "lspet"
    shutil.copytree(LSPET, root)
    return root


def test_missing_joints_mat(tmp_path):
    root = copy_lspet(tmp_path)
    (root / "joints.mat").unlink()
    with pytest.raises(DatasetNotFoundError, match="joints.mat"):
        load_lsp(root)


def test_an_image_listed_but_absent(tmp_path):
    root = copy_lspet(tmp_path)
    (root / "images" / "im00004.jpg").unlink()
    with pytest.raises(DatasetError, match="1 annotated image.*im00004.jpg"):
        load_lsp(root)


@pytest.mark.parametrize("shape", [(14, 2, 6), (16, 3, 6), (3, 3, 6)])
def test_a_joint_array_of_the_wrong_shape(tmp_path, shape):
    root = copy_lspet(tmp_path)
    savemat(str(root / "joints.mat"), {"joints": np.zeros(shape)})
    with pytest.raises(DatasetError, match=r"'joints' has shape .*expected \(14, 3, N\)"):
        load_lsp(root)


def test_not_a_mat_file(tmp_path):
    root = copy_lspet(tmp_path)
    (root / "joints.mat").write_text("not matlab")
    with pytest.raises(DatasetError, match="not a readable .mat file"):
        load_lsp(root)


def test_flip_of_a_real_photo_swaps_left_and_right_with_their_visibility():
    from dp_pose_zoo.training.data import AugmentConfig, crop_person

    data = load_dataset(f"lsp:{LSPET}")
    record = data.records[2]  # right wrist, elbow and shoulder invisible
    image = data.load_image(record)
    right_arm = [JOINT_INDEX[n] for n in ("right_wrist", "right_elbow", "right_shoulder")]
    left_arm = [JOINT_INDEX[n] for n in ("left_wrist", "left_elbow", "left_shoulder")]
    assert not record.visible[right_arm].any() and record.visible[left_arm].all()
    flip = AugmentConfig(flip=1.0, scale=0.0, rotation=0.0)
    crop, joints, visible, _ = crop_person(image, record, (128, 96), rng=np.random.default_rng(0), augment=flip)
    plain, plain_joints, _, _ = crop_person(image, record, (128, 96))
    assert visible[right_arm].all() and not visible[left_arm].any()  # the person's left arm is now on the right
    for left, right in zip(left_arm, right_arm):
        np.testing.assert_allclose(joints[right], [95 - plain_joints[left, 0], plain_joints[left, 1]], atol=1.0)
    # The crop is the plain crop's mirror image (up to the mirrored centre's half pixel), not the plain crop.
    mirrored = np.abs(crop.astype(int) - plain[:, ::-1].astype(int)).mean()
    assert mirrored < 0.5 * np.abs(crop.astype(int) - plain.astype(int)).mean()
