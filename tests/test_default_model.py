"""The embedded default as shipped: its card, its ONNX, and what `zoo list` shows of it."""

import json

import cv2
import numpy as np

from dp_pose_zoo import PoseEstimator
from dp_pose_zoo.card import format_epsilon, load_card, validate_card
from dp_pose_zoo.cli import main
from dp_pose_zoo.zoo import default_dir

PHOTO = "tests/data/coco-sample/000000000785.jpg"


def test_the_default_ships_a_dp_card_that_matches_its_onnx():
    card = load_card(default_dir() / "README.md")
    validate_card(card)
    assert card.private and card.privacy.method in ("dp-sgd", "pdp-sgd")
    est = PoseEstimator.from_pretrained("default")
    # The box running only the ONNX can tell what it runs: the metadata agrees with the card.
    assert est.metadata["privacy"]["epsilon"] == card.privacy.epsilon == est.card.privacy.epsilon
    assert est.metadata["weights_sha256"] == card.weights_sha256
    assert card.privacy.epsilon <= 1.0 and card.privacy.delta == 1e-5 and card.privacy.clipping_norm == 0.1


def test_the_default_card_keeps_its_private_data_apart_from_its_public_initialisation(capsys):
    card = load_card(default_dir() / "README.md")
    assert card.train_data.startswith("mpii:") and "lsp" not in card.train_data  # what epsilon covers
    assert "lsp:" in card.base_model_data and "mpii" not in card.base_model_data
    assert main(["zoo", "list", "--json"]) == 0
    entry = next(e for e in json.loads(capsys.readouterr().out) if e["name"] == "default")
    assert (entry["data"], entry["base_model_data"]) == (card.train_data, card.base_model_data)


def test_the_default_finds_keypoints_on_a_real_photo():
    image = cv2.imread(PHOTO)
    people = PoseEstimator.from_pretrained("default")(image)
    assert len(people) == 1
    kp = people[0].keypoints
    assert kp.shape == (16, 2) and np.isfinite(kp).all()
    h, w = image.shape[:2]
    assert (kp[:, 0] >= -w * 0.1).all() and (kp[:, 0] <= w * 1.1).all()


def test_zoo_list_shows_the_default_with_its_card_values(capsys):
    assert main(["zoo", "list"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("default"))
    card = load_card(default_dir() / "README.md")
    fields = row.split()
    assert fields[1] == card.privacy.method and fields[2] == format_epsilon(card.privacy.epsilon)
    assert float(fields[3]) == card.privacy.delta and float(fields[4]) == card.privacy.clipping_norm
    assert f"{card.pckh['Mean']:.2f}" in row and "embedded" in row


def test_the_default_beats_a_fixed_average_pose_on_real_people():
    """On the 5 real MPII people of tests/data, the default finds more joints than the average pose of the
    other four placed in the same box: a model that saw only synthetic people does not (it scored about
    a fixed pose's PCKh on real photos). PCKh@0.5 with the head size taken as the head-top to upper-neck
    distance (as the MPII subset derives its head boxes), computed here, not by the package's metrics."""
    from dp_pose_zoo.datasets import load_dataset
    from dp_pose_zoo.geometry import center_scale_to_bbox

    data = load_dataset("mpii:tests/data/mpii-sample/test_mpii.json")
    est = PoseEstimator.from_pretrained("default")
    h, w = est.input_size
    boxes = np.stack([center_scale_to_bbox(r.center, r.scale, aspect_ratio=w / h) for r in data.records])
    truth = np.stack([r.joints for r in data.records])
    visible = np.stack([r.visible for r in data.records]) > 0
    ours = np.stack([est(data.load_image(r), box[None])[0].keypoints for r, box in zip(data.records, boxes)])
    origin, size = boxes[:, None, :2], (boxes[:, 2:] - boxes[:, :2])[:, None, :]
    unit = (truth - origin) / size  # joints in box units
    average = np.stack([np.delete(unit, i, axis=0).mean(axis=0) for i in range(len(unit))]) * size + origin

    head = np.linalg.norm(truth[:, 9] - truth[:, 8], axis=1)[:, None]  # head top - upper neck

    def pckh(pred):
        return float((np.linalg.norm(pred - truth, axis=2) <= 0.5 * head)[visible].mean())

    # measured: the v2 default 0.74 against 0.37 (the first real default 0.54; the synthetic-only one 0.12)
    assert pckh(ours) >= pckh(average) + 0.1, (pckh(ours), pckh(average))
