"""``dp-pose keygen`` and ``dp-pose recover``: the key to anonymized outputs, and the way back to the originals.

``infer --anonymize MODE --recoverable KEYFILE`` seals the original pixels of
every change it made into a sidecar (:mod:`dp_pose_zoo.video.recovery`); ``recover``
opens it with the key on a trusted machine and writes the original frames.
A wrong key, an edited or truncated sidecar, another run's sidecar or frames
out of order are refused in one line (exit 2) and nothing is written.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EPILOG_KEYGEN = """examples:
  dp-pose keygen ~/keys/ward3.key                 # 32 random bytes, mode 0600; prints the key's id
  dp-pose infer clip.mp4 --anonymize avatar --recoverable ~/keys/ward3.key --codec ffv1

Keep the key off the machine that shares the outputs: whoever holds it can see everyone the
anonymized outputs hide. A lost key cannot be recovered, and an existing file is never overwritten.
"""

EPILOG_RECOVER = """examples:
  dp-pose recover runs/infer/clip/clip.mkv --key ~/keys/ward3.key            # -> runs/infer/clip/recovered/
  dp-pose recover runs/infer/photos --key ~/keys/ward3.key --out originals    # images: the run folder

Writes the original frames: a video as <stem>.mkv (FFV1, lossless), images as PNG. Every pixel
the output changed (hidden people, skeletons, boxes, labels) comes back from the sidecar. With a
lossless output (--codec ffv1 or png) the result equals the decoded input frame for frame; with a
lossy one (mp4v, jpg) the changed pixels come back exactly and the rest is as the codec left it.
"""


def add_parsers(subparsers) -> None:
    """Register ``keygen`` and ``recover`` on the ``dp-pose`` subparsers."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser("keygen", help="write a new key for recoverable anonymization",
                              description="Write a new random AES-256 key (mode 0600) for "
                                          "`dp-pose infer --recoverable`; refuses to overwrite any file.",
                              epilog=EPILOG_KEYGEN, formatter_class=fmt)
    p.add_argument("keyfile", metavar="KEYFILE", help="the file to create (must not exist)")
    p.set_defaults(func=run_keygen)

    p = subparsers.add_parser("recover", help="write back the original frames of a recoverable anonymized output",
                              description="Open an output's .recovery sidecar with its key and write the "
                                          "original frames.", epilog=EPILOG_RECOVER, formatter_class=fmt)
    p.add_argument("output", metavar="OUTPUT", help="the anonymized video, or the run folder of anonymized images")
    p.add_argument("--key", required=True, metavar="KEYFILE", help="the key given to infer --recoverable")
    p.add_argument("--out", metavar="DIR", help="folder to create (default: recovered/ beside the output)")
    p.set_defaults(func=run_recover)


def run_keygen(args) -> int:
    from ..video.recovery import generate_key

    print(f"key {generate_key(args.keyfile)} written to {args.keyfile} (mode 0600); keep it secret")
    return 0


def run_recover(args) -> int:
    from ..video.recovery import load_key

    key = load_key(args.key)
    frames, out = recover_output(args.output, key, out_dir=args.out)
    print(f"{frames} frames recovered -> {out}")
    return 0


def _locate(output: Path) -> tuple[Path, Path | None, Path]:
    """``(sidecar, video or None for images, run folder)`` of an OUTPUT argument."""
    from ..errors import RecoveryError
    from ..video.recovery import IMAGES_OUTPUT, SIDECAR_SUFFIX, sidecar_path

    if output.is_file():
        return sidecar_path(output), output, output.parent
    if output.is_dir():
        sidecars = sorted(output.glob(f"*{SIDECAR_SUFFIX}"))
        if len(sidecars) != 1:
            raise RecoveryError(f"{output} holds {len(sidecars)} recovery sidecars; expected one "
                                "(was it made with --recoverable?)")
        sidecar = sidecars[0]
        video = sidecar.with_name(sidecar.name[:-len(SIDECAR_SUFFIX)])
        return sidecar, (None if video.name == IMAGES_OUTPUT else video), output
    raise RecoveryError(f"{output} not found")


def _check_run(reader, run_dir: Path) -> None:
    """The run's keypoints.json, when present, must name the sidecar's output id."""
    from ..errors import RecoveryError

    meta = run_dir / "keypoints.json"
    if not meta.is_file():
        return
    try:
        recorded = (json.loads(meta.read_text(encoding="utf-8")).get("recovery") or {}).get("output_id")
    except (OSError, ValueError, AttributeError):
        return  # the sidecar's own checks still apply
    if recorded != reader.output_id:
        raise RecoveryError(f"{reader.path} belongs to another run than {meta} (output id {reader.output_id}, "
                            f"expected {recorded})")


def recover_output(output, key: bytes, *, out_dir=None) -> tuple[int, Path]:
    """Write the original frames of ``output`` into ``out_dir`` (staged; absent on any error)."""
    import cv2

    from ..errors import RecoveryError
    from ..io import atomic_dir
    from ..video.pipeline import prepare_run_dir
    from ..video.recovery import SidecarReader
    from ..video.sinks import ImageSink, VideoSink
    from ..video.sources import quiet_video_backends

    sidecar, video, run_dir = _locate(Path(output))
    reader = SidecarReader(sidecar, key)
    _check_run(reader, run_dir)
    out = prepare_run_dir(Path(out_dir) if out_dir else run_dir / "recovered")
    quiet_video_backends()
    with atomic_dir(out) as staging:
        count = 0
        if video is None:
            with ImageSink(staging, ext=".png") as sink:
                while not reader.at_end(count):
                    sealed = reader.next_frame(count)
                    written = cv2.imread(str(run_dir / sealed.name), cv2.IMREAD_COLOR)
                    if written is None:
                        raise RecoveryError(f"{run_dir / sealed.name} is missing or unreadable")
                    sink.write(sealed.restore(written), Path(sealed.name).stem)
                    count += 1
        else:
            capture = cv2.VideoCapture(str(video))
            if not capture.isOpened():
                raise RecoveryError(f"cannot open the video {video}")
            try:
                with VideoSink(staging / f"{video.stem}.mkv", fps=capture.get(cv2.CAP_PROP_FPS) or 10.0,
                               fourcc="FFV1") as sink:
                    while True:
                        ok, written = capture.read()
                        if not ok:
                            break
                        sink.write(reader.next_frame(count).restore(written))
                        count += 1
                    reader.finish(count)
                    if count == 0:
                        raise RecoveryError(f"no frame of {video} could be decoded")
            finally:
                capture.release()
    return count, out
