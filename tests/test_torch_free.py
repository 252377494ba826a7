"""The runtime works where torch is not installed: a subprocess in which importing it fails.

An exported model and a real photo go in; the child process loads the ONNX
with its card metadata, runs ``PoseEstimator`` and decodes, while a meta-path
finder makes ``import torch`` (and timm, opacus, gradio, onnx) raise, as on an
edge box with only the base install (huggingface_hub's check_imports idea).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _blocked_imports import TRAINING_STACK, blocking_prelude  # noqa: E402

PHOTO = Path(__file__).parent / "data" / "coco-sample" / "000000000785.jpg"
PRELUDE = blocking_prelude(TRAINING_STACK + ("gradio",))  # the runtime needs no app extra either

CHILD = textwrap.dedent("""
    import json, sys
    import cv2
    import numpy as np

    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the blocker failed: torch imported")

    from dp_pose_zoo.runtime import PoseEstimator

    estimator = PoseEstimator(sys.argv[1], threads=1)
    image = cv2.imread(sys.argv[2])
    people = estimator(image)
    boxed = estimator(image, np.array([[40.0, 30.0, 380.0, 420.0]]))
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print(json.dumps({"heavy": heavy, "people": len(people) + len(boxed),
                      "shape": list(people[0].keypoints.shape),
                      "finite": bool(np.isfinite(people[0].keypoints).all()),
                      "epsilon": str(estimator.metadata["privacy"]["epsilon"]),
                      "input_size": list(estimator.metadata["input_size"])}))
""")


def test_runtime_runs_without_torch(tiny_checkpoint, tmp_path):
    from dp_pose_zoo.export.onnx_export import export_onnx, model_metadata
    from dp_pose_zoo.training.checkpoint import load_model

    model, config = load_model(tiny_checkpoint)
    meta = model_metadata(config, (tiny_checkpoint / "README.md").read_text(), precision="fp32")
    onnx_path = export_onnx(model, tmp_path / "model.onnx", metadata=meta)

    code = PRELUDE + CHILD
    proc = subprocess.run([sys.executable, "-c", code, str(onnx_path), str(PHOTO)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    assert result["people"] == 2 and result["shape"] == [16, 2] and result["finite"]
    assert result["epsilon"] == "inf" and result["input_size"] == [64, 64]


def test_the_blocker_really_blocks(tmp_path):
    """Guard against a vacuous pass: with the prelude, ``import torch`` must fail in the child."""
    code = PRELUDE + "import torch\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "blocked: torch-free test" in proc.stderr
