import pytest

from dp_pose_zoo.errors import RecipeError
from dp_pose_zoo.training.config import Recipe, load_recipe


def test_recipe_yaml_round_trip(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("train_data: synthpose:public-train:100\nstrategy: finetune\nmodel:\n  input_size: [128, 96]\n"
                    "augment:\n  rotation: 10\n")
    recipe = load_recipe(path, epochs=3, seed=None)
    assert recipe.name == "r" and recipe.epochs == 3 and recipe.seed == 0
    assert recipe.model.input_size == (128, 96) and recipe.augment.rotation == 10
    again = Recipe.from_dict(recipe.to_dict())
    assert again == recipe


@pytest.mark.parametrize("text,match", [
    ("stratgy: full\n", "unknown recipe key"),
    ("strategy: half\n", "strategy must be one of"),
    ("epochs: 0\n", "epochs must be at least 1"),
    ("model:\n  depth: 3\n", "unknown model key"),
    ("method: sgd\n", "method must be one of"),
    ("method: dp-sgd\n", "needs exactly one of epsilon"),
    ("method: pdp-sgd\nepsilon: 1.0\nnoise_multiplier: 1.0\n", "needs exactly one of epsilon"),
    ("method: dp-sgd\nepsilon: 1.0\nphysical_batch_size: 0\n", "physical_batch_size must be at least 1"),
    ("- a list\n", "must be a YAML mapping"),
    ("a: [unclosed\n", "not valid YAML"),
    ("init_unseen_attestation: trust me\n", "is about an initial model, and the recipe has no init"),
    ("init: runs/x\ninit_unseen_attestation: '  '\n", "must say, in words, why"),
])
def test_bad_recipes_are_refused_with_one_line(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RecipeError, match=match) as err:
        load_recipe(path)
    assert "\n" not in str(err.value)


def test_missing_recipe(tmp_path):
    with pytest.raises(RecipeError, match="recipe not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_a_recipe_inherits_its_base_and_overrides_it_key_by_key(tmp_path):
    (tmp_path / "common.yaml").write_text(
        "name: common\ntrain_data: synthpose:private-train:50\nepochs: 7\nlr: 0.002\n"
        "augment:\n  flip: 0.5\n  rotation: 30\nmodel:\n  input_size: [128, 96]\n  norm: group-norm\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/finetune.yaml").write_text(
        "base: ../common.yaml\nstrategy: finetune\nepochs: 3\naugment:\n  rotation: 0\n")
    recipe = load_recipe(tmp_path / "sub/finetune.yaml", lr=0.01)
    assert recipe.name == "finetune"  # its own file name, not the base's name
    assert (recipe.strategy, recipe.epochs, recipe.lr, recipe.train_data) == (
        "finetune", 3, 0.01, "synthpose:private-train:50")
    assert (recipe.augment.flip, recipe.augment.rotation) == (0.5, 0)  # nested keys merge one by one
    assert recipe.model.input_size == (128, 96) and recipe.model.norm == "group-norm"
    assert Recipe.from_dict(recipe.to_dict()) == recipe  # the merged recipe stands alone


@pytest.mark.parametrize("files,match", [
    ({"r.yaml": "base: r.yaml\n"}, "leads back to itself"),
    ({"r.yaml": "base: a.yaml\n", "a.yaml": "base: r.yaml\n"}, "leads back to itself"),
    ({"r.yaml": "base: gone.yaml\n"}, "base recipe not found"),
    ({"r.yaml": "base: [a.yaml]\n"}, "base must be a recipe file name"),
    ({"r.yaml": "base: a.yaml\n", "a.yaml": "stratgy: full\n"}, "unknown recipe key"),
])
def test_bad_bases_are_refused(tmp_path, files, match):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(RecipeError, match=match):
        load_recipe(tmp_path / "r.yaml")


DP = dict(name="dp", method="dp-sgd", noise_multiplier=1.0)


@pytest.mark.parametrize("key,value", [
    ("clipping_norm", float("inf")), ("clipping_norm", float("nan")), ("clipping_norm", 0.0), ("clipping_norm", -1.0),
    ("clipping_norm", "big"), ("noise_multiplier", float("nan")), ("noise_multiplier", float("inf")),
    ("noise_multiplier", 0.0), ("delta", 0.0), ("delta", 1.0), ("delta", float("nan")), ("delta", "1e-5"),
    ("lr", float("nan")), ("lr", float("inf")), ("lr", 0.0), ("weight_decay", -0.1), ("weight_decay", float("inf")),
    ("epochs", 2.5), ("epochs", True), ("epochs", "3"), ("batch_size", 0), ("warmup_steps", -1),
    ("seed", -1), ("seed", 1.5), ("num_workers", -1), ("physical_batch_size", 0), ("checkpoint_every", 0),
    ("refresh_every", 0), ("public_size", 0), ("projection_dim", 0), ("noise_seed", -3), ("noise_seed", 2 ** 63),
    ("accountant", "gdp"), ("cache_frozen", "yes"),
])
def test_every_numeric_field_is_checked_finite_and_in_range(key, value):
    with pytest.raises(RecipeError, match=key) as err:
        Recipe.from_dict({**DP, key: value})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("key,value", [("epsilon", float("inf")), ("epsilon", float("nan")), ("epsilon", -1.0)])
def test_a_target_epsilon_is_finite_and_positive(key, value):
    with pytest.raises(RecipeError, match=key):
        Recipe.from_dict({"name": "dp", "method": "dp-sgd", key: value})


@pytest.mark.parametrize("flags", [["--clip", "inf"], ["--clip", "0"], ["--noise-multiplier", "nan"],
                                   ["--epsilon", "inf"], ["--delta", "nan"]])
def test_cli_refuses_a_bad_number_before_anything_is_written(tmp_path, capsys, flags):
    from dp_pose_zoo.cli import main

    recipe = tmp_path / "r.yaml"
    recipe.write_text("train_data: synthpose:private-train:20\nval_data: null\nmethod: dp-sgd\nepsilon: 1.0\n"
                      "epochs: 1\nbatch_size: 10\nmodel:\n  input_size: [32, 32]\n")
    out = tmp_path / "run"
    assert main(["train", "--recipe", str(recipe), "--out", str(out), "-q", *flags]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("dp-pose train: error: ")
    assert not out.exists()  # no run folder, so no journal line either
