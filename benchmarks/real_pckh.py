"""PCKh on real people: our model (torch-free runtime) against MediaPipe BlazePose Full, same people, same boxes.

For every person of each ``--data`` set (default: the MPII-subset test split in
``../shared/data``; COCO-MINI val is the other real set):

- **ours**: ``PoseEstimator.from_pretrained(--model)`` (the ONNX runtime, no
  torch) on the photo with the person's box. The box is the record's
  ``center``/``scale`` turned back into a box (``geometry.center_scale_to_bbox``),
  so the runtime cuts exactly the crop ``dp-pose eval`` cuts with torch: the
  ``scale * 200`` box padded 1.25x and widened to the model's aspect ratio.
- **BlazePose Full**: ``mp.solutions.pose.Pose(static_image_mode=True,
  model_complexity=1)`` (default confidences) on the same padded box at 3:4,
  288x384 (``warp_crop``, black outside the photo), run by
  ``--mediapipe-python`` (a separate venv with ``mediapipe==0.10.14``; a
  benchmark-only dependency). Its 33 landmarks come back in crop pixels and
  are mapped to photo pixels through the inverse of the crop's affine map.
  3:4 is the zoo models' aspect, so for them BlazePose sees exactly the region
  ours sees; it stays 3:4 for a model of another aspect, so BlazePose's figures
  do not move with ``--model`` (they would: given the wider 1:1 region of a
  64x64 model, its 12-limb PCKh on the MPII-subset test was 62.7, not 71.0).

BlazePose to MPII-16, openly:

- the 12 limb joints map directly (landmarks 28, 26, 24, 23, 25, 27 ->
  r_ankle .. l_ankle; 16, 14, 12, 11, 13, 15 -> r_wrist .. l_wrist);
- the other four are derived exactly as the project derives them for COCO
  ground truth (``skeleton.coco_to_mpii``, fed BlazePose's nose 0, eyes 2 and 5,
  ears 7 and 8, all taken as visible): pelvis = the hips' midpoint, thorax =
  the shoulders' midpoint, upper neck = halfway from the thorax to the face
  centre (mean of nose, eyes and ears), head top = as far above the face
  centre as the upper neck is below it.

So the MPII table's Head column and Mean rest partly on derived BlazePose points
(and on COCO they are derived in the ground truth too, by the same rule); the
12-limb figures (Limbs, Limbs@0.1) involve no derived point on either side,
and their ratio ours / BlazePose is the headline. A person on whom BlazePose
finds no pose counts as wrong on every joint; the output says how many.
PCKh needs a head box: people without one (COCO people whose face keypoints
or shoulders are unlabelled) are left out for both models, and counted. The
crop follows the record's ``scale``, which the MPII subset derives from the
joints' height alone, so a lying person's crop cuts their ends off: for both
models alike, as for ``dp-pose eval``.

    python benchmarks/real_pckh.py --model default \\
        --data mpii:../shared/data/mpii-subset/annotations/mpii_test.json \\
        --data coco:../shared/data/coco-mini/annotations/person_keypoints_val2017.json \\
        --mediapipe-python /tmp/mpvenv/bin/python

Reads ``../shared/data`` (research data sets with their own terms; see its README).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from _common import cpu_model, load_average, run_mediapipe

from dp_pose_zoo.datasets import load_dataset
from dp_pose_zoo.video.draw import draw_label, draw_skeleton
from dp_pose_zoo.geometry import apply_affine, center_scale_to_bbox, crop_matrix, warp_crop
from dp_pose_zoo.metrics import LIMB_COLUMNS, PCKH_COLUMNS, limb_pckh, pckh_table
from dp_pose_zoo.runtime import PoseEstimator
from dp_pose_zoo.skeleton import NUM_JOINTS, coco_to_mpii

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MPII_TEST = f"mpii:{DATA / 'mpii-subset' / 'annotations' / 'mpii_test.json'}"

BLAZE_SIZE = (384, 288)  # BlazePose's crop (height, width): the person box padded 1.25x at 3:4
# BlazePose's 33 landmarks in COCO-17 order (nose, l/r eye, l/r ear, shoulders, elbows, wrists, hips,
# knees, ankles): skeleton.coco_to_mpii then gives MPII-16 with its stated derivations.
BLAZE_TO_COCO = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
DRAW_PEOPLE = 8  # people per data set drawn with --draw

MEDIAPIPE_SCRIPT = r"""
import json, sys
import cv2, mediapipe as mp
paths = json.loads(open(sys.argv[1]).read())
out = []
with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
    for path in paths:
        image = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        h, w = image.shape[:2]
        result = pose.process(image).pose_landmarks
        out.append(None if result is None else [[p.x * w, p.y * h] for p in result.landmark])
