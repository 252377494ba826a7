"""SynthPose: determinism, lazy rendering, plausible geometry, drawing, domains, MPII export."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from dp_pose_zoo.datasets import synthpose as sp
from dp_pose_zoo.errors import DatasetError
from dp_pose_zoo.skeleton import JOINT_INDEX as J

SIZE = sp.IMAGE_SIZE


@pytest.fixture(scope="module")
def poses() -> list[sp.SynthPose]:
    return [sp.sample_pose(domain, 77, i) for domain in sp.DOMAINS for i in range(200)]


def _length(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=-1)


# ----------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("domain", sp.DOMAINS)
def test_render_is_deterministic_and_matches_records(domain):
    ds = sp.synthpose_dataset(domain, 4, 2002)
    for i, record in enumerate(ds.records):
        image, rendered = sp.render(domain, 2002, i)
        again, _ = sp.render(domain, 2002, i)
        assert image.dtype == np.uint8 and image.shape == (SIZE, SIZE, 3)
        assert image.tobytes() == again.tobytes()
        assert ds.load_image(record).tobytes() == image.tobytes()
        np.testing.assert_array_equal(record.joints, rendered.joints)
        np.testing.assert_array_equal(record.visible, rendered.visible)
        np.testing.assert_array_equal(record.head_box, rendered.head_box)
        assert (record.image, record.image_id) == (rendered.image, rendered.image_id)
    assert ds.records[3].image_id == f"synthpose-{domain}-2002-000003"
    assert ds.records[3].image == f"{domain}_2002_000003.png"


def test_different_seeds_indices_and_domains_differ():
    base_image, base = sp.render("public", 1, 0)
    for other_image, other in (sp.render("public", 2, 0), sp.render("public", 1, 1), sp.render("private", 1, 0)):
        assert not np.array_equal(base.joints, other.joints)
        assert base_image.tobytes() != other_image.tobytes()
        assert base.image_id != other.image_id


def test_records_are_built_without_rendering(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("building records must not draw")

    for name in ("_draw_figure", "_background", "_camera", "_compose"):
        monkeypatch.setattr(sp, name, boom)
    ds = sp.synthpose_dataset("private", 2000, 5)
    assert len(ds) == 2000 and len(ds.image_ids()) == 2000
    with pytest.raises(AssertionError):
        ds.load_image(ds.records[0])


# ----------------------------------------------------------------------------- geometry
def test_limb_proportions_and_joint_limits(poses):
    j3 = np.stack([p.joints3d for p in poses])
    for side in ("left", "right"):
        sho, elb, wri = (j3[:, J[f"{side}_{n}"]] for n in ("shoulder", "elbow", "wrist"))
        hip, knee, ank = (j3[:, J[f"{side}_{n}"]] for n in ("hip", "knee", "ankle"))
        arm = _length(sho, elb) / _length(elb, wri)
        leg = _length(hip, knee) / _length(knee, ank)
        torso = _length(j3[:, J["pelvis"]], j3[:, J["thorax"]]) / _length(hip, knee)
        for ratio, low, high in ((arm, 1.0, 1.6), (leg, 0.8, 1.25), (torso, 0.9, 1.5)):
            assert low < ratio.min() and ratio.max() < high
        for a, mid, b in ((sho, elb, wri), (hip, knee, ank)):
            u, v = a - mid, b - mid
            cos = np.sum(u * v, axis=1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
            inner = np.degrees(np.arccos(np.clip(cos, -1, 1)))
            assert inner.min() >= 29.9  # elbows and knees flex at most 150 degrees
    head = _length(j3[:, J["upper_neck"]], j3[:, J["head_top"]])
    assert np.all((head > 0.1) & (head < 0.15))  # stature units: skull about 1/8 of the height
    families = {p.family for p in poses}
    assert {"standing", "walking", "sitting", "bending", "arms_up"} <= families


def test_projection_never_lengthens_bones(poses):
    for p in poses[:100]:
        for a, b in ((J["left_shoulder"], J["left_elbow"]), (J["right_hip"], J["right_knee"]),
                     (J["thorax"], J["pelvis"])):
            assert _length(p.joints[a], p.joints[b]) <= _length(p.joints3d[a], p.joints3d[b]) * p.unit + 1e-6


def test_visibility_head_box_and_person_box(poses):
    records = [sp._record("public", 77, i, p) for i, p in enumerate(poses)]
    truncated = 0
    heights = []
    for p, r in zip(poses, records):
        inside = ((r.joints >= 0) & (r.joints <= SIZE - 1)).all(axis=1)
        np.testing.assert_array_equal(r.visible, inside.astype(float))
        truncated += not inside.all()
        x1, y1, x2, y2 = r.head_box
        assert abs((x2 - x1) - (y2 - y1)) < 1e-9  # a square
        for j in (J["head_top"], J["upper_neck"]):
            x, y = r.joints[j]
            assert x1 - 1 <= x <= x2 + 1 and y1 - 1 <= y <= y2 + 1
        # The standard crop box (aspect 3:4 around center, height scale*200) holds every joint.
        half = np.array([0.75, 1.0]) * r.scale * 100.0
        assert np.all(np.abs(r.joints - r.center) <= half + 1e-6)
        heights.append((p.box[3] - p.box[1]) / SIZE)
    assert 0.03 <= truncated / len(poses) <= 0.30
    assert 0.5 <= np.median(heights) <= 0.85


# ----------------------------------------------------------------------------- drawing
@pytest.mark.parametrize("domain", sp.DOMAINS)
def test_person_is_drawn_where_the_joints_are(domain):
    hits = total = 0
    for i in range(12):
        image, record = sp.render(domain, 31, i)
        background = sp.render_background(domain, 31, i)
        changed = np.any(image != background, axis=2)
        assert 0.02 < changed.mean() < 0.6  # the person is drawn, and only the person
        for (x, y), vis in zip(record.joints, record.visible):
            if vis:
                total += 1
                hits += bool(changed[int(round(y)), int(round(x))])
    assert hits / total >= 0.97


def test_domains_look_different():
    def histogram(image: np.ndarray) -> np.ndarray:
        hist = cv2.calcHist([image], [0, 1, 2], None, [6, 6, 6], [0, 256] * 3).ravel()
        return hist / hist.sum()

    means = {}
    for domain in sp.DOMAINS:
        hists = np.stack([histogram(sp.render(domain, 9, i)[0]) for i in range(60)])
        means[domain + "-a"], means[domain + "-b"] = hists[::2].mean(0), hists[1::2].mean(0)

    def dist(a: str, b: str) -> float:
        return float(np.abs(means[a] - means[b]).sum())

    within = max(dist("public-a", "public-b"), dist("private-a", "private-b"))
    across = min(dist(f"public-{x}", f"private-{y}") for x in "ab" for y in "ab")
    assert across > 2 * within


# ----------------------------------------------------------------------------- export and API
def test_write_split_round_trip(tmp_path):
    out = sp.write_split(tmp_path / "synth", domain="private", n=5, seed=2002, split="val")
    assert out == tmp_path / "synth"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth"]  # no temporary directory left
    annotations = json.loads((out / "annotations" / "mpii_val.json").read_text())
    assert len(annotations) == 5
    for i, entry in enumerate(annotations):
        image, record = sp.render("private", 2002, i)
        assert set(entry) == {"image", "center", "scale", "joints", "joints_vis", "head_box", "image_id"}
        assert entry["image"] == record.image and entry["image_id"] == record.image_id
        np.testing.assert_allclose(entry["joints"], record.joints, atol=1e-6, rtol=0)
        np.testing.assert_allclose(entry["center"], record.center, atol=1e-6, rtol=0)
        np.testing.assert_allclose(entry["head_box"], record.head_box, atol=1e-6, rtol=0)
        assert abs(entry["scale"] - record.scale) < 1e-9
        assert entry["joints_vis"] == [int(v) for v in record.visible]
        loaded = cv2.imread(str(out / "images" / entry["image"]), cv2.IMREAD_COLOR)
        np.testing.assert_array_equal(loaded, image)


def test_write_split_refuses_a_non_empty_directory(tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not an empty directory"):
        sp.write_split(out, domain="public", n=2, seed=1)
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (sp.write_split(empty, domain="public", n=1, seed=1) / "images" / "public_1_000000.png").is_file()


def test_load_split_and_constants():
    assert len(set(sp.SPLIT_SEEDS.values())) == len(sp.SPLIT_SEEDS) == 8
    ds = sp.load_split("private-test", n=3)
    assert len(ds) == 3 and ds.name == "synthpose-private-test"
    assert ds.records[0].image_id == f"synthpose-private-{sp.SPLIT_SEEDS['private-test']}-000000"
    assert sp.load_split("public-val", 2).image_ids().isdisjoint(sp.load_split("public-train", 2).image_ids())


@pytest.mark.parametrize("call, accepted", [
    (lambda: sp.synthpose_dataset("secret", 3, 1), "public, private"),
    (lambda: sp.synthpose_dataset("public", 0, 1), ">= 1"),
    (lambda: sp.synthpose_dataset("public", 3, -1), ">= 0"),
    (lambda: sp.render("public", 1, -2), ">= 0"),
    (lambda: sp.load_split("private-extra"), "private-holdout"),
    (lambda: sp.load_split("public-train", n=0), ">= 1"),
    (lambda: sp.write_split("/nonexistent/x", domain="public", n=1, seed=1, split="../evil"), "letters"),
])
def test_bad_input_raises_dataset_error(call, accepted):
    with pytest.raises(DatasetError, match=accepted) as info:
        call()
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- the shared painter
def _fill_before_refactor(img, poly, paint, gain=256):
    """``_fill`` as it was before the painter was shared (clamped to the 256 px canvas)."""
    if not isinstance(paint, np.ndarray):
        colour = tuple((c * gain) >> 8 for c in paint)
        cv2.fillConvexPoly(img, np.round(poly * 16).astype(np.int32), colour, cv2.LINE_AA, 4)
        return
    x0, y0 = (max(int(np.floor(v)) - 1, 0) for v in poly.min(axis=0))
    x1, y1 = (min(int(np.ceil(v)) + 2, SIZE) for v in poly.max(axis=0))
    if x0 >= x1 or y0 >= y1:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillConvexPoly(mask, np.round((poly - (x0, y0)) * 16).astype(np.int32), 255, cv2.LINE_AA, 4)
    roi = img[y0:y1, x0:x1]
    src = (paint[y0:y1, x0:x1].astype(np.uint16) * gain) >> 8
    alpha = mask[..., None].astype(np.uint16)
    alpha += alpha >> 7
    roi[...] = ((roi * (256 - alpha) + src * alpha + 128) >> 8).astype(np.uint8)


def _draw_figure_before_refactor(img, pose, look):
    """``_draw_figure`` as it was before ``paint_parts`` was factored out of it (the reference)."""
    for depth, kind, poly in sp._parts(pose, look.style):
        gain = int(256 * min(max(1.0 + 1.8 * depth, 0.68), 1.0))
        _fill_before_refactor(img, poly, look.paints[kind], gain)
        if look.outline:
            cv2.polylines(img, [np.round(poly * 16).astype(np.int32)], True, look.ink, 1, cv2.LINE_AA, 4)
        if kind == "head":
            sp._draw_head_details(img, pose, look, gain)


def test_shared_painter_keeps_every_render_byte_identical(monkeypatch):
    now = {(d, i): sp.render(d, 31, i)[0] for d in sp.DOMAINS for i in range(60)}
    monkeypatch.setattr(sp, "_draw_figure", _draw_figure_before_refactor)
    for (domain, index), image in now.items():
        assert np.array_equal(image, sp.render(domain, 31, index)[0]), (domain, index)


def test_mannequin_is_drawn_on_its_keypoints_only():
    pose = sp.sample_pose("public", 5, 3)
    canvas = np.zeros((SIZE, SIZE, 3), np.uint8)
    parts = sp.mannequin_parts(pose.joints, np.ones(16, bool), pose.unit)
    assert {kind for _, kind, _ in parts} >= {"torso", "head", "neck", "thigh", "shin", "upper_arm", "forearm"}
    sp.paint_parts(canvas, parts, {k: (200, 200, 200) for k in ("torso", "neck", "head", "thigh", "shin",
                                                                 "upper_arm", "forearm", "hand")})
    painted = canvas.any(axis=2)
    x1, y1, x2, y2 = pose.box
    ys, xs = np.nonzero(painted)
    assert painted.sum() > 500 and xs.min() >= x1 - 2 and xs.max() <= x2 + 2 and ys.min() >= y1 - 2
    # A joint that is not shown takes its parts with it: no head without the head top.
    hidden = np.ones(16, bool)
    hidden[J["head_top"]] = False
    assert "head" not in {kind for _, kind, _ in sp.mannequin_parts(pose.joints, hidden, pose.unit)}
