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
