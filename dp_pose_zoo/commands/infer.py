"""``dp-pose infer``: run a pose model on a video, image, folder, glob or webcam.

Writes a run folder (default ``runs/infer/<source-stem>[-N]``, printed) with
the annotated video (or images), ``keypoints.json`` and ``keypoints.csv``
(layout: docs/output-format.md). Every bad input -- a missing or unreadable
file, a video with no frames, an unknown model, a corrupt ONNX, a webcam that
does not open, an output folder that cannot be written -- is checked before
anything is written and becomes one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from pathlib import Path

from ..skeleton import DEFAULT_KPT_THR

RUNS_ROOT = Path("runs") / "infer"

EPILOG = """examples:
  dp-pose infer tests/data/vtest-clip/vtest-clip.avi          # the embedded default model
  dp-pose infer video.mp4 --model OWNER/REPO --smooth --anonymize blur
  dp-pose infer photos/ --model runs/demo --kpt-thr 0.4        # a folder: annotated images
  dp-pose infer "photos/*.jpg" --boxes full                    # a glob; each photo is one person
  dp-pose infer 0 --max-frames 300                             # webcam 0 (Ctrl-C stops and keeps the outputs)
  dp-pose infer video.mp4 --detector onnx:yolox_s.onnx --det-every 3 --model model.int8.onnx
  dp-pose infer video.mp4 --anonymize avatar                   # people become posed mannequins
  dp-pose keygen ward.key && dp-pose infer video.mp4 --anonymize blur --recoverable ward.key --codec ffv1
  dp-pose recover runs/infer/video/video.mkv --key ward.key    # the original frames, with the key

--recoverable KEYFILE seals the original pixels of every change (hidden people, skeletons, boxes,
label) into <output>.recovery beside the output, with AES-256-GCM: without the key it shows nothing
but sizes. With a lossless --codec (ffv1 for video, png for images) `dp-pose recover` gives back the
decoded input exactly; with a lossy one (mp4v, jpg) the changed pixels come back exactly and the rest
is as the codec left it.

