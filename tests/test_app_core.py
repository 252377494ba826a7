"""The webcam app's logic without a browser (apps/dp_pose_zoo_app/core.py): model choices and their labels,
the privacy block, live frames (drawing, anonymizing, smoothing, frames/s) and uploads (good and bad files).

Runs on the real embedded default and the shipped clip and photo; no gradio needed.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _app_fixtures import (CLIP, PHOTO, SECOND_EPSILON, SECOND_REPO, clip_frames, default_card,  # noqa: E402
                           fake_cache, label_epsilon, relabelled_default, rounded_up, skeleton_pixels)

from dp_pose_zoo.card import PrivacyBlock, card_from_text, render_card  # noqa: E402
from dp_pose_zoo.errors import DPPoseZooError, SourceError, UnknownModelError  # noqa: E402
from dp_pose_zoo_app import core  # noqa: E402


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """A Hub cache holding a second model: the default's weights under a card saying epsilon 0.5."""
    root = tmp_path_factory.mktemp("app-cache")
    fake_cache(root / "hub", SECOND_REPO, relabelled_default(root / "release"))
    return root / "hub"


@pytest.fixture(scope="module")
def loader(cache) -> core.ModelLoader:
    return core.ModelLoader(core.model_choices(cache_dir=cache), threads=1)


def a_card(*, epsilon: float, method: str = "dp-sgd", delta=1e-5, clip=1.0):
    block = PrivacyBlock(method=method, epsilon=epsilon, delta=delta, clipping_norm=clip, strategy="finetune",
                         epochs=2, steps=10, sample_rate=0.01 if method != "non-private" else None)
    return card_from_text(render_card(name="m", privacy=block, weights_sha256="a" * 64, train_data="synthpose"))


def rgb(frame_bgr):
    return cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)


def bones(counts: dict) -> int:
    return counts["centre"] + counts["left"] + counts["right"]


# -- choices, labels, privacy block ------------------------------------------------------------------
def test_choices_are_the_default_then_cached_models_labelled_with_epsilon_delta_and_c(cache):
    choices = core.model_choices(cache_dir=cache)
    assert [c.name for c in choices] == ["default", SECOND_REPO]
    assert choices[0].key == "default" and Path(choices[1].key).is_dir()
    p = default_card().privacy  # its epsilon rounded UP to two decimals (0.99722 -> 1.0)
    assert choices[0].label == f"default · ε={label_epsilon(p.epsilon)} (δ={p.delta:g}, C={p.clipping_norm:g}) {p.method}"
    assert choices[1].label == f"{SECOND_REPO} · ε=0.5 (δ=1e-05, C=0.1) dp-sgd"


def test_a_cached_model_without_onnx_is_not_offered(tmp_path, cache):
    release = relabelled_default(tmp_path / "r", name="no_onnx")
    (release / "model.onnx").rename(release / "model.safetensors")  # weights, but nothing the runtime runs
    fake_cache(tmp_path / "hub", "test/no-onnx", release, stamp=False)  # its weights match no card
    assert [c.name for c in core.model_choices(cache_dir=tmp_path / "hub")] == ["default"]


def test_choose_selects_a_listed_model_or_resolves_and_adds_another(cache, tmp_path):
    choices = core.model_choices(cache_dir=cache)
    assert core.choose(choices, "default") == (choices, "default")
    assert core.choose(choices, SECOND_REPO) == (choices, choices[1].key)
    folder = relabelled_default(tmp_path / "local", epsilon=2.0, name="local_eps2")
    more, key = core.choose(choices, str(folder))
    assert key == str(folder / "model.onnx") and more[0].name == str(folder) and more[1:] == choices
    assert "ε=2.0 " in more[0].label
    with pytest.raises(UnknownModelError):
        core.choose(choices, str(tmp_path / "nowhere"))


@pytest.mark.parametrize("epsilon,shown", [(7.979527233610514, "7.98"), (0.12341, "0.124"), (0.5, "0.500"),
                                           (3.0000001, "3.01"), (12.3401, "12.4")])