print(json.dumps({"version": mp.__version__, "landmarks": out}))
"""


def blaze_to_mpii(landmarks: np.ndarray) -> np.ndarray:
    """BlazePose's ``(33, 2)`` landmarks to MPII-16 ``(16, 2)``: limbs directly, the rest derived (module doc)."""
    coco = np.ones((17, 3))
    coco[:, :2] = np.asarray(landmarks, dtype=np.float64)[list(BLAZE_TO_COCO)]
    joints, _, _ = coco_to_mpii(coco)
    return joints


def predict_ours(estimator: PoseEstimator, dataset) -> np.ndarray:
    """``(N, 16, 2)`` photo pixels: the runtime on each record's own crop."""
    h, w = estimator.input_size
    pred = []
    for record in dataset.records:
        box = center_scale_to_bbox(record.center, record.scale, aspect_ratio=w / h)
        pred.append(estimator(dataset.load_image(record), box[None])[0].keypoints)
    return np.stack(pred)


def blaze_crops(dataset, folder: Path) -> tuple[list[str], np.ndarray]:
    """PNG crops of each person's padded region (lossless, what BlazePose sees) and the crop-to-photo maps."""
    paths, inverses = [], []
    for i, record in enumerate(dataset.records):
        matrix = crop_matrix(record.center, record.scale, BLAZE_SIZE)
        path = folder / f"{i:05d}.png"
        cv2.imwrite(str(path), warp_crop(dataset.load_image(record), matrix, BLAZE_SIZE))
        paths.append(str(path))
        inverses.append(crop_matrix(record.center, record.scale, BLAZE_SIZE, inverse=True))
    return paths, np.stack(inverses)


def predict_blaze(python: str | None, dataset) -> tuple[np.ndarray | None, int, str]:
    """``(N, 16, 2)`` photo pixels (nan where no pose was found), the number found, and the run's status."""
    with tempfile.TemporaryDirectory() as tmp:
        paths, inverses = blaze_crops(dataset, Path(tmp))
        listing = Path(tmp) / "crops.json"
        listing.write_text(json.dumps(paths))
        result, status = run_mediapipe(python, MEDIAPIPE_SCRIPT, str(listing))
    if result is None:
        return None, 0, status
    pred = np.full((len(paths), NUM_JOINTS, 2), np.nan)
    found = 0
    for i, (landmarks, inverse) in enumerate(zip(result["landmarks"], inverses)):
        if landmarks is not None:
            pred[i] = apply_affine(blaze_to_mpii(np.asarray(landmarks)), inverse)
            found += 1
    return pred, found, f"MediaPipe {result['version']}"


def figures(pred: np.ndarray, truth) -> dict[str, float]:
    return {**pckh_table(pred, *truth), **limb_pckh(pred, *truth)}


def markdown_table(rows: dict[str, dict[str, float]]) -> str:
    columns = PCKH_COLUMNS + LIMB_COLUMNS
    lines = [f"| model | {' | '.join(columns)} |", "|---" + "|---:" * len(columns) + "|"]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[c]:.2f}" for c in columns) + " |")
    return "\n".join(lines)


