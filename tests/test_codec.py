import numpy as np
import pytest

from dp_pose_zoo.codec import SimCCCodec, flip_averaged, flip_back_simcc
from dp_pose_zoo.skeleton import FLIP_PAIRS, JOINT_NAMES


@pytest.mark.parametrize("input_size,k", [((256, 192), 2.0), ((128, 96), 2.0), ((256, 192), 3.0), ((64, 64), 1.0)])
def test_round_trip_error_below_one_bin(input_size, k):
    codec = SimCCCodec(input_size, k)
    h, w = input_size
    rng = np.random.default_rng(0)
    for _ in range(50):
        kpts = rng.uniform([0, 0], [w - 1, h - 1], size=(16, 2))
        tx, ty, weight = codec.encode(kpts, np.ones(16))
        assert weight.tolist() == [1.0] * 16
        decoded, score = codec.decode(tx[None], ty[None])
        assert decoded.shape == (1, 16, 2)
        assert np.abs(decoded[0] - kpts).max() < 1.0 / k
        # Gaussian peak is near 1 at the joint, so confidences are high.
        assert score.min() > 0.9


def test_bins_and_shapes_follow_split_ratio():
    codec = SimCCCodec((256, 192), 2.0)
    assert codec.num_bins == (384, 512)
    tx, ty, _ = codec.encode(np.full((16, 2), 50.0), np.ones(16))
    assert tx.shape == (16, 384) and ty.shape == (16, 512)
    assert tx.dtype == np.float32


def test_gaussian_label_smoothing_shape():
    codec = SimCCCodec((256, 192), 2.0)
    tx, _, _ = codec.encode(np.array([[100.0, 100.0]] * 16), np.ones(16))
    row = tx[0]
    centre = 200  # 100 px * k
    assert row.argmax() == centre and row[centre] == pytest.approx(1.0)
    sx = codec.sigmas[0]
    # One sigma away the Gaussian is exp(-1/2) of its peak; it is symmetric.
    assert row[centre + 5] == pytest.approx(np.exp(-25 / (2 * sx**2)), rel=1e-5)
    assert row[centre - 5] == pytest.approx(row[centre + 5])


def test_invisible_and_outside_joints_get_zero_weight_and_target():
    codec = SimCCCodec((256, 192), 2.0)
    kpts = np.full((16, 2), 50.0)
    kpts[3] = (-10, 50)  # left of the crop
    kpts[4] = (50, 300)  # below the crop
    vis = np.ones(16)
    vis[5] = 0
    tx, ty, weight = codec.encode(kpts, vis)
    assert weight[[3, 4, 5]].tolist() == [0, 0, 0]
    assert weight.sum() == 13
    assert not tx[[3, 4, 5]].any() and not ty[[3, 4, 5]].any()


def test_decode_confidence_is_smaller_axis_maximum():
    x = np.zeros((1, 2, 10), np.float32)
    y = np.zeros((1, 2, 8), np.float32)
    x[0, 0, 4], y[0, 0, 6] = 0.9, 0.4
    x[0, 1, 1], y[0, 1, 2] = 0.2, 0.7
    kpts, score = SimCCCodec((4, 5), 2.0).decode(x, y)
    np.testing.assert_allclose(kpts[0], [[2.0, 3.0], [0.5, 1.0]])
    np.testing.assert_allclose(score[0], [0.4, 0.2])


@pytest.mark.parametrize("k", [1.0, 2.0, 3.0])
def test_flip_back_maps_the_mirrored_crops_targets_onto_the_crops(k):
    """Targets encoded for the mirrored joints (x -> W - 1 - x, left and right swapped), flipped back,
    are the targets of the joints themselves: bin for bin away from the mirrored edge."""
    codec = SimCCCodec((64, 48), k)
    h, w = codec.input_size
    rng = np.random.default_rng(1)
    kpts = rng.uniform([2, 0], [w - 3, h - 1], size=(16, 2))
    mirrored = np.column_stack([w - 1 - kpts[:, 0], kpts[:, 1]])
    for a, b in FLIP_PAIRS:  # the mirror of a right wrist is where the left wrist is drawn
        mirrored[[a, b]] = mirrored[[b, a]]
    tx, ty, _ = codec.encode(kpts, np.ones(16))
    mx, my, _ = codec.encode(mirrored, np.ones(16))
    bx, by = flip_back_simcc(mx[None], my[None], k)
    edge = int(k) - 1  # bins beyond the mirrored crop's edge repeat it
    np.testing.assert_allclose(bx[0, :, :tx.shape[1] - edge], tx[:, :tx.shape[1] - edge], atol=1e-6)
    np.testing.assert_allclose(by[0], ty, atol=0)
    decoded, _ = codec.decode(bx, by)
    assert np.abs(decoded[0] - kpts).max() < 1.0 / k
    assert JOINT_NAMES[FLIP_PAIRS[0][0]].startswith("right")


def test_flip_back_refuses_a_fractional_split_ratio():
    with pytest.raises(ValueError, match="integer split ratio"):
        flip_back_simcc(np.zeros((1, 16, 10)), np.zeros((1, 16, 10)), 1.5)


def test_flip_averaged_is_the_mean_of_a_model_and_its_mirror_image():
    codec = SimCCCodec((32, 24), 2.0)
    rng = np.random.default_rng(2)
    crops = rng.normal(size=(3, 3, 32, 24)).astype(np.float32)
    weights_x = rng.normal(size=(16, 48, 32 * 24)).astype(np.float32)
    weights_y = rng.normal(size=(16, 64, 32 * 24)).astype(np.float32)
    calls = []

    def infer(batch):  # any function of the pixels; a linear one keeps the reference exact
        calls.append(len(batch))
        flat = batch[:, 0].reshape(len(batch), -1)
        return np.einsum("kbp,np->nkb", weights_x, flat), np.einsum("kbp,np->nkb", weights_y, flat)

    x, y = flip_averaged(infer, crops, codec.split_ratio)
    assert calls == [6]  # the crops and their mirrors in one batch
    plain_x, plain_y = infer(crops)
    mirror_x, mirror_y = infer(np.ascontiguousarray(crops[..., ::-1]))
    back_x, back_y = flip_back_simcc(mirror_x, mirror_y, 2.0)
    np.testing.assert_allclose(x, (plain_x + back_x) / 2, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(y, (plain_y + back_y) / 2, rtol=1e-5, atol=1e-4)
