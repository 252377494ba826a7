"""What every data set shares: people, images, and the content fingerprint that checks two sets disjoint."""

from __future__ import annotations

import cv2
import numpy as np

from dp_pose_zoo.datasets import load_dataset
from dp_pose_zoo.datasets.base import PoseDataset, image_fingerprint, image_fingerprints


def test_fingerprint_is_of_the_pixels_not_the_file(tmp_path):
    image = load_dataset("synthpose:private-train:1").load_image(load_dataset("synthpose:private-train:1").records[0])
    cv2.imwrite(str(tmp_path / "a.png"), image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    cv2.imwrite(str(tmp_path / "b.png"), image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "b.png").read_bytes()
    a, b = (cv2.imread(str(tmp_path / name)) for name in ("a.png", "b.png"))
    assert image_fingerprint(a) == image_fingerprint(b) == image_fingerprint(image)
    changed = image.copy()
    changed[0, 0, 0] ^= 1
    assert image_fingerprint(changed) != image_fingerprint(image)
    assert image_fingerprint(image[:, :-1]) != image_fingerprint(image)  # shape counts, not just bytes


def test_each_distinct_image_is_decoded_once():
    people = load_dataset("synthpose:private-train:3")
    shared = [people.records[0], people.records[0], people.records[1], people.records[2]]
    decoded = []

    def load_image(record):
        decoded.append(record.image)
        return people.load_image(record)

    found = image_fingerprints(PoseDataset("t", shared, load_image))
    assert sorted(decoded) == sorted(r.image for r in people.records)
    assert len(found) == 3 and set(r.image for r in found.values()) == set(decoded)
    assert np.array_equal(people.load_image(found[image_fingerprint(people.load_image(people.records[1]))]),
                          people.load_image(people.records[1]))
