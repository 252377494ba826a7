"""The embedded default as shipped: its card, its ONNX, and what `zoo list` shows of it."""

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
