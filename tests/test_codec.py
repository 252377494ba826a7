import numpy as np
import pytest

from dp_pose_zoo.codec import SimCCCodec


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
