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


def test_views_are_distinct_deterministic_augmentations_of_one_person():
    ds = load_dataset("synthpose:private-train:3")
    codec = SimCCCodec((64, 64))
    multi = SimCCDataset(ds, codec, augment=AugmentConfig(), seed=2, views=4)
    item = multi[(1, 2)]
    assert item["image"].shape == (4, 3, 64, 64) and item["weight"].shape == (4, 16)
    assert int(item["index"]) == 2
    assert not torch.equal(item["image"][0], item["image"][1])  # each view its own augmentation
    again = SimCCDataset(ds, codec, augment=AugmentConfig(), seed=2, views=4)[(1, 2)]
    assert torch.equal(item["image"], again["image"])
    single = SimCCDataset(ds, codec, augment=AugmentConfig(), seed=2)[(1, 2)]
    assert single["image"].shape == (3, 64, 64)  # one view keeps the unstacked layout and its own seeding


def test_half_body_and_colour_jitter_are_seeded_and_keep_joints_on_the_person():
    from dp_pose_zoo.training.data import LOWER_BODY, UPPER_BODY, jitter_color

    ds = load_dataset("synthpose:private-val:4")
    aug = AugmentConfig(flip=0.0, scale=0.0, rotation=0.0, half_body=1.0, color=0.4)
    for rec in ds.records:
        image = ds.load_image(rec)
        crop, joints, visible, _ = crop_person(image, rec, (128, 96), rng=np.random.default_rng(7), augment=aug)
        again = crop_person(image, rec, (128, 96), rng=np.random.default_rng(7), augment=aug)
        assert np.array_equal(crop, again[0])  # same generator, same crop
        _, plain, _, _ = crop_person(image, rec, (128, 96))

        def box_center(points, half):
            seen = points[[j for j in half if visible[j] > 0]]
            return (seen.min(axis=0) + seen.max(axis=0)) / 2

        inside = (joints[:, 0] >= 0) & (joints[:, 0] < 96) & (joints[:, 1] >= 0) & (joints[:, 1] < 128)
        # One half of the body is cropped: the crop is centred on its joints' box, all of them inside it,
        # where the plain crop centres the whole person.
        halves = [h for h in (UPPER_BODY, LOWER_BODY) if all(inside[j] for j in h if visible[j] > 0)
                  and np.allclose(box_center(joints, h), (48, 64), atol=0.5)]
        assert halves, rec.image
        assert not any(np.allclose(box_center(plain, h), (48, 64), atol=0.5) for h in halves)
    # Colour jitter changes pixels but not geometry.
    jittered = jitter_color(crop, np.random.default_rng(1), 0.4)
    assert jittered.shape == crop.shape and jittered.dtype == np.uint8 and not np.array_equal(jittered, crop)
    assert np.array_equal(jitter_color(crop, np.random.default_rng(1), 0.4), jittered)
