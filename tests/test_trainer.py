"""End-to-end training on SynthPose (small input size so it runs on 2 CPU cores)."""

import hashlib
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from dp_pose_zoo.card import card_from_text
from dp_pose_zoo.datasets import load_dataset
from dp_pose_zoo.errors import CheckpointError
from dp_pose_zoo.training.checkpoint import load_model
from dp_pose_zoo.training.config import Recipe
from dp_pose_zoo.training.evaluate import evaluate
from dp_pose_zoo.training.model import TinyViTSimCC
from dp_pose_zoo.training.trainer import train

pytestmark = pytest.mark.slow


def tiny_recipe(**overrides) -> Recipe:
    base = dict(name="tiny", train_data="synthpose:private-train:48", val_data=None, strategy="scratch",
                epochs=2, batch_size=16, lr=2e-3, warmup_steps=2, seed=3,
                model={"input_size": [64, 64], "norm": "group-norm"})
    base.update(overrides)
    return Recipe.from_dict(base)


def weights(path):
    return load_file(str(path / "model.safetensors"))


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_same_seed_same_weights(tmp_path):
    train(tiny_recipe(), tmp_path / "a", progress_bar=False)
    train(tiny_recipe(), tmp_path / "b", progress_bar=False)
    assert_same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))
    train(tiny_recipe(seed=4), tmp_path / "c", progress_bar=False)
    assert not torch.equal(weights(tmp_path / "a")["head.cls_x.weight"], weights(tmp_path / "c")["head.cls_x.weight"])


def test_resume_continues_to_the_same_result(tmp_path):
    train(tiny_recipe(epochs=3), tmp_path / "straight", progress_bar=False)
    # Stop after one epoch (a recipe with epochs=1 writes the same first epoch), then resume to three.
    train(tiny_recipe(epochs=3), tmp_path / "resumed", progress_bar=False, stop_after_epochs=1)
    assert json.loads((tmp_path / "resumed" / "config.json").read_text())["progress"]["epoch"] == 1
    train(None, tmp_path / "resumed", resume=True, progress_bar=False)
    config = json.loads((tmp_path / "resumed" / "config.json").read_text())
    assert config["progress"] == {"epoch": 3, "step": 9, "samples": 144}
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "resumed"))


def test_refuses_to_overwrite_a_checkpoint(tmp_path):
    train(tiny_recipe(epochs=1), tmp_path / "a", progress_bar=False)
    with pytest.raises(CheckpointError, match="already holds a checkpoint"):
        train(tiny_recipe(epochs=1), tmp_path / "a", progress_bar=False)


def test_training_raises_pckh_well_above_an_untrained_model(tmp_path):
    # Small on purpose (64x64 crops, 400 people, 5 epochs) so CI can afford it; the demo recipe
    # shows the same model going further with more data and a larger input.
    recipe = Recipe.from_dict(dict(
        name="learns", train_data="synthpose:private-train:400", val_data="synthpose:private-val:100",
        strategy="scratch", epochs=5, batch_size=16, lr=3e-3, warmup_steps=10, seed=0,
        augment={"rotation": 0.0, "scale": 0.1}, model={"input_size": [64, 64], "norm": "group-norm"}))
    val = load_dataset("synthpose:private-val:100")
    torch.manual_seed(recipe.seed)
    untrained = evaluate(TinyViTSimCC(recipe.model), val)["Mean"]
    out = train(recipe, tmp_path / "learns", progress_bar=False)
    model, config = load_model(out)
    trained = evaluate(model, val)["Mean"]
    # The trainer's own validation agrees with a fresh evaluation of the saved weights.
    assert config["metrics"]["val_pckh"]["Mean"] == pytest.approx(trained)
    # Measured on this recipe (2026-11-22): untrained 1.92, trained 16.35 (epochs: 12.3, 13.8, 17.5,
    # 16.9, 16.4); the margins leave room for float differences between machines.
    assert untrained < 5.0
    assert trained > untrained + 8.0, (untrained, trained)
    card = (out / "README.md").read_text()
    assert "pipeline_tag: keypoint-detection" in card and "method: non-private" in card
    assert config["weights_sha256"] in card


def _flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))


INIT_DAMAGE = {
    "weights changed": lambda ckpt: _flip_last_byte(ckpt / "model.safetensors"),  # still a valid file
    "corrupt weights whose hash config.json records": lambda ckpt: (
        (ckpt / "model.safetensors").write_bytes(b"garbage"),
        (ckpt / "config.json").write_text(json.dumps({**json.loads((ckpt / "config.json").read_text()),
                                                      "weights_sha256": hashlib.sha256(b"garbage").hexdigest()}))),
    "no config.json": lambda ckpt: (ckpt / "config.json").unlink(),
}


@pytest.mark.parametrize("damage", list(INIT_DAMAGE))
def test_init_weights_are_checked_against_their_hash_before_use(tiny_checkpoint, tmp_path, damage):
    init = shutil.copytree(tiny_checkpoint, tmp_path / "init")
    INIT_DAMAGE[damage](init)
    with pytest.raises(CheckpointError) as err:
        train(tiny_recipe(init=str(init), epochs=1), tmp_path / "run", progress_bar=False)
    assert "\n" not in str(err.value) and not (tmp_path / "run").exists()


def test_a_run_records_its_initial_model_and_keeps_the_record_when_resumed_without_it(tiny_checkpoint, tmp_path):
    init = shutil.copytree(tiny_checkpoint, tmp_path / "init")
    init_config = json.loads((init / "config.json").read_text())
    out = train(tiny_recipe(init=str(init), train_data="synthpose:private-train:24", batch_size=8, epochs=2),
                tmp_path / "run", progress_bar=False, stop_after_epochs=1)
    record = json.loads((out / "config.json").read_text())["init"]
    assert record == {"path": str(init), "weights_sha256": init_config["weights_sha256"],
                      "train_data": init_config["recipe"]["train_data"]}
    card = (out / "README.md").read_text()
    assert f"Initialised from `{init}`, trained on:" in card
    parsed = card_from_text(card)  # its data, apart from the init's
    assert parsed.train_data == "synthpose:private-train:24" and parsed.base_model_data == "synthpose:private-train:16"
    shutil.rmtree(init)  # another machine: the initial model is not there, the run's own record is
    train(None, out, resume=True, progress_bar=False)
    config = json.loads((out / "config.json").read_text())
    assert config["progress"]["epoch"] == 2 and config["init"] == record
    assert f"Initialised from `{init}`, trained on:" in (out / "README.md").read_text()


def test_init_from_an_intact_checkpoint_starts_from_its_weights(tiny_checkpoint, tmp_path):
    out = train(tiny_recipe(init=str(tiny_checkpoint), epochs=1, lr=1e-9, warmup_steps=1), tmp_path / "run",
                progress_bar=False)
    start, after = weights(tiny_checkpoint), weights(out)
    assert max((start[k] - after[k]).abs().max().item() for k in start) < 1e-4