def test_privacy_block_rounds_epsilon_up_never_down(epsilon, shown):
    text = core.privacy_markdown(core.ModelChoice("k", "m", a_card(epsilon=epsilon)))
    assert f"- ε (epsilon): **{shown}** (rounded up)" in text
    assert float(shown) >= epsilon
    assert "- δ (delta): 1e-05" in text and "- C (clipping norm): 1.0" in text
    assert "one annotated person instance" in text


def test_privacy_block_of_a_non_private_model_says_there_is_no_guarantee():
    card = a_card(epsilon=math.inf, method="non-private", delta=None, clip=None)
    text = core.privacy_markdown(core.ModelChoice("k", "m", card))
    assert "no privacy guarantee" in text and "ε (epsilon)" not in text
    assert core.ModelChoice("k", "m", card).label == "m · ε=∞ non-private"


def test_privacy_block_keeps_the_data_epsilon_covers_apart_from_the_initial_models():
    block = PrivacyBlock(method="dp-sgd", epsilon=1.0, delta=1e-5, clipping_norm=0.1, strategy="finetune",
                         epochs=2, steps=10, sample_rate=0.01)
    card = card_from_text(render_card(name="m", privacy=block, weights_sha256="a" * 64, train_data="mpii:private",
                                      base_model="runs/public", base_model_data=["lsp:public", "coco:public"]))
    text = core.privacy_markdown(core.ModelChoice("k", "m", card))
    assert "- trained on: mpii:private\n" in text
    assert "- initialised from: runs/public, trained on lsp:public + coco:public; ε does not cover it" in text
    assert "initialised from" not in core.privacy_markdown(core.ModelChoice("k", "m", a_card(epsilon=1.0)))


def test_the_two_models_show_different_privacy_blocks(loader):
    default, second = (core.privacy_markdown(c) for c in loader.choices.values())
    assert f"**{rounded_up(default_card().privacy.epsilon, 3)}**" in default and "**0.500**" in second


def test_loader_opens_each_model_once_and_refuses_unknown_keys(loader):
    first = loader("default")
    assert loader("default") is first
    second = loader(list(loader.choices)[1])
    assert second is not first and second.metadata["privacy"]["epsilon"] == SECOND_EPSILON
    with pytest.raises(UnknownModelError):
        loader("nope")


def test_opening_a_model_holds_up_only_its_own_callers(loader, monkeypatch):
    """A stream on an open model keeps getting it while another model takes its time to open."""
    import threading

    import dp_pose_zoo.runtime.pretrained as pretrained

    first, second = list(loader.choices.values())
    slow = core.ModelLoader([first, second], threads=1)
    slow._open[first.key] = opened = object()
    release, started = threading.Event(), threading.Event()

    def opening(key, threads=None):
        started.set()
        release.wait(30)
        return ("opened", key)

    monkeypatch.setattr(pretrained, "from_pretrained", opening)
    results = {}
    opener = threading.Thread(target=lambda: results.setdefault("second", slow(second.key)))
    opener.start()
    assert started.wait(30)
    reader = threading.Thread(target=lambda: results.setdefault("first", slow(first.key)))
    reader.start()
    reader.join(30)  # with one lock for all models this would wait for `release`
    try:
        assert not reader.is_alive() and results["first"] is opened and "second" not in results
    finally:
        release.set()
        opener.join(30)
    assert results["second"] == ("opened", second.key)


def test_a_model_that_fails_to_open_fails_each_time_and_can_open_later(loader, monkeypatch):
    import dp_pose_zoo.runtime.pretrained as pretrained
    from dp_pose_zoo.errors import CheckpointError

    choice = list(loader.choices.values())[1]
    fresh = core.ModelLoader([choice], threads=1)
    calls = []

    def broken(key, threads=None):
        calls.append(key)
        raise CheckpointError(f"{key}: not a loadable ONNX model (corrupt or truncated?)")

    monkeypatch.setattr(pretrained, "from_pretrained", broken)
    for _ in range(2):
        with pytest.raises(CheckpointError, match="corrupt or truncated"):
            fresh(choice.key)
    assert calls == [choice.key, choice.key]  # tried again, not remembered as open
    monkeypatch.undo()
    assert fresh(choice.key).metadata["privacy"]["epsilon"] == SECOND_EPSILON


