"""Inference speed on real footage (``../shared/data/vtest.avi``), in one run; prints a Markdown table.

Measured on the same first ``--frames`` frames of the video:

- decode-only frames/s (the ceiling: nothing is faster than reading the file);
- end-to-end frames/s of ``run_inference`` (decode, motion detector every
  ``--det-every`` frames, keypoint tracking, pose, drawing, video + JSON + CSV
  writing) with the fp32 and the INT8 model;
- ms per person crop (pose model only, crops batched per frame) and people per frame;
- single person: a clip cut around the person tracked longest in the end-to-end
  run (their box, enlarged 1.25x to 3:4, resized to 288x384, so one person fills
  every frame as in a webcam close-up); our INT8 pipeline with ``--boxes full``
  (crop, pose, decode) against MediaPipe's BlazePose Full (``model_complexity=1``)
  on exactly those frames, run by ``--mediapipe-python`` (a separate venv with
  ``mediapipe==0.10.14``; a benchmark-only dependency that never enters the
  project's environment). Whole 768x576 frames are useless for this: BlazePose's
  detector finds none of the 60-120 px walkers in them.

The load average is printed beside the figures: these machines are shared,
and a number measured at load 6 on 2 cores says less than one at load 0.

    python benchmarks/infer_speed.py --model default --frames 100 --threads 2 \\
        --mediapipe-python /tmp/mpvenv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import load_average, run_mediapipe

VIDEO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "vtest.avi"

MEDIAPIPE_SCRIPT = r"""
import json, sys, time
import cv2, mediapipe as mp
path, n = sys.argv[1], int(sys.argv[2])
cap = cv2.VideoCapture(path)
frames = []
while len(frames) < n:
    ok, f = cap.read()
    if not ok:
        break
    frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1) as pose:
    pose.process(frames[0])  # graph start-up is not per-frame cost
    found = 0
    t = time.perf_counter()
    for f in frames:
        found += pose.process(f).pose_landmarks is not None
    dt = time.perf_counter() - t
print(json.dumps({"fps": len(frames) / dt, "frames": len(frames), "found": found, "version": mp.__version__}))
"""


def read_frames(path: Path, n: int) -> tuple[list[np.ndarray], float]:
    """The first ``n`` frames and the decode-only frames/s."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    t = time.perf_counter()
    while len(frames) < n:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    dt = time.perf_counter() - t
    cap.release()
    if not frames:
        sys.exit(f"cannot read {path}")
    return frames, len(frames) / dt


def end_to_end(estimator, video: Path, frames: int, det_every: int) -> dict:
    """``run_inference`` on the video: frames/s, people per frame, and the ms per crop of the pose model."""
    from dp_pose_zoo.video.detection import MotionDetector
    from dp_pose_zoo.video.pipeline import InferOptions, run_inference
    from dp_pose_zoo.video.sources import open_source

    timed = {"crops": 0, "seconds": 0.0}
    original = estimator.__call__

    class Timed:
        """The estimator, timed (what the tracker calls)."""

        metadata = estimator.metadata
        path = estimator.path

        def __call__(self, image, boxes=None):
            t = time.perf_counter()
            out = original(image, boxes)
            timed["seconds"] += time.perf_counter() - t
            timed["crops"] += len(out)
            return out

    with tempfile.TemporaryDirectory() as tmp:
        summary = run_inference(open_source(video, max_frames=frames), Timed(), MotionDetector(),
                                out_dir=Path(tmp) / "run", options=InferOptions(det_every=det_every))
        tracks: dict[int, dict[int, list[float]]] = {}
        for frame in json.loads((Path(tmp) / "run" / "keypoints.json").read_text())["frames"]:
            for person in frame["people"]:
                tracks.setdefault(person["track_id"], {})[frame["index"]] = person["box"]
    return {"fps": summary.fps, "people_per_frame": summary.people_per_frame,
            "ms_per_crop": 1000 * timed["seconds"] / max(1, timed["crops"]), "frames": summary.frames,
            "longest_track": max(tracks.values(), key=len) if tracks else {}}


CLOSE_UP = (288, 384)  # width, height of the single-person clip


def person_clip(frames: list[np.ndarray], boxes: dict[int, list[float]], out: Path) -> list[np.ndarray]:
    """Frames cut around one person's box (1.25x, 3:4), written to ``out`` (MJPG) for MediaPipe."""
    import cv2

    from dp_pose_zoo.geometry import bbox_to_center_scale, crop_matrix

    w, h = CLOSE_UP
    clip = []
    for index, box in sorted(boxes.items()):
        center, scale = bbox_to_center_scale(box, aspect_ratio=w / h)
        matrix = crop_matrix(center, scale, (h, w), padding=1.25)
        clip.append(cv2.warpAffine(frames[index], matrix, (w, h), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=(114, 114, 114)))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    for frame in clip:
        writer.write(frame)
    writer.release()
    return clip


