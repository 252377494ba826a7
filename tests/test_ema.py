"""The weight average: its update rule, its swap in and out, and a DP run that saves and resumes it."""

import json

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from dp_pose_zoo.errors import RecipeError
from dp_pose_zoo.training.checkpoint import load_training_state
from dp_pose_zoo.training.config import Recipe
from dp_pose_zoo.training.ema import WeightEMA
from dp_pose_zoo.training.trainer import train


def test_update_rule_and_warm_up():
    model = nn.Linear(3, 2)
    model.bias.requires_grad_(False)  # frozen parameters are not averaged
    start = model.weight.detach().clone()
    ema = WeightEMA(model, decay=0.9)
    assert set(ema.shadow) == {"weight"}
    expected = start.clone()
    for t in range(1, 30):
        with torch.no_grad():
            model.weight.add_(1.0)
        ema.update(model)
        d = min(0.9, (1 + t) / (10 + t))
        expected = d * expected + (1 - d) * model.weight.detach()
        torch.testing.assert_close(ema.shadow["weight"], expected)


def test_applied_swaps_the_average_in_and_restores_the_weights():
    model = nn.Linear(3, 2)
    ema = WeightEMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.mul_(3.0)
    trained = model.weight.detach().clone()
    with ema.applied(model) as raw:
        torch.testing.assert_close(model.weight.detach(), ema.shadow["weight"])
        torch.testing.assert_close(raw["weight"], trained)
    torch.testing.assert_close(model.weight.detach(), trained)


def test_recipe_checks():
    with pytest.raises(RecipeError, match="ema_decay must be a finite number in \\(0, 1\\)"):
        Recipe.from_dict({"name": "r", "ema_decay": 1.0})
    with pytest.raises(RecipeError, match="augment_multiplicity averages views before DP clipping"):
        Recipe.from_dict({"name": "r", "augment_multiplicity": 4})
    with pytest.raises(RecipeError, match="augment_multiplicity needs augmentation on"):
        Recipe.from_dict({"name": "r", "method": "dp-sgd", "epsilon": 1.0, "augment_multiplicity": 2,
                          "augment": {"flip": 0.0, "scale": 0.0, "rotation": 0.0}})


def recipe(**overrides) -> Recipe:
    base = dict(name="ema", train_data="synthpose:private-train:40", val_data=None, strategy="head",
                method="dp-sgd", epsilon=4.0, delta=1e-5, clipping_norm=0.5, epochs=3, batch_size=10, lr=1e-3,
                warmup_steps=1, seed=0, noise_seed=3, physical_batch_size=8, ema_decay=0.8,
                augment_multiplicity=2, model={"input_size": [64, 64], "norm": "group-norm"})
    base.update(overrides)
    return Recipe.from_dict(base)


@pytest.mark.slow
def test_a_dp_run_saves_the_average_and_resumes_to_the_same_result(tmp_path):
    straight = train(recipe(), tmp_path / "straight", progress_bar=False)
    saved = load_file(str(straight / "model.safetensors"))
    state = load_training_state(straight)
    # The release holds the average; the state holds it and the trained weights, which differ from it.
    for name, avg in state["ema"]["shadow"].items():
        torch.testing.assert_close(saved[name], avg)
        assert not torch.equal(avg, state["trained_weights"][name])
    assert all(name.startswith("head.") for name in state["ema"]["shadow"])

    train(recipe(), tmp_path / "resumed", progress_bar=False, stop_after_epochs=1)
    train(None, tmp_path / "resumed", resume=True, progress_bar=False)
    resumed = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    for name in saved:
        torch.testing.assert_close(resumed[name], saved[name], rtol=0, atol=0)
    config = json.loads((straight / "config.json").read_text())
    assert config["recipe"]["augment_multiplicity"] == 2 and config["privacy"]["epsilon"] <= 4.0
