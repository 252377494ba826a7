"""Privacy at the camera, measured: is identity hidden, is pose kept, what does --recoverable cost.

1. **Identity hidden.** OpenCV's Haar frontal-face cascade and its full-body
   cascade (``cv2.data.haarcascades``) on real photos and frames -- messi5.jpg,
   basketball1/2.png, the shipped vtest clip, MPII-subset test photos -- before
   and after ``blur``, ``pixelate`` (faces, the CLI's default region) and
   ``avatar``, each output rendered as ``dp-pose infer`` writes it (skeletons,
   boxes, label). People are found as ``dp-pose infer`` finds them (HOG, then the
   pose model). Only people that were found are hidden, so the fair count is
   the faces / bodies that overlap a hidden region: found there before, and
   still found there after. All detections are printed too.
2. **Pose kept.** PCKh on the MPII-subset test: the model on each original
   photo (the record's own box, as ``dp-pose eval`` crops), then on the
   avatar-anonymized photo (the avatar posed on that first estimate), against
   the same ground truth: how much pose information the avatar keeps.
3. **Cost.** Frames/s of the whole ``infer`` pipeline on the vtest clip with
   ``--anonymize avatar`` with and without ``--recoverable`` (ffv1 and mp4v),
   and the sidecar's bytes per frame.

    OMP_NUM_THREADS=1 python benchmarks/anonymize_identity.py --threads 1 --photos 40 --frames 30

Reads ``../shared/data`` (research data sets with their own terms; see its README).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from _common import cpu_model, load_average

from dp_pose_zoo.video.anonymize import anonymize, hidden_regions
from dp_pose_zoo.datasets import load_dataset
from dp_pose_zoo.video.detection import make_detector
from dp_pose_zoo.geometry import center_scale_to_bbox
from dp_pose_zoo.metrics import limb_pckh, pckh_table
from dp_pose_zoo.video.pipeline import InferOptions, render, run_inference
from dp_pose_zoo.video.recovery import generate_key, load_key
from dp_pose_zoo.runtime import Person, PoseEstimator
from dp_pose_zoo.skeleton import DEFAULT_KPT_THR
from dp_pose_zoo.video.sources import open_source
from dp_pose_zoo.video.tracking import PoseTracker

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "data").resolve()
CLIP = ROOT / "tests" / "data" / "vtest-clip" / "vtest-clip.avi"
MPII_TEST = DATA / "mpii-subset" / "annotations" / "mpii_test.json"
MODES = ("blur", "pixelate", "avatar")
CASCADES = {"faces": "haarcascade_frontalface_default.xml", "bodies": "haarcascade_fullbody.xml"}


def photo_sets(n_photos: int, n_frames: int) -> dict[str, list[np.ndarray]]:
    sets = {"opencv samples": [cv2.imread(str(DATA / n)) for n in ("messi5.jpg", "basketball1.png", "basketball2.png")]}
    cap, frames = cv2.VideoCapture(str(CLIP)), []
    while len(frames) < n_frames:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    sets["vtest clip"] = frames
    names = sorted({r["image"] for r in json.loads(MPII_TEST.read_text())})[:n_photos]
    sets["MPII-subset test"] = [cv2.imread(str(DATA / "mpii-subset" / "images" / n)) for n in names]
    return sets


def _overlaps(found: np.ndarray, regions: list[dict]) -> np.ndarray:
    """Which detections ``(x, y, w, h)`` overlap a hidden region at all."""
    hit = np.zeros(len(found), bool)
    for i, (x, y, w, h) in enumerate(found):
        for r in regions:
            x1, y1, x2, y2 = r["box"]
            hit[i] |= x < x2 and x + w > x1 and y < y2 and y + h > y1
    return hit


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw, ih = max(0, min(ax + aw, bx + bw) - max(ax, bx)), max(0, min(ay + ah, by + bh) - max(ay, by))
    return iw * ih / float(aw * ah + bw * bh - iw * ih)


def identity(estimator, sets, *, privacy) -> list[tuple]:
    """Per image set, mode and cascade: detections before; of them on a hidden region; of those, still
    detected after (an after-detection with IoU >= 0.3); new detections on hidden regions after (false
    alarms on the anonymized pixels); and all detections after."""
    cascades = {k: cv2.CascadeClassifier(cv2.data.haarcascades + v) for k, v in CASCADES.items()}
    tracker = PoseTracker(estimator, make_detector("auto", video=False), det_every=1)
    rows = []
    for name, images in sets.items():
        counts: dict = {}
        people_found = 0
        for image in images:
            tracker.reset()
            people = tracker(image)
            people_found += len(people)
            grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            before = {what: np.reshape(c.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5), (-1, 4))
                      for what, c in cascades.items()}
            for mode in MODES:
                regions = hidden_regions(image.shape, people, mode=mode, region="face")
                out = cv2.cvtColor(render(image, people, options=InferOptions(anonymize=mode), privacy=privacy),
                                   cv2.COLOR_BGR2GRAY)
                for what, cascade in cascades.items():
                    after = np.reshape(cascade.detectMultiScale(out, scaleFactor=1.1, minNeighbors=5), (-1, 4))
                    hidden = before[what][_overlaps(before[what], regions)]
                    kept = sum(any(_iou(h, a) >= 0.3 for a in after) for h in hidden)
                    new = sum(not any(_iou(a, b) >= 0.3 for b in before[what])
                              for a in after[_overlaps(after, regions)])
                    c = counts.setdefault((mode, what), [0, 0, 0, 0, 0])
                    for k, v in enumerate((len(before[what]), len(hidden), kept, new, len(after))):
                        c[k] += int(v)
        for (mode, what), values in sorted(counts.items()):
            rows.append((name, len(images), people_found, mode, what, *values))
    return rows


def pose_kept(estimator, n_people: int | None) -> dict[str, dict[str, float]]:
    dataset = load_dataset(f"mpii:{MPII_TEST}").with_head_boxes()
    records = dataset.records[:n_people] if n_people else dataset.records
    h, w = estimator.input_size
    original, avatar = [], []
    for record in records:
        image = dataset.load_image(record)
        box = center_scale_to_bbox(record.center, record.scale, aspect_ratio=w / h)
        first = estimator(image, box[None])[0]
        original.append(first.keypoints)
        person = Person(box=np.asarray(box, dtype=np.float64), keypoints=first.keypoints, scores=first.scores)
        masked = anonymize(image, [person], mode="avatar", kpt_thr=DEFAULT_KPT_THR)  # the avatar, no skeleton on it
        avatar.append(estimator(masked, box[None])[0].keypoints)
    truth = dataset.ground_truth()
    truth = tuple(t[:len(records)] for t in truth)
    return {name: {**pckh_table(np.stack(p), *truth), **limb_pckh(np.stack(p), *truth)}
            for name, p in (("original photos", original), ("avatar-anonymized", avatar))}


def cost(estimator, n_frames: int) -> list[tuple]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        generate_key(Path(tmp) / "k")
        key = load_key(Path(tmp) / "k")
        for codec in ("ffv1", "mp4v"):
            for recoverable in (False, True):
                run = Path(tmp) / f"{codec}-{recoverable}"
                source = open_source(str(CLIP), max_frames=n_frames)
                summary = run_inference(source, estimator, make_detector("auto", video=True), out_dir=run,
                                        options=InferOptions(anonymize="avatar", codec=codec),
                                        recovery_key=key if recoverable else None)
                sidecar = sum(p.stat().st_size for p in run.glob("*.recovery"))
                video = sum(p.stat().st_size for p in run.glob("vtest-clip.*") if p.suffix != ".recovery")
                rows.append((codec, recoverable, summary.frames, summary.fps, sidecar / summary.frames,
                             video / summary.frames))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--photos", type=int, default=40, help="MPII-subset test photos for the identity count")
    p.add_argument("--frames", type=int, default=30, help="vtest clip frames (identity and cost)")
    p.add_argument("--people", type=int, default=None, help="MPII-subset test people for PCKh (default: all)")
    args = p.parse_args(argv)
    cv2.setNumThreads(args.threads)
    estimator = PoseEstimator.from_pretrained(args.model, threads=args.threads)
    privacy = estimator.card.privacy.to_dict() if getattr(estimator, "card", None) else None
    print(f"model: {args.model}; ONNX Runtime threads {args.threads}; OpenCV threads {args.threads}")
    print(f"CPU: {cpu_model()}; load average (1, 5, 15 min) at start: {load_average()}")

    print("\n## Identity hidden (Haar cascades, scaleFactor 1.1, minNeighbors 5)\n")
    print("| images | n | people found | mode | cascade | found before | of them on a hidden region | "
          "of those, still found after | new on hidden regions after | found anywhere after |")
    print("|---|---:|---:|---|---|---:|---:|---:|---:|---:|")
    for row in identity(estimator, photo_sets(args.photos, args.frames), privacy=privacy):
        print("| " + " | ".join(str(v) for v in row) + " |")

    print("\n## Pose kept: PCKh on the MPII-subset test, from original and from avatar-anonymized photos\n")
    figures = pose_kept(estimator, args.people)
    columns = ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean@0.1", "Limbs"]
    print("| input | " + " | ".join(columns) + " |")
    print("|---" + "|---:" * len(columns) + "|")
    for name, row in figures.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.2f}" for c in columns) + " |")
    o, a = figures["original photos"], figures["avatar-anonymized"]
    print(f"\nratio avatar / original: Mean {a['Mean'] / o['Mean']:.3f}, Limbs {a['Limbs'] / o['Limbs']:.3f}")

    print("\n## Cost: dp-pose infer --anonymize avatar on the vtest clip\n")
    print("| codec | --recoverable | frames | frames/s | sidecar bytes/frame | video bytes/frame |")
    print("|---|---|---:|---:|---:|---:|")
    rows = cost(estimator, args.frames)
    for codec, rec, frames, fps, side, video in rows:
        print(f"| {codec} | {'yes' if rec else 'no'} | {frames} | {fps:.2f} | {side:.0f} | {video:.0f} |")
    for codec in ("ffv1", "mp4v"):
        plain, sealed = (r[3] for r in rows if r[0] == codec)
        print(f"{codec}: frames/s with --recoverable / without = {sealed / plain:.3f}")
    print(f"\nload average (1, 5, 15 min) at end: {load_average()}")
    return 0


if __name__ == "__main__":
    t0 = time.perf_counter()
    code = main()
    print(f"wall time {time.perf_counter() - t0:.0f} s")
    sys.exit(code)
