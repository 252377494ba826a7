import json
import os

import pytest
import torch

from dp_pose_zoo.card import parse_card
from dp_pose_zoo.errors import CheckpointError
from dp_pose_zoo.training.checkpoint import load_model, load_training_state, save_checkpoint
from dp_pose_zoo.training.model import TinyViTSimCC


@pytest.fixture()
def saved(tmp_path, small_model_config):
    torch.manual_seed(1)
    model = TinyViTSimCC(small_model_config)
    out = tmp_path / "ckpt"
    save_checkpoint(out, model, recipe={"name": "t"}, progress={"epoch": 1, "step": 5, "samples": 80},
                    training_state={"step": torch.tensor(5)},
                    card=lambda sha: f"---\nprivacy:\n  epsilon: .inf\n  method: non-private\nweights_sha256: {sha}\n---\n")
    return model, out


def test_round_trip_rebuilds_the_same_model(saved):
    model, out = saved
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors",
                                                     "training_state.pt"]
    loaded, config = load_model(out)
    x = torch.randn(2, 3, 128, 96)
    model.eval()
    loaded.eval()
    for a, b in zip(model(x), loaded(x)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert config["progress"]["step"] == 5
    card = parse_card((out / "README.md").read_text())
    assert card.data.to_dict()["weights_sha256"] == config["weights_sha256"]
    assert int(load_training_state(out)["step"]) == 5


def test_tampered_weights_are_refused(saved):
    _, out = saved
    data = bytearray((out / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (out / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the sha256"):
        load_model(out)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not a checkpoint directory"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text("{bad")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(tmp_path)


def test_a_swap_cut_short_is_recovered(saved):
    model, out = saved
    # A crash between the two renames of a replace leaves only <dir>.old.
    os.rename(out, out.with_name("ckpt.old"))
    loaded, _ = load_model(out)
    assert out.is_dir() and not out.with_name("ckpt.old").exists()


def test_replacing_leaves_no_staging_behind(saved):
    model, out = saved
    save_checkpoint(out, model, recipe={"name": "t"}, progress={"epoch": 2, "step": 10, "samples": 160})
    assert json.loads((out / "config.json").read_text())["progress"]["epoch"] == 2
    assert [p.name for p in out.parent.iterdir()] == ["ckpt"]
