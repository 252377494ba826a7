"""Sources: video, image, folder, glob, webcam; clear errors; a video that breaks off mid-way."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from _infer_fixtures import CLIP, COCO_DIR, png_claiming
from dp_pose_zoo.errors import SourceError, SourceNotFoundError
from dp_pose_zoo.video.sources import ImageSource, VideoSource, WebcamSource, open_source, quiet_video_backends, source_stem

quiet_video_backends()


def test_video_clip_yields_every_frame_with_timestamps():
    src = open_source(CLIP)
    assert isinstance(src, VideoSource) and src.fps == 10.0 and src.frame_count == 30
    frames = list(src)
    assert len(frames) == 30 and src.stopped_early is None
    assert frames[3].index == 3 and frames[3].name == "frame_000003" and frames[3].timestamp == pytest.approx(0.3)
    assert frames[0].image.shape == (288, 384, 3)


def test_max_frames_caps_the_run():
    src = open_source(CLIP, max_frames=4)
    assert src.frame_count == 4 and len(list(src)) == 4 and src.stopped_early is None


def test_folder_glob_and_single_image():
    folder = open_source(COCO_DIR)
    assert isinstance(folder, ImageSource) and folder.independent_frames
    names = [f.name for f in folder]
    assert names == sorted(p.stem for p in COCO_DIR.glob("*.jpg"))
    assert len(list(open_source(str(COCO_DIR / "*.jpg")))) == 4
    one = list(open_source(COCO_DIR / "000000000785.jpg"))
    assert len(one) == 1 and one[0].image.ndim == 3


def test_bad_sources_raise_one_clear_error(tmp_path):
    with pytest.raises(SourceNotFoundError, match="no such file"):
        open_source(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(SourceError, match="cannot decode"):
        open_source(junk)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceNotFoundError, match="no images"):
        open_source(empty)
    with pytest.raises(SourceNotFoundError, match="no images match"):
        open_source(str(tmp_path / "*.png"))
    with pytest.raises(SourceError, match="webcam 99 did not open"):
        WebcamSource(99)


@pytest.mark.parametrize("index", ["99999999999", str(2**31)])
def test_a_webcam_index_opencv_cannot_take_is_one_clear_error(index):
    with pytest.raises(SourceError, match=f"webcam {index} did not open"):
        open_source(index)


def test_a_negative_webcam_index_is_refused_before_opencv_sees_it():
    with pytest.raises(SourceError, match="webcam -1 did not open"):
        WebcamSource(-1)  # OpenCV's V4L backend crashes the process on a negative index


def test_only_ascii_digits_name_a_webcam(tmp_path):
    with pytest.raises(SourceNotFoundError, match="no such file"):
        open_source("\u00b2")  # "²".isdigit() is True, but it is no index
    assert source_stem("\u00b2") == "\u00b2"


def test_zero_frame_video_is_refused(tmp_path):
    path = tmp_path / "zero.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 64))
    writer.release()
    with pytest.raises(SourceError, match="no frames|cannot decode"):
        open_source(path)


def test_truncated_video_keeps_frames_before_the_break(tmp_path):
    data = CLIP.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    src = open_source(cut)
    frames = list(src)
    assert 0 < len(frames) < 30
    assert src.stopped_early and f"frame {len(frames)}" in src.stopped_early


def test_unreadable_image_in_a_folder_is_skipped(tmp_path):
    good = tmp_path / "a.png"
    cv2.imwrite(str(good), np.zeros((32, 32, 3), np.uint8))
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg")
    src = open_source(tmp_path)
    assert [f.name for f in src] == ["a"] and [p.name for p in src.skipped] == ["b.jpg"]


def test_an_image_too_large_to_decode_is_skipped_like_any_unreadable_one(tmp_path):
    png_claiming(tmp_path / "a-huge.png", 60000, 60000)
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((32, 32, 3), np.uint8))
    png_claiming(tmp_path / "c-huge.png", 60000, 60000)
    src = open_source(tmp_path)
    assert [f.name for f in src] == ["b"] and [p.name for p in src.skipped] == ["a-huge.png", "c-huge.png"]
    with pytest.raises(SourceError, match="cannot decode"):
        open_source(tmp_path / "a-huge.png")


def test_source_stem():
    assert source_stem("0") == "webcam0"
    assert source_stem(str(CLIP)) == "vtest-clip"
    assert source_stem("photos/*.jpg") == "photos"