def test_options_from_the_switches():
    assert core.make_options(kpt_thr=0.3, smooth=True, anonymize="off").anonymize is None
    options = core.make_options(kpt_thr=0.2, smooth=False, anonymize="pixelate")
    assert (options.kpt_thr, options.smooth, options.anonymize) == (0.2, False, "pixelate")
    with pytest.raises(ValueError):
        core.make_options(kpt_thr=0.2, smooth=False, anonymize="erase")
    with pytest.raises(ValueError):
        core.make_options(kpt_thr=float("nan"), smooth=False, anonymize=None)


# -- live frames -----------------------------------------------------------------------------------
class FakeClock:
    """Frame arrivals every 0.2 s, each taking 50 ms."""

    def __init__(self):
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        frame, end = divmod(self.calls - 1, 2)
        return frame * 0.2 + end * 0.05


def test_live_frames_carry_skeletons_where_the_people_are_and_frames_per_second(loader):
    session = core.LiveSession(clock=FakeClock())
    options = core.make_options(kpt_thr=0.15, smooth=False, anonymize="off")
    frames = clip_frames(6)
    for frame in frames:
        out, stats = session(rgb(frame), loader("default"), model_key="default", options=options)
    assert out.shape == frames[-1].shape and out.dtype == np.uint8
    counts = skeleton_pixels(cv2.cvtColor(out, cv2.COLOR_RGB2BGR), frames[-1])
    assert bones(counts) > 100 and min(counts["left"], counts["right"]) > 10, counts
    assert stats.people >= 1 and stats.fps == pytest.approx(5.0) and stats.ms == pytest.approx(50.0)
    assert stats.markdown().startswith("**5.0 frames/s** · 50 ms per frame · ")
    # nothing drawn on a frame of the clip's background is skeleton-coloured
    assert bones(skeleton_pixels(frames[1], frames[0])) == 0


def test_the_first_frame_has_no_rate_yet():
    assert "measuring" in core.LiveStats(fps=None, ms=3.0, people=1).markdown()
    assert core.LiveStats(fps=4.04, ms=3.0, people=1).markdown().endswith("· 1 person")


def test_live_anonymize_skeleton_keeps_no_pixel_of_the_frame(loader):
    session = core.LiveSession()
    frame = clip_frames(1)[0]
    out, stats = session(rgb(frame), loader("default"), model_key="default",
                         options=core.make_options(kpt_thr=0.15, smooth=False, anonymize="skeleton"))
    assert stats.people >= 1
    black = (out.max(axis=2) == 0).mean()
    assert black > 0.8  # a blank frame with skeletons, boxes and the label on it
    assert bones(skeleton_pixels(cv2.cvtColor(out, cv2.COLOR_RGB2BGR), frame)) > 50


def test_live_anonymize_avatar_replaces_the_people_and_takes_no_key(loader):
    import inspect

    session = core.LiveSession()
    frame = clip_frames(1)[0]
    out, stats = session(rgb(frame), loader("default"), model_key="default",
                         options=core.make_options(kpt_thr=0.15, smooth=False, anonymize="avatar"))
    assert stats.people >= 1 and "avatar" in core.ANONYMIZE_CHOICES
    out = cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
    plain, _ = core.LiveSession()(rgb(frame), loader("default"), model_key="default",
                                  options=core.make_options(kpt_thr=0.15, smooth=False, anonymize="off"))
    changed = (out != cv2.cvtColor(plain, cv2.COLOR_RGB2BGR)).any(axis=2)
    assert changed.mean() > 0.02  # the people's boxes were replaced, not just drawn on
    assert not any("key" in name or "recover" in name for name in inspect.signature(core.make_options).parameters)


