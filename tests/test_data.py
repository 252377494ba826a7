import numpy as np
import torch

from dp_pose_zoo.codec import SimCCCodec
from dp_pose_zoo.datasets import load_dataset
from dp_pose_zoo.geometry import apply_affine, crop_matrix
from dp_pose_zoo.skeleton import FLIP_PAIRS
from dp_pose_zoo.training.data import AugmentConfig, SimCCDataset, crop_person


def test_items_are_keyed_by_epoch_and_index():
    ds = load_dataset("synthpose:private-train:4")
    a = SimCCDataset(ds, SimCCCodec((64, 64)), augment=AugmentConfig(), seed=1)
    b = SimCCDataset(ds, SimCCCodec((64, 64)), augment=AugmentConfig(), seed=1)
    assert torch.equal(a[(3, 2)]["image"], b[(3, 2)]["image"])  # any worker, any order: the same sample
    assert not torch.equal(a[(3, 2)]["image"], a[(4, 2)]["image"])  # a new epoch, a new augmentation
    assert torch.equal(a[2]["image"], a[(0, 2)]["image"])


def test_unaugmented_targets_decode_to_the_cropped_joints():
    ds = load_dataset("synthpose:private-val:5")
    codec = SimCCCodec((256, 192))
    data = SimCCDataset(ds, codec)
    for i, rec in enumerate(ds.records):
        item = data[i]
        decoded, _ = codec.decode(item["target_x"].numpy(), item["target_y"].numpy())
        expected = apply_affine(rec.joints, crop_matrix(rec.center, rec.scale, (256, 192)))
        seen = item["weight"].numpy() > 0
        assert seen.sum() >= 8
        np.testing.assert_allclose(decoded[seen], expected[seen], atol=1 / codec.split_ratio)


def test_flip_mirrors_the_image_and_swaps_left_and_right():
    ds = load_dataset("synthpose:public-val:1")
    rec = ds.records[0]
    image = ds.load_image(rec)
    always_flip = AugmentConfig(flip=1.0, scale=0.0, rotation=0.0)
    crop, joints, visible, _ = crop_person(image, rec, (256, 192), rng=np.random.default_rng(0), augment=always_flip)
    plain, plain_joints, _, _ = crop_person(image, rec, (256, 192))
    # The flipped crop is the mirror of the plain one (up to the half-pixel of the mirrored centre).
    assert np.abs(crop.astype(int) - plain[:, ::-1].astype(int)).mean() < 12
    for left, right in FLIP_PAIRS:
        np.testing.assert_allclose(joints[left, 0], 191 - plain_joints[right, 0], atol=1.0)
        np.testing.assert_allclose(joints[left, 1], plain_joints[right, 1], atol=1e-6)
