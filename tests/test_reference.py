"""One model reference for every command (runtime/reference.py): what it names, and what each command says it lacks."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from dp_pose_zoo.card import load_card
from dp_pose_zoo.cli import main
from dp_pose_zoo.errors import CheckpointError, ModelNotFoundError, UnknownModelError
from dp_pose_zoo.runtime.reference import resolve_reference
from dp_pose_zoo.zoo import default_dir

sys.path.insert(0, str(Path(__file__).parent))
from _infer_fixtures import tiny_export, tiny_onnx  # noqa: E402,F401


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"dp-pose {command}: error: "), err
    return err[0]


def test_each_kind_of_reference_names_its_folder(tiny_checkpoint, tiny_export, tmp_path):
    default = resolve_reference("default")
    assert default.folder == default_dir() and default.name == "default" and default.source == "the embedded default"
    assert default.has_onnx and not default.has_weights

    ckpt = resolve_reference(str(tiny_checkpoint))
    assert ckpt.has_weights and ckpt.checkpoint(command="audit") == tiny_checkpoint and ckpt.name == "tiny"
    weights = resolve_reference(str(tiny_checkpoint / "model.safetensors"))  # the weights stand for their checkpoint
    assert weights.folder == tiny_checkpoint and weights.has_weights

    model_file = resolve_reference(str(tiny_export / "model.onnx"))
    assert model_file.file == tiny_export / "model.onnx" and model_file.verified and not model_file.has_weights
    assert model_file.onnx()[0] == tiny_export / "model.onnx"
    bare = tmp_path / "bare.onnx"
    shutil.copyfile(tiny_export / "model.onnx", bare)
    assert not resolve_reference(str(bare)).verified  # no card beside it: its claim is its own

    onnx_dir = tmp_path / "tiny" / "onnx"  # an export folder is named after its checkpoint
    shutil.copytree(tiny_export, onnx_dir)
    assert resolve_reference(str(onnx_dir)).name == "tiny"


def test_what_is_not_there_is_named_in_one_sentence(tmp_path):
    with pytest.raises(ModelNotFoundError, match="checkpoint directory not found") as info:
        resolve_reference(str(tmp_path / "nowhere"))
    assert isinstance(info.value, UnknownModelError) and isinstance(info.value, FileNotFoundError)
    with pytest.raises(ModelNotFoundError, match="ONNX model not found"):
        resolve_reference(str(tmp_path / "missing.onnx"))
    with pytest.raises(UnknownModelError, match="is not 'default'"):
        resolve_reference("not a model")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UnknownModelError, match="not a model file"):
        resolve_reference(str(tmp_path / "notes.txt"))
    with pytest.raises(UnknownModelError, match="precision"):
        resolve_reference("default", precision="fp16")


def test_an_onnx_only_model_cannot_be_re_exported(capsys, tmp_path):
    assert main(["export", "default", "--out", str(tmp_path / "x")]) == 2
    line = _one_error_line(capsys, "export")
    assert "export to ONNX needs a checkpoint with weights" in line
    assert "the embedded default is an ONNX-only model" in line and "not fine-tuned or re-exported" in line
    assert not (tmp_path / "x").exists()


def test_a_folder_with_no_model_is_not_a_checkpoint(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    assert main(["eval", str(tmp_path / "empty"), "--data", "synthpose:private-test:4"]) == 2
    assert "is not a checkpoint directory (no config.json or model.safetensors)" in _one_error_line(capsys, "eval")
    with pytest.raises(CheckpointError, match="has no fp32 ONNX model"):
        resolve_reference(str(tmp_path / "empty")).onnx()


def test_card_check_takes_the_embedded_default(capsys):
    assert main(["card", "default", "--check"]) == 0
    out = capsys.readouterr().out
    card = load_card(default_dir())
    assert out.startswith(f"ok: {card.name} ({card.privacy.method}, epsilon ") and "1 files hashed" in out
    shown = float(out.split("epsilon ", 1)[1].split(",", 1)[0])  # six significant digits, rounded UP
    assert card.privacy.epsilon <= shown <= card.privacy.epsilon * (1 + 1e-5)


def test_json_safe_is_the_one_spelling_of_non_finite_numbers():
    import numpy as np

    from dp_pose_zoo.runtime.metadata import json_safe

    assert json_safe({"e": float("inf"), "m": [float("-inf"), np.float32("nan")], "p": Path("a/b")}) == \
        {"e": "inf", "m": ["-inf", "nan"], "p": "a/b"}
    assert json_safe(np.array([1.0, np.inf])) == [1.0, "inf"] and json_safe(0.5) == 0.5
