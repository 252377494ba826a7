"""The paper grid's cells (training/paper_grid.py): every command it prints is one dp-pose accepts,
on a recipe that loads, and the names that key the results are unique."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))

from paper_grid import eval_command, load_grid  # noqa: E402

from dp_pose_zoo.cli import build_parser  # noqa: E402
from dp_pose_zoo.training.config import load_recipe  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_every_cell_is_a_valid_train_and_eval_command_with_a_unique_name():
    spec, cells = load_grid()
    names = [c.name for c in cells]
    assert len(names) == len(set(names))
    parser = build_parser()
    for cell in cells:
        args = parser.parse_args(cell.train_command()[1:])
        recipe = load_recipe(ROOT / args.recipe, method=args.method, epsilon=args.epsilon, clipping_norm=args.clip,
                             seed=args.seed, public_data=args.public_data)
        assert (recipe.method, recipe.strategy) == (cell.method, cell.strategy)
        if cell.method != "non-private":
            assert (recipe.epsilon, recipe.clipping_norm) == (cell.epsilon, cell.clip)
        assert parser.parse_args(eval_command(cell, spec)[1:]).data == spec["eval_data"]
    # the audit names cells that exist, and the finetune axes are the grid
    assert set(spec["audit"]["cells"]) <= set(names)
    axes = spec["strategies"]["finetune"]
    assert (axes["epsilon"], axes["clip"]) == ([0.2, 1.0, 8.0], [1.0, 0.1, 0.01])