detectors: auto (hog where OpenCV has it; else motion for video, full for images), hog, motion,
onnx:PATH (YOLOX/RTMDet-style, see dp_pose_zoo.video.detection.OnnxDetector); --boxes full|boxes.json
replaces the detector (boxes.json schema: docs/output-format.md).
"""


def add_parser(subparsers) -> None:
    """Register ``infer`` on the ``dp-pose`` subparsers."""
    p = subparsers.add_parser(
        "infer", help="run a pose model on a video, images, a folder or a webcam",
        description="Find people, estimate their MPII-16 keypoints, and write an annotated video (or images), "
                    "keypoints.json and keypoints.csv into a run folder.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="a video file, an image, a folder, a quoted glob, or a webcam index (0)")
    p.add_argument("--model", default="default",
                   help="'default', OWNER/REPO[@rev], a checkpoint/export folder, or a .onnx file (checked "
                        "against the card beside it; with none, its privacy is labelled unverified) "
                        "(default: %(default)s)")
    p.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                   help="which ONNX of a named model to run (ignored for a .onnx path; default: %(default)s)")
    p.add_argument("--out", help="run folder to create (default: runs/infer/<source-stem>[-N])")
    p.add_argument("--detector", default="auto", help="auto | hog | motion | onnx:PATH (default: %(default)s)")
    p.add_argument("--boxes", help="'full' (one person fills the frame) or a boxes.json; replaces the detector")
    p.add_argument("--det-every", type=int, default=5, metavar="N",
                   help="run the detector every N frames; in between, boxes follow the keypoints (default: 5)")
    p.add_argument("--smooth", action="store_true", help="One-Euro filter on each joint (video and webcam)")
    p.add_argument("--kpt-thr", type=float, default=DEFAULT_KPT_THR, metavar="T",
                   help="hide joints scored under T (SimCC peak, as RTMPose) in the drawing (default: %(default)s)")
    p.add_argument("--anonymize", choices=("blur", "pixelate", "skeleton", "avatar"),
                   help="hide who the people are in the output video/images (avatar: a mannequin posed on "
                        "each person's keypoints over their smeared box)")
    p.add_argument("--anonymize-region", choices=("face", "body"), default="face",
                   help="what blur/pixelate hide (default: %(default)s)")
    p.add_argument("--recoverable", metavar="KEYFILE",
                   help="with --anonymize: seal the original pixels into <output>.recovery with this key "
                        "(dp-pose keygen); dp-pose recover puts them back")
    p.add_argument("--codec", choices=("mp4v", "ffv1", "jpg", "png"),
                   help="video: mp4v in .mp4 (default) or ffv1 in .mkv (lossless); images: jpg (default) or png "
                        "(lossless)")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    p.add_argument("--flip-test", action="store_true",
                   help="also run each person's crop mirrored and average the two: steadier joints, twice the "
                        "pose model's time")
    p.add_argument("--threads", type=int, metavar="N", help="ONNX Runtime threads (default: all cores)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    """Open everything (failing early), run, print the run folder and a one-line summary."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    from ..errors import SourceError
    from ..video.detection import make_detector
    from ..video.pipeline import InferOptions, run_inference
    from ..video.sources import open_source, quiet_video_backends, source_stem

    _check_args(args)
    recovery_key = _recovery_key(args)
    quiet_video_backends()
    with open_source(args.source, max_frames=args.max_frames) as source, \
            make_detector(args.boxes or args.detector, video=not source.independent_frames,
                          threads=args.threads) as detector:
        estimator = load_estimator(args.model, precision=args.precision, threads=args.threads)
        estimator.flip_test = args.flip_test
        out = Path(args.out) if args.out else unique_run_dir(RUNS_ROOT / source_stem(args.source))
        options = InferOptions(det_every=args.det_every, smooth=args.smooth, kpt_thr=args.kpt_thr,
                               anonymize=args.anonymize, anonymize_region=args.anonymize_region,
                               codec=args.codec)
        bar = _progress(source, quiet=args.quiet)
        # Warnings during the run (a skipped image, a video that broke off) are logged by the sources;
        # through tqdm's writer they print above the bar instead of tearing it.
        with logging_redirect_tqdm() if bar is not None else contextlib.nullcontext():
            try:
                summary = run_inference(source, estimator, detector, out_dir=out, options=options,
                                        on_frame=(lambda frame, people: bar.update(1)) if bar else None,
                                        settings={"model_arg": args.model, "max_frames": args.max_frames},
                                        recovery_key=recovery_key)
            finally:
                if bar is not None:
                    bar.close()
    if summary.frames == 0:
        raise SourceError(f"{args.source}: no frame could be decoded")
    print(summary.line())
    return 0


def _check_args(args) -> None:
    from ..errors import UsageError

    if args.det_every < 1:
        raise UsageError(f"--det-every must be at least 1, got {args.det_every}")
    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError(f"--max-frames must be at least 1, got {args.max_frames}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    if not math.isfinite(args.kpt_thr):
        raise UsageError(f"--kpt-thr must be a number, got {args.kpt_thr}")


def _recovery_key(args) -> bytes | None:
    """The key of ``--recoverable`` (read before anything is written), or None."""
    if args.recoverable is None:
        return None
    from ..errors import RecoveryError
    from ..video.recovery import load_key

    if not args.anonymize:
        raise RecoveryError("--recoverable needs --anonymize: there is nothing to recover otherwise")
    return load_key(args.recoverable)


def load_estimator(model: str, *, precision: str = "fp32", threads: int | None = None):
    """A PoseEstimator for any model reference, verified against its card.

    A model file with a card beside it is a checkpoint's or an export's: it is checked as its
    folder is. Only a file with no card is opened as it is; its metadata's privacy is then its
    own claim, labelled unverified in the outputs.
    """
    from ..runtime.pretrained import open_estimator
    from ..runtime.reference import resolve_reference

    return open_estimator(resolve_reference(model, precision=precision), precision=precision, threads=threads)


def unique_run_dir(base: Path) -> Path:
    """``base``, or ``base-2``, ``base-3``... : the first that does not exist yet."""
    if not base.exists():
        return base
    n = 2
    while base.with_name(f"{base.name}-{n}").exists():
        n += 1
    return base.with_name(f"{base.name}-{n}")


def _progress(source, *, quiet: bool):
    """A tqdm bar in frames with frames/s and (when the length is known) an ETA; None when quiet."""
    if quiet:
        return None
    from tqdm import tqdm

    return tqdm(total=source.frame_count, unit="frame", desc=source.name, dynamic_ncols=True, leave=False,
                file=sys.stderr)

