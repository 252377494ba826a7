import numpy as np
import pytest

from dp_pose_zoo.geometry import apply_affine, bbox_to_center_scale, center_scale_to_bbox, crop_matrix, warp_crop


def test_bbox_to_center_scale_keeps_aspect():
    center, scale = bbox_to_center_scale((10, 20, 110, 220))  # 100 x 200: taller than 3:4
    np.testing.assert_allclose(center, [60, 120])
    assert scale == pytest.approx(200 / 200)
    _, wide = bbox_to_center_scale((0, 0, 300, 100))  # wide box: height grows to width / 0.75
    assert wide == pytest.approx(400 / 200)


def test_crop_maps_box_to_crop_and_back():
    center, scale = np.array([300.0, 200.0]), 1.0
    m = crop_matrix(center, scale, (256, 192))
    # The centre lands mid-crop; the padded box's top and bottom land on the crop's edges.
    np.testing.assert_allclose(apply_affine(center, m), [96, 128])
    half = 200 * 1.25 / 2
    np.testing.assert_allclose(apply_affine([[300, 200 - half], [300, 200 + half]], m), [[96, 0], [96, 256]], atol=1e-9)
    inv = crop_matrix(center, scale, (256, 192), inverse=True)
    pts = np.random.default_rng(0).uniform(0, 500, (20, 2))
    np.testing.assert_allclose(apply_affine(apply_affine(pts, m), inv), pts, atol=1e-9)


def test_rotation_turns_counter_clockwise_about_centre():
    center = np.array([100.0, 100.0])
    m = crop_matrix(center, 1.0, (200, 200), rotation=90, padding=1.0)
    # A point above the centre (image y up is negative) goes to the left in the crop.
    above = apply_affine([100, 50], m)
    np.testing.assert_allclose(above, [50, 100], atol=1e-9)


def test_warp_crop_samples_the_right_pixels():
    image = np.zeros((400, 400, 3), np.uint8)
    image[190:210, 290:310] = 255  # a white square at (300, 200)
    m = crop_matrix([300, 200], 1.0, (256, 192))
    crop = warp_crop(image, m, (256, 192))
    assert crop.shape == (256, 192, 3)
    assert crop[128, 96].tolist() == [255, 255, 255]
    assert crop[10, 10].tolist() == [0, 0, 0]


@pytest.mark.parametrize("size", [(128, 96), (64, 64), (256, 192), (96, 128)])
def test_center_scale_to_bbox_gives_the_runtime_the_evaluation_crop(size):
    from dp_pose_zoo.runtime.pose_estimator import boxes_to_center_scale

    rng = np.random.default_rng(size[0] + size[1])
    h, w = size
    for _ in range(50):
        center, scale = rng.uniform(-50, 700, 2), float(rng.uniform(0.05, 4.0))
        box = center_scale_to_bbox(center, scale, aspect_ratio=w / h)
        assert box[3] - box[1] == pytest.approx(scale * 200) and box[2] - box[0] <= (box[3] - box[1]) * w / h
        centers, scales = boxes_to_center_scale(box[None], size)  # what PoseEstimator does with a box
        np.testing.assert_allclose(centers[0], center, rtol=0, atol=1e-9)
        assert scales[0] == pytest.approx(scale, rel=1e-12)
        np.testing.assert_allclose(crop_matrix(centers[0], scales[0], size), crop_matrix(center, scale, size),
                                   rtol=0, atol=1e-9)