def draw_comparison(folder: Path, tag: str, dataset, preds: dict[str, np.ndarray]) -> None:
    """For the first people: ground truth and each model's joints side by side on BlazePose's crop."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, record in enumerate(dataset.records[:DRAW_PEOPLE]):
        matrix = crop_matrix(record.center, record.scale, BLAZE_SIZE)
        crop = warp_crop(dataset.load_image(record), matrix, BLAZE_SIZE)
        panels = []
        for name, joints in (("ground truth", record.joints), *((k, v[i]) for k, v in preds.items())):
            shown = record.visible if name == "ground truth" else np.isfinite(joints).all(axis=1).astype(float)
            panel = draw_skeleton(crop.copy(), apply_affine(joints, matrix), shown, kpt_thr=0.5)
            panels.append(draw_label(panel, name))
        cv2.imwrite(str(folder / f"{tag}-{i:02d}.png"), np.hstack(panels))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default",
                   help="a name, folder or Hub id PoseEstimator.from_pretrained takes (default: %(default)s)")
    p.add_argument("--data", action="append", help=f"a data spec, repeatable (default: {MPII_TEST})")
    p.add_argument("--mediapipe-python", help="python of a venv with mediapipe==0.10.14 (without it: ours only)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: its own)")
    p.add_argument("--draw", type=Path, metavar="DIR",
                   help=f"write PNGs of the first {DRAW_PEOPLE} people per data set: ground truth and both models")
    args = p.parse_args(argv)

    load_before = load_average()
    estimator = PoseEstimator.from_pretrained(args.model, threads=args.threads)
    h, w = estimator.input_size
    print(f"model: {args.model} ({estimator.path}), input {h}x{w}, ONNX Runtime fp32, threads "
          f"{args.threads or 'ORT default'}")
    print(f"CPU: {cpu_model()}; load average (1, 5, 15 min) at start: {load_before}")
    for spec in args.data or [MPII_TEST]:
        loaded = load_dataset(spec)
        dataset = loaded.with_head_boxes()
        truth = dataset.ground_truth()
        ours_pred = predict_ours(estimator, dataset)
        rows = {f"ours ({args.model})": figures(ours_pred, truth)}
        blaze, found, status = predict_blaze(args.mediapipe_python, dataset)
        print(f"\n## {spec}\n")
        print(f"{len(dataset)} people scored ({len(loaded) - len(dataset)} of {len(loaded)} left out: no head box)")
        preds = {}
        if blaze is None:
            print(f"BlazePose Full: {status}")
        else:
            rows["BlazePose Full"] = figures(blaze, truth)
            preds["BlazePose Full"] = blaze
            print(f"BlazePose Full ({status}, model_complexity=1) found a pose on {found} of {len(dataset)} people; "
                  f"the other {len(dataset) - found} count as wrong on every joint")
            print("its Head and Mean rest on a derived head top and upper neck (see the docstring); "
                  "Limbs = the 12 limb joints, none derived")
        print()
        print(markdown_table(rows))
        if blaze is not None:
            ours, theirs = rows[f"ours ({args.model})"], rows["BlazePose Full"]
            ratio = ours["Limbs"] / theirs["Limbs"] if theirs["Limbs"] > 0 else float("inf")
            ratio_01 = ours["Limbs@0.1"] / theirs["Limbs@0.1"] if theirs["Limbs@0.1"] > 0 else float("inf")
            print(f"\nratio ours / BlazePose Full, 12 limb joints: PCKh@0.5 {ratio:.3f} "
                  f"({ours['Limbs']:.2f} / {theirs['Limbs']:.2f}); PCKh@0.1 {ratio_01:.3f}")
        if args.draw:
            draw_comparison(args.draw, Path(spec.partition(":")[2]).stem, dataset, {"ours": ours_pred, **preds})
    print(f"\nload average (1, 5, 15 min) at end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
