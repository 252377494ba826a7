"""Several data sets in one recipe: each person keeps its source, weights set how often it is seen."""

import json
from collections import Counter
from pathlib import Path

import pytest

from dp_pose_zoo.datasets.mixture import Source, epoch_size, load_mixture, parse_sources
from dp_pose_zoo.errors import DatasetError, RecipeError
from dp_pose_zoo.training.config import Recipe
from dp_pose_zoo.training.trainer import Schedule, step_indices, train

DATA = Path(__file__).parent / "data"
LSP = f"lsp:{DATA / 'lspet'}"
COCO = f"coco:{DATA / 'coco-sample' / 'test_coco.json'}"
SYNTH = "synthpose:public-train:10"


def test_parse_sources_forms_and_errors():
    assert parse_sources(LSP) == (Source(LSP),)
    assert parse_sources([LSP, {"data": COCO, "weight": 2.5}]) == (Source(LSP), Source(COCO, 2.5))
    for bad in ([], [{"data": LSP, "weight": 0}], [{"data": LSP, "weight": float("nan")}], [{"spec": LSP}],
                [LSP, LSP], [{"data": LSP, "weight": True}], 3):
        with pytest.raises(DatasetError):
            parse_sources(bad)


def test_each_person_keeps_its_source_and_its_image():
    mixed = load_mixture(parse_sources([LSP, {"data": COCO, "weight": 2}, SYNTH]))
    counts = Counter(r.source for r in mixed.records)
    assert counts == {LSP: 6, COCO: 12, SYNTH: 10}
    assert mixed.parts == ((LSP, 6, 1.0), (COCO, 12, 2.0), (SYNTH, 10, 1.0))
    shapes = {r.source: mixed.load_image(r).shape for r in (mixed.records[0], mixed.records[6], mixed.records[-1])}
    assert shapes[LSP][:2] != shapes[SYNTH][:2]  # each image comes from its own loader
    assert len({r.image_id for r in mixed.records}) == len({(r.source, r.image_id) for r in mixed.records})


def test_weights_set_how_often_each_source_is_seen_per_epoch():
    mixed = load_mixture(parse_sources([{"data": LSP, "weight": 1}, {"data": COCO, "weight": 2.5}]))
    recipe = Recipe.from_dict(dict(name="mix", train_data=[LSP, {"data": COCO, "weight": 2.5}], batch_size=4,
                                   epochs=2, seed=1))
    schedule = Schedule.of(recipe, mixed)
    assert epoch_size(mixed) == 6 + 2 * 12 + 6  # 2.5 x 12 COCO people: two passes and a random half
    assert schedule.epoch_ends == (9, 18)  # ceil(36 / 4) steps an epoch
    epochs = [sum((step_indices(recipe, schedule, s, None) for s in range(start, end)), [])
              for start, end in ((0, 9), (9, 18))]
    for seen in epochs:
        per_person = Counter(seen)
        assert len(seen) == 36
        assert all(per_person[i] == 1 for i in range(6))  # every LSP person once
        coco = [per_person[i] for i in range(6, 18)]
        assert sorted(coco) == [2] * 6 + [3] * 6  # every COCO person twice, a half of them thrice
    assert epochs[0] != epochs[1]  # a new order (and a new half) each epoch
    again = [step_indices(recipe, schedule, s, None) for s in range(9)]
    assert sum(again, []) == epochs[0]  # deterministic from (seed, epoch)


def test_single_source_order_is_a_permutation_per_epoch():
    recipe = Recipe.from_dict(dict(name="one", train_data=LSP, batch_size=4, epochs=1))
    schedule = Schedule.of(recipe, load_mixture(recipe.train_sources))
    seen = sum((step_indices(recipe, schedule, s, None) for s in range(schedule.total_steps)), [])
    assert sorted(seen) == list(range(6))


def test_dp_runs_refuse_weights():
    with pytest.raises(RecipeError, match="source weights are for non-private runs"):
        Recipe.from_dict(dict(name="dp", method="dp-sgd", epsilon=1.0,
                              train_data=[LSP, {"data": COCO, "weight": 2}]))
    Recipe.from_dict(dict(name="dp", method="dp-sgd", epsilon=1.0, train_data=[LSP, COCO]))  # equal rates are fine


@pytest.mark.slow
def test_a_mixed_recipe_trains_and_its_card_names_every_source(tmp_path):
    recipe = Recipe.from_dict(dict(
        name="mixed", train_data=[LSP, {"data": COCO, "weight": 0.5}, SYNTH], val_data=None, strategy="scratch",
        epochs=1, batch_size=8, seed=0, model={"input_size": [64, 64], "norm": "group-norm"}))
    out = train(recipe, tmp_path / "mixed", progress_bar=False)
    config = json.loads((out / "config.json").read_text())
    assert config["progress"]["samples"] == 6 + 6 + 10
    assert config["recipe"]["train_data"][1] == {"data": COCO, "weight": 0.5}
    card = (out / "README.md").read_text()
    for spec in (LSP, COCO, SYNTH):
        assert spec in card
