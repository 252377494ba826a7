"""``dp-pose eval MODEL``: an ONNX model on the torch-free runtime agrees with its checkpoint on torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dp_pose_zoo.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from _blocked_imports import TRAINING_STACK, blocking_prelude  # noqa: E402
from _infer_fixtures import tiny_export, tiny_onnx  # noqa: E402,F401

SPEC = "synthpose:private-test:40"


@pytest.fixture(scope="module")
def export_folder(tiny_export):
    return tiny_export


def _eval_json(capsys, model, spec=SPEC) -> dict:
    assert main(["eval", str(model), "--data", spec, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_onnx_and_torch_agree_within_a_tenth_of_a_pckh_point(capsys, tiny_checkpoint, export_folder):
    on_torch = _eval_json(capsys, tiny_checkpoint)
    on_onnx = _eval_json(capsys, export_folder)
    assert (on_torch["runtime"], on_onnx["runtime"]) == ("torch", "onnx")
    assert on_torch["people"] == on_onnx["people"] == 40
    for key, value in on_torch["pckh"].items():
        assert on_onnx["pckh"][key] == pytest.approx(value, abs=0.1), key
    # the model file itself, checked against the card beside it, is the same model
    assert _eval_json(capsys, export_folder / "model.onnx")["pckh"] == on_onnx["pckh"]


def test_onnx_predictions_are_the_torch_predictions(tiny_checkpoint, export_folder):
    """Same crops, same decoding: keypoints within the export's parity bar, person by person."""
    from dp_pose_zoo.datasets import load_dataset
    from dp_pose_zoo.runtime import OnnxModel
    from dp_pose_zoo.runtime.evaluate import predict_onnx
    from dp_pose_zoo.training.checkpoint import load_model
    from dp_pose_zoo.training.evaluate import predict

    dataset = load_dataset("synthpose:private-test:12")
    torch_kpts, torch_scores = predict(load_model(tiny_checkpoint)[0], dataset, batch_size=5)
    onnx_kpts, onnx_scores = predict_onnx(OnnxModel(export_folder / "model.onnx"), dataset, batch_size=5)
    assert onnx_kpts.shape == torch_kpts.shape == (12, 16, 2)
    assert np.abs(onnx_kpts - torch_kpts).max() < 0.5
    assert np.abs(onnx_scores - torch_scores).max() < 1e-3


def test_flip_test_on_onnx_is_flip_test_on_torch_and_the_cli_says_it_ran(capsys, tiny_checkpoint, export_folder):
    from dp_pose_zoo.datasets import load_dataset
    from dp_pose_zoo.runtime import OnnxModel
    from dp_pose_zoo.runtime.evaluate import predict_onnx
    from dp_pose_zoo.training.checkpoint import load_model
    from dp_pose_zoo.training.evaluate import predict

    dataset = load_dataset("synthpose:private-test:12")
    model = load_model(tiny_checkpoint)[0]
    torch_kpts, _ = predict(model, dataset, batch_size=5, flip_test=True)
    onnx_kpts, _ = predict_onnx(OnnxModel(export_folder / "model.onnx"), dataset, batch_size=5, flip_test=True)
    assert np.abs(onnx_kpts - torch_kpts).max() < 0.5
    plain, _ = predict(model, dataset, batch_size=5)
    assert np.abs(plain - torch_kpts).max() > 0.5  # the mirrored crops changed some joints
    assert main(["eval", str(export_folder), "--data", SPEC, "--json", "--flip-test"]) == 0
    flipped = json.loads(capsys.readouterr().out)
    assert flipped["flip_test"] is True and _eval_json(capsys, export_folder)["flip_test"] is False


def test_int8_precision_of_a_folder_without_one_says_how_to_make_it(capsys, export_folder):
    assert main(["eval", str(export_folder), "--precision", "int8", "--data", "synthpose:private-test:4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no int8 ONNX model" in err and "--int8" in err


def test_eval_of_an_onnx_model_imports_no_torch(capsys, export_folder):
    expected = _eval_json(capsys, export_folder, "synthpose:private-test:8")
    code = blocking_prelude(TRAINING_STACK + ("gradio",)) + (
        "import contextlib, io, json, sys\n"
        "from dp_pose_zoo.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    status = main(['eval', sys.argv[1], '--data', 'synthpose:private-test:8', '--json'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED)\n"
        "print(json.dumps({'status': status, 'heavy': heavy, 'result': json.loads(out.getvalue())}))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(export_folder)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    assert child["status"] == 0 and child["heavy"] == []
    assert child["result"]["pckh"] == expected["pckh"] and child["result"]["runtime"] == "onnx"
