"""``dp-pose demo``: the Gradio webcam app (apps/dp_pose_zoo_app), on the torch-free runtime.

Needs the ``[app]`` extra; without gradio the command says how to install it
(one line, exit code 2). Loopback only unless ``--host`` says otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

LOOPBACK = ("127.0.0.1", "localhost", "::1")

EPILOG = """examples:
  dp-pose demo                                  # http://127.0.0.1:7860, this machine only
  dp-pose demo --model runs/demo                # start on another model; the dropdown lists the zoo
  dp-pose demo --host 0.0.0.0 --port 8080       # a box on a network: anyone who reaches it can open the app
  dp-pose demo --share                          # a temporary public gradio.live link

The dropdown offers the embedded default and every zoo model in the Hugging Face cache that has an
ONNX (`dp-pose zoo list`; `dp-pose zoo pull OWNER/REPO` adds one).
"""


def add_parser(subparsers) -> None:
    """Register ``demo`` on the ``dp-pose`` subparsers."""
    p = subparsers.add_parser(
        "demo", help="the Gradio webcam app: live keypoints, model switch with its privacy block, uploads",
        description="Open the Gradio app: the webcam streams in and keypoints are drawn live (with frames/s); "
                    "a dropdown picks the model from the zoo, labelled with epsilon, delta and C; a second tab "
                    "annotates an uploaded video or image and gives back the file and its JSON.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="default",
                   help="model selected at start: 'default', a zoo name, OWNER/REPO, a checkpoint/export folder "
                        "or a .onnx beside its card (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 serves the whole network (default: %(default)s, loopback)")
    p.add_argument("--port", type=_port, help="port (default: 7860, or the next free one)")
    p.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link (off)")
    p.add_argument("--threads", type=_positive, metavar="N", help="ONNX Runtime threads (default: all cores)")
    p.set_defaults(func=run)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"must be in 1-65535, got {value}")
    return value


def run(args) -> int:
    """Check the extra, then serve until Ctrl-C (model errors come before the server starts)."""
    from .._deps import require
    from ..errors import MissingExtraError

    require("gradio", "app")
    # Streamed frames and uploads show people: Gradio's copies of them and the app's outputs live in one
    # folder, removed when the app stops (unless GRADIO_TEMP_DIR says where Gradio keeps its own). Set
    # before gradio is imported: parts of it read the variable then.
    work = Path(tempfile.mkdtemp(prefix="dp-pose-demo-"))
    ours = "GRADIO_TEMP_DIR" not in os.environ
    if ours:
        os.environ["GRADIO_TEMP_DIR"] = str(work / "gradio")
    try:
        try:
            from dp_pose_zoo_app.ui import launch
        except ImportError as e:
            if (e.name or "").split(".")[0] == "gradio":
                raise MissingExtraError("gradio", "app") from None
            raise
        if args.host not in LOOPBACK or args.share:
            where = "a public gradio.live link" if args.share else args.host
            print(f"dp-pose demo: serving on {where}: anyone who reaches it can open the app and stream to it",
                  file=sys.stderr)
        launch(model=args.model, host=args.host, port=args.port, share=args.share, threads=args.threads,
               workdir=work)
    finally:
        if ours:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        shutil.rmtree(work, ignore_errors=True)
    return 0
