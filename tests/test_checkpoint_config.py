"""A checkpoint's config.json: one check for every reader (eval, resume, card), and weights checked before use."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from dp_pose_zoo.checkpoint_config import ModelConfig, check_config
from dp_pose_zoo.cli import main
from dp_pose_zoo.errors import CheckpointError, RecipeError

# config.json sections damaged the ways a hand edit or a bad merge damages them.
DAMAGE = {
    "not an object": lambda c: ["a", "list"],
    "model a string": lambda c: {**c, "model": "tiny"},
    "input_size text": lambda c: {**c, "model": {**c["model"], "input_size": "big"}},
    "input_size fractional": lambda c: {**c, "model": {**c["model"], "input_size": [64.5, 64]}},
    "split_ratio text": lambda c: {**c, "model": {**c["model"], "split_ratio": "2"}},
    "unknown model key": lambda c: {**c, "model": {**c["model"], "depth": 3}},
    "progress step text": lambda c: {**c, "progress": {**c["progress"], "step": "2"}},
    "metrics a list": lambda c: {**c, "metrics": []},
    "metrics history a dict": lambda c: {**c, "metrics": {"history": {}}},
    "privacy a list": lambda c: {**c, "privacy": []},
    "privacy epsilon text": lambda c: {**c, "privacy": {"epsilon": "low"}},
    "recipe a number": lambda c: {**c, "recipe": 3},
    "weights_sha256 a number": lambda c: {**c, "weights_sha256": 5},
    "no model": lambda c: {k: v for k, v in c.items() if k != "model"},
}


@pytest.fixture()
def copied(tiny_checkpoint, tmp_path):
    return shutil.copytree(tiny_checkpoint, tmp_path / "ckpt")


def _damage(ckpt, how: str) -> None:
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps(DAMAGE[how](config)))


def _one_error_line(capsys, command: str) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dp-pose {command}: error: "), captured.err
    return lines[0]


@pytest.mark.parametrize("how", list(DAMAGE))
def test_eval_and_card_check_refuse_a_config_of_wrong_types_in_one_line(copied, capsys, how):
    _damage(copied, how)
    assert main(["eval", str(copied), "--data", "synthpose:private-test:4"]) == 2
    assert "config.json" in _one_error_line(capsys, "eval")
    if how != "no model":  # a release may ship a config.json without the model section; card reads no model
        assert main(["card", str(copied), "--check"]) == 2
        assert "config.json" in _one_error_line(capsys, "card")


@pytest.mark.parametrize("how", ["progress step text", "metrics a list", "privacy a list", "recipe a number"])
def test_resume_refuses_a_config_of_wrong_types_in_one_line(copied, capsys, how):
    _damage(copied, how)
    assert main(["train", "--resume", str(copied), "-q"]) == 2
    assert "config.json" in _one_error_line(capsys, "train")


def test_resume_refuses_a_recipe_of_wrong_types_in_one_line(copied, capsys):
    config = json.loads((copied / "config.json").read_text())
    config["recipe"]["epochs"] = "3"
    (copied / "config.json").write_text(json.dumps(config))
    assert main(["train", "--resume", str(copied), "-q"]) == 2
    assert "epochs" in _one_error_line(capsys, "train")


def test_corrupt_weights_are_one_line_even_when_config_json_records_their_hash(copied, capsys):
    (copied / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    config = json.loads((copied / "config.json").read_text())
    config["weights_sha256"] = hashlib.sha256((copied / "model.safetensors").read_bytes()).hexdigest()
    (copied / "config.json").write_text(json.dumps(config))
    assert main(["eval", str(copied), "--data", "synthpose:private-test:4"]) == 2
    assert "not a readable safetensors file" in _one_error_line(capsys, "eval")


def test_check_config_keeps_a_good_config_and_names_every_problem():
    good = {"format_version": 1, "model": ModelConfig().to_dict(), "recipe": {"method": "dp-sgd"},
            "progress": {"epoch": 1, "step": 5, "samples": 80}, "metrics": {"history": []}, "privacy": None,
            "weights_sha256": "ab" * 32}
    assert check_config(good, "c.json") is good
    with pytest.raises(CheckpointError, match=r"c.json is malformed: progress.step .*; privacy must be"):
        check_config({**good, "progress": {"epoch": 1, "step": -1, "samples": 0}, "privacy": 3}, "c.json")
    with pytest.raises(CheckpointError, match="weights_sha256 is missing"):
        check_config({k: v for k, v in good.items() if k != "weights_sha256"}, "c.json", require=("weights_sha256",))


@pytest.mark.parametrize("field,value", [("input_size", (64, "64")), ("input_size", (64.0, 64)), ("input_size", 64),
                                         ("split_ratio", float("nan")), ("num_joints", 17), ("upsample", 0),
                                         ("backbone", None)])
def test_model_config_refuses_wrong_types(field, value):
    with pytest.raises(RecipeError, match=field):
        ModelConfig(**{field: value})