def single_person(estimator, frames: list[np.ndarray], kpt_thr: float) -> tuple[float, int]:
    """frames/s of crop + pose + decode with one box filling the frame (``--boxes full``), and the
    frames where the pose was found (at least half the joints above ``kpt_thr``)."""
    from dp_pose_zoo.runtime.pose_estimator import full_frame_boxes

    full = full_frame_boxes(frames[0])
    estimator(frames[0], full)
    found = 0
    t = time.perf_counter()
    for frame in frames:
        person = estimator(frame, full)[0]
        found += int((person.scores > kpt_thr).mean() >= 0.5)
    return len(frames) / (time.perf_counter() - t), found


def mediapipe_fps(python: str | None, video: Path, n: int) -> tuple[dict | None, str]:
    return run_mediapipe(python, MEDIAPIPE_SCRIPT, str(video), str(n))


def open_model(name: str, precision: str, threads: int | None):
    from dp_pose_zoo.commands.infer import load_estimator

    return load_estimator(name, precision=precision, threads=threads)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", type=Path, default=VIDEO)
    p.add_argument("--model", default="default", help="a name from_pretrained resolves (fp32 and int8 from it)")
    p.add_argument("--fp32", help="an fp32 .onnx instead of --model")
    p.add_argument("--int8", help="an INT8 .onnx instead of --model")
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--det-every", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--mediapipe-python", help="python of a venv with mediapipe==0.10.14")
    args = p.parse_args(argv)

    from dp_pose_zoo.skeleton import DEFAULT_KPT_THR
    from dp_pose_zoo.video.sources import quiet_video_backends

    quiet_video_backends()
    load_before = load_average()
    frames, decode_fps = read_frames(args.video, args.frames)
    fp32 = open_model(args.fp32 or args.model, "fp32", args.threads)
    int8 = open_model(args.int8 or args.model, "int8", args.threads)
    e2e = {name: end_to_end(m, args.video, len(frames), args.det_every) for name, m in (("fp32", fp32), ("int8", int8))}
    with tempfile.TemporaryDirectory() as tmp:
        clip_file = Path(tmp) / "close-up.avi"
        clip = person_clip(frames, e2e["int8"]["longest_track"], clip_file)
        ours_single, ours_found = single_person(int8, clip, DEFAULT_KPT_THR)
        mp_result, mp_status = mediapipe_fps(args.mediapipe_python, clip_file, len(clip))
    load_after = load_average()

    h, w = frames[0].shape[:2]
    print(f"video: {args.video.name} ({w}x{h}), first {len(frames)} frames; model input "
          f"{fp32.input_size[0]}x{fp32.input_size[1]}; threads {args.threads or 'ORT default'}; "
          f"det every {args.det_every}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"load average (1, 5, 15 min): before {load_before}; after {load_after}\n")
    print("| measure | value |\n|---|---|")
    print(f"| decode only (ceiling) | {decode_fps:.1f} frames/s |")
    for name in ("fp32", "int8"):
        r = e2e[name]
        print(f"| end to end, {name} (motion detector, tracking, pose, draw, write) | {r['fps']:.1f} frames/s |")
    for name in ("fp32", "int8"):
        print(f"| pose model, {name} | {e2e[name]['ms_per_crop']:.1f} ms per person crop |")
    print(f"| people per frame (motion detector + keypoint tracking) | {e2e['int8']['people_per_frame']:.2f} |")
    print(f"| single person ({len(clip)} close-up frames {CLOSE_UP[0]}x{CLOSE_UP[1]}, `--boxes full`), our INT8: "
          f"crop + pose + decode | {ours_single:.1f} frames/s (pose found on {ours_found}/{len(clip)}) |")
    if mp_result:
        print(f"| single person, same frames, MediaPipe BlazePose Full {mp_result['version']} (`model_complexity=1`) | "
              f"{mp_result['fps']:.1f} frames/s (pose found on {mp_result['found']}/{mp_result['frames']}) |")
        print(f"| ratio: our INT8 / BlazePose Full (goal >= 1) | {ours_single / mp_result['fps']:.2f} |")
    else:
        print(f"| single person, MediaPipe BlazePose Full | {mp_status} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
