"""``dp-pose infer`` end to end on real footage (the shipped clip, the COCO photos) and on every bad input."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from _infer_fixtures import CLIP, COCO_DIR, copy_clip, png_claiming, run_cli, tiny_onnx  # noqa: F401 (fixture)
from hub_server import make_release
from hub_server import tiny_onnx as write_tiny_onnx
from dp_pose_zoo.video.sinks import FORMAT, FORMAT_VERSION, csv_columns
from dp_pose_zoo.skeleton import JOINT_NAMES

pytestmark = pytest.mark.slow


def _check_json_schema(path: Path, *, frames: int) -> dict:
    """The layout docs/output-format.md documents."""
    data = json.loads(path.read_text())
    assert data["format"] == FORMAT and data["version"] == FORMAT_VERSION
    assert {"source", "model", "settings", "joint_names", "skeleton", "frames", "summary"} <= set(data)
    assert data["joint_names"] == list(JOINT_NAMES)
    assert "privacy" in data["model"] and data["model"]["privacy"]["epsilon"] == "inf"  # strict JSON
    assert len(data["frames"]) == frames == data["summary"]["frames"]
    for i, frame in enumerate(data["frames"]):
        assert frame["index"] == i and {"name", "timestamp", "width", "height", "people"} <= set(frame)
        for p in frame["people"]:
            assert set(p) == {"track_id", "box", "box_source", "box_score", "score", "keypoints"}
            assert len(p["box"]) == 4 and len(p["keypoints"]) == 16
            assert all(len(k) == 3 and all(isinstance(v, (int, float)) for v in k) for k in p["keypoints"])
            assert p["box_source"] in ("detector", "keypoints", "file", "full")
    return data


def _check_csv(path: Path, data: dict) -> None:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == csv_columns() and len(rows[0]) == 11 + 3 * 16
    assert len(rows) - 1 == sum(len(fr["people"]) for fr in data["frames"])


def _out_lines(capsys) -> tuple[list[str], list[str]]:
    cap = capsys.readouterr()
    return cap.out.strip().splitlines(), [line for line in cap.err.strip().splitlines() if line]


def test_video_end_to_end(tiny_onnx, tmp_path, capsys):
    out = tmp_path / "run"
    code = run_cli(["infer", str(CLIP), "--model", str(tiny_onnx), "--out", str(out), "--max-frames", "12",
                    "--det-every", "3", "--smooth", "--anonymize", "blur", "--threads", "1", "-q"])
    stdout, _ = _out_lines(capsys)
    assert code == 0 and "12 frames" in stdout[-1] and str(out) in stdout[-1]
    assert sorted(p.name for p in out.iterdir()) == ["keypoints.csv", "keypoints.json", "vtest-clip.mp4"]
    data = _check_json_schema(out / "keypoints.json", frames=12)
    assert data["settings"]["smooth"] and data["settings"]["anonymize"] == "blur"
    assert sum(len(f["people"]) for f in data["frames"]) > 0  # the walkers are found
    _check_csv(out / "keypoints.csv", data)
    cap = cv2.VideoCapture(str(out / "vtest-clip.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    assert not list(tmp_path.glob(".*"))  # no staging left


def test_photo_folder_end_to_end(tiny_onnx, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(COCO_DIR, tmp_path / "photos")
    assert run_cli(["infer", "photos", "--model", str(tiny_onnx), "--boxes", "full", "-q"]) == 0
    run = tmp_path / "runs" / "infer" / "photos"
    images = sorted(p.name for p in run.glob("*.jpg"))
    assert images == sorted(p.stem + ".jpg" for p in COCO_DIR.glob("*.jpg"))
    data = _check_json_schema(run / "keypoints.json", frames=4)
    assert all(len(f["people"]) == 1 and f["people"][0]["box_source"] == "full" for f in data["frames"])
    _check_csv(run / "keypoints.csv", data)
    assert run_cli(["infer", "photos", "--model", str(tiny_onnx), "--boxes", "full", "-q"]) == 0
    assert (tmp_path / "runs" / "infer" / "photos-2").is_dir()  # a second run gets its own folder
    assert "photos-2" in capsys.readouterr().out
    assert run_cli(["infer", "photos", "--model", str(tiny_onnx), "--boxes", "full", "--flip-test", "-q"]) == 0
    flipped = json.loads((tmp_path / "runs" / "infer" / "photos-3" / "keypoints.json").read_text())
    assert flipped["model"]["flip_test"] is True and data["model"]["flip_test"] is False
    assert [f["people"][0]["keypoints"] for f in flipped["frames"]] != [f["people"][0]["keypoints"]
                                                                      for f in data["frames"]]


def _bad(argv, tmp_path, capsys, match: str) -> str:
    before = set(tmp_path.rglob("*"))
    code = run_cli(argv)
    _, err = _out_lines(capsys)
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("dp-pose infer: error:") and match in err[0], err
    assert set(tmp_path.rglob("*")) == before  # nothing written
    return err[0]


def test_bad_inputs_fail_with_one_line_and_no_outputs(tiny_onnx, tmp_path, capsys):
    out = ["--out", str(tmp_path / "run"), "-q"]
    model = ["--model", str(tiny_onnx)]
    _bad(["infer", str(tmp_path / "missing.mp4"), *model, *out], tmp_path, capsys, "no such file")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(os.urandom(8192))
    _bad(["infer", str(junk), *model, *out], tmp_path, capsys, "cannot decode")
    zero = tmp_path / "zero.avi"
    writer = cv2.VideoWriter(str(zero), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 64))
    writer.release()
    _bad(["infer", str(zero), *model, *out], tmp_path, capsys, str(zero))
    clip = copy_clip(tmp_path / "in" / "clip.avi")
    _bad(["infer", str(clip), "--model", "no-such-model", *out], tmp_path, capsys, "no-such-model")
    half = tmp_path / "half.onnx"
    half.write_bytes(tiny_onnx.read_bytes()[: tiny_onnx.stat().st_size // 2])
    _bad(["infer", str(clip), "--model", str(half), *out], tmp_path, capsys, "not a loadable ONNX")
    _bad(["infer", "99", *model, *out], tmp_path, capsys, "webcam 99 did not open")
    _bad(["infer", "99999999999", *model, *out], tmp_path, capsys, "webcam 99999999999 did not open")
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    _bad(["infer", str(clip), *model, "--out", str(blocker / "sub"), "-q"], tmp_path, capsys, "cannot create")


def test_default_model_missing_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DP_POSE_ZOO_DEFAULT_DIR", str(tmp_path / "nowhere"))
    _bad(["infer", str(CLIP), "--out", str(tmp_path / "run"), "-q"], tmp_path, capsys, "default model")


def test_truncated_video_keeps_frames_before_the_break(tiny_onnx, tmp_path, capsys):
    data = CLIP.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "run"
    assert run_cli(["infer", str(cut), "--model", str(tiny_onnx), "--out", str(out), "--boxes", "full",
                    "--threads", "1", "-q"]) == 0
    _, err = _out_lines(capsys)
    kept = json.loads((out / "keypoints.json").read_text())
    n = kept["summary"]["frames"]
    assert 0 < n < 30 and kept["summary"]["stopped_early"]
    assert any("broke off" in line and f"frame {n}" in line for line in err)
    assert (out / "cut.mp4").is_file()


@pytest.fixture
def release(tmp_path):
    """A bare export folder (a tiny real ONNX with our metadata beside its card): no training needed."""
    return make_release(tmp_path / "release", epsilon=1.0, layout="export")


def test_an_image_too_large_to_decode_is_skipped_and_the_others_kept(release, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(COCO_DIR / "000000000785.jpg", photos / "a.jpg")
    png_claiming(photos / "b-huge.png", 60000, 60000)
    shutil.copy(COCO_DIR / "000000040083.jpg", photos / "c.jpg")
    out = tmp_path / "run"
    assert run_cli(["infer", str(photos), "--model", str(release), "--boxes", "full", "--out", str(out), "-q"]) == 0
    _, err = _out_lines(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "c.jpg", "keypoints.csv", "keypoints.json"]
    assert json.loads((out / "keypoints.json").read_text())["summary"]["skipped"] == [str(photos / "b-huge.png")]
    assert any("b-huge.png" in line for line in err)
    huge = png_claiming(tmp_path / "huge.png", 60000, 60000)
    _bad(["infer", str(huge), "--model", str(release), "--out", str(tmp_path / "run2"), "-q"], tmp_path, capsys,
         "cannot decode")


def test_each_warning_is_printed_once(release, tmp_path):
    """A real process (pytest's own log capture would hide a logging line in-process): one line per warning."""
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(COCO_DIR / "000000000785.jpg", photos / "a.jpg")
    (photos / "b.jpg").write_bytes(b"not a jpeg")
    cut = tmp_path / "cut.avi"
    cut.write_bytes(CLIP.read_bytes()[: CLIP.stat().st_size // 2])
    for source, needle in ((photos, "b.jpg"), (cut, "broke off")):
        result = subprocess.run([sys.executable, "-m", "dp_pose_zoo", "infer", str(source), "--model", str(release),
                                 "--boxes", "full", "--out", str(tmp_path / f"run-{source.stem}")],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        lines = [line for line in result.stderr.splitlines() if needle in line]
        assert len(lines) == 1 and lines[0].startswith("dp-pose infer: warning: "), result.stderr


@pytest.mark.parametrize("model", ["alice/b..c", "alice--x/y", "alice/x@../../y"])
def test_a_hub_id_the_hub_refuses_is_one_line(model, tmp_path, capsys):
    _bad(["infer", str(COCO_DIR / "000000000785.jpg"), "--model", model, "--out", str(tmp_path / "run"), "-q"],
         tmp_path, capsys, model)


def _relabel_onnx(path: Path, *, epsilon: float) -> None:
    """Replace ``path`` with an ONNX whose metadata claims ``epsilon`` and other weights than its card's."""
    write_tiny_onnx(path, privacy={"method": "dp-sgd", "epsilon": epsilon, "delta": 1e-5, "clipping_norm": 0.1},
                    weights_sha256="ee" * 32)


@pytest.mark.parametrize("layout, onnx", [("export", "model.onnx"), ("checkpoint", "onnx/model.onnx")])
def test_a_model_file_beside_its_card_is_verified_like_its_folder(tmp_path, capsys, layout, onnx):
    folder = make_release(tmp_path / "release", epsilon=1.0, layout=layout)
    photo = COCO_DIR / "000000000785.jpg"
    out = tmp_path / "run"
    assert run_cli(["infer", str(photo), "--model", str(folder / onnx), "--out", str(out), "-q"]) == 0
    data = json.loads((out / "keypoints.json").read_text())
    assert data["model"]["privacy_verified"] is True and data["model"]["privacy"]["epsilon"] == 1.0
    _relabel_onnx(folder / onnx, epsilon=0.1)  # the card beside it still says 1.0
    lines = [_bad(["infer", str(photo), "--model", str(model), "--out", str(tmp_path / "run2"), "-q"], tmp_path,
                  capsys, "exported from weights eeeeeeeeeeee") for model in (folder, folder / onnx)]
    assert lines[0] == lines[1]  # the model file went through its folder's check, word for word


def test_a_bare_onnx_is_labelled_unverified(tmp_path, capsys):
    folder = make_release(tmp_path / "release", epsilon=1.0, layout="export")
    bare = tmp_path / "bare"
    bare.mkdir()
    _relabel_onnx(bare / "model.onnx", epsilon=0.1)  # no card: nothing can contradict its claim
    shutil.copy(folder / "model.onnx", bare / "same.onnx")
    photo = COCO_DIR / "000000000785.jpg"
    runs = {}
    for name, model in (("bare", bare / "model.onnx"), ("same", bare / "same.onnx"), ("verified", folder)):
        out = tmp_path / f"run-{name}"
        assert run_cli(["infer", str(photo), "--model", str(model), "--boxes", "full", "--out", str(out), "-q"]) == 0
        runs[name] = (json.loads((out / "keypoints.json").read_text()), cv2.imread(str(out / f"{photo.stem}.jpg")))
    claim, _ = runs["bare"]
    assert claim["model"]["privacy_verified"] is False and claim["model"]["privacy"]["epsilon"] == 0.1
    (same, same_image), (verified, verified_image) = runs["same"], runs["verified"]
    assert same["model"]["privacy_verified"] is False and verified["model"]["privacy_verified"] is True
    assert same["frames"] == verified["frames"]  # the same weights find the same keypoints...
    assert not np.array_equal(same_image, verified_image)  # ...but the label says what is not verified