def test_live_switches_model_people_mode_and_smoothing_between_frames(loader):
    session = core.LiveSession()
    keys = list(loader.choices)
    frames = clip_frames(4)
    smooth = core.make_options(kpt_thr=0.15, smooth=True, anonymize="blur")
    out0, s0 = session(rgb(frames[0]), loader(keys[0]), model_key=keys[0], options=smooth)
    out1, s1 = session(rgb(frames[1]), loader(keys[0]), model_key=keys[0], options=smooth)
    out2, s2 = session(rgb(frames[2]), loader(keys[1]), model_key=keys[1], options=smooth)
    out3, s3 = session(rgb(frames[3]), loader(keys[1]), model_key=keys[1], people="whole frame",
                       options=core.make_options(kpt_thr=0.0, smooth=False, anonymize="off"))
    assert s3.people == 1  # one person filling the frame
    assert min(s0.people, s1.people, s2.people) >= 1
    with pytest.raises(ValueError):
        session(rgb(frames[0]), loader(keys[0]), model_key=keys[0], people="everyone", options=smooth)
    with pytest.raises(ValueError, match="uint8"):
        session(frames[0].astype(np.float32), loader(keys[0]), model_key=keys[0], options=smooth)


# -- uploads ---------------------------------------------------------------------------------------
def test_upload_of_a_photo_gives_the_annotated_image_and_its_json(loader, tmp_path):
    result = core.process_upload(PHOTO, loader("default"), out_root=tmp_path, model_key="default",
                                 options=core.make_options(kpt_thr=0.15, smooth=False, anonymize="off"))
    assert [p.suffix for p in result.files] == [".jpg", ".json", ".csv"] and all(p.is_file() for p in result.files)
    data = json.loads(result.json_path.read_text())
    assert len(data["frames"]) == 1 and data["model"]["privacy"]["epsilon"] == default_card().privacy.epsilon
    assert data["settings"]["app"] == "dp-pose demo"
    assert result.preview is not None and result.preview.shape == cv2.imread(str(PHOTO)).shape
    assert result.line.startswith("1 frames") and "->" not in result.line


def test_upload_of_a_video_gives_the_annotated_video_and_stops_at_the_frame_cap(loader, tmp_path):
    result = core.process_upload(CLIP, loader("default"), out_root=tmp_path, max_frames=4,
                                 options=core.make_options(kpt_thr=0.15, smooth=True, anonymize="pixelate"))
    assert [p.name for p in result.files] == ["vtest-clip.mp4", "keypoints.json", "keypoints.csv"]
    data = json.loads(result.json_path.read_text())
    assert len(data["frames"]) == 4 and sum(len(f["people"]) for f in data["frames"]) >= 4
    assert result.preview is not None and result.preview.shape == (288, 384, 3)
    assert result.line.endswith("(the first 4 frames)")


@pytest.mark.parametrize("name,content,message", [
    ("empty.mp4", b"", "empty.mp4 is empty (0 bytes)"),
    ("notes.txt", b"just some text\n", "cannot decode notes.txt: not a video"),
    ("fake.jpg", b"not a jpeg", "cannot decode fake.jpg: not an image"),
    ("broken.avi", CLIP.read_bytes()[:200], "broken.avi"),
])
def test_bad_uploads_are_one_line_errors_naming_the_file(loader, tmp_path, name, content, message):
    upload = tmp_path / "gradio-tmp" / name
    upload.parent.mkdir()
    upload.write_bytes(content)
    with pytest.raises(SourceError) as error:
        core.process_upload(upload, loader("default"), out_root=tmp_path / "out",
                            options=core.make_options(kpt_thr=0.15, smooth=False, anonymize="off"))
    text = str(error.value)
    assert message in text and "\n" not in text and str(upload.parent) not in text
    assert not any((tmp_path / "out").rglob("keypoints.json"))


def test_no_upload_is_an_error_too(loader, tmp_path):
    with pytest.raises(DPPoseZooError, match="no file uploaded"):
        core.process_upload(None, loader("default"), out_root=tmp_path,
                            options=core.make_options(kpt_thr=0.15, smooth=False, anonymize="off"))


def test_old_upload_folders_are_pruned(tmp_path):
    old, new = tmp_path / "upload-old", tmp_path / "upload-new"
    for folder in (old, new):
        (folder / "clip").mkdir(parents=True)
        (folder / "clip" / "keypoints.json").write_text("{}")
    os.utime(old, (1000.0, 1000.0))
    (tmp_path / "not-an-upload").mkdir()
    os.utime(tmp_path / "not-an-upload", (1000.0, 1000.0))
    assert core.prune_uploads(tmp_path, max_age=3600, now=1000.0 + 3601) == 1
    assert not old.exists() and new.exists() and (tmp_path / "not-an-upload").exists()
