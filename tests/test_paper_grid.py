"""The grids (training/paper_grid.py): every command it prints is one dp-pose accepts, on a recipe that
loads with the cell's settings, the names that key the results are unique, and ``--grid`` picks the
runs folder, recipes and report section of the grid it names."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))

import paper_grid  # noqa: E402
from paper_grid import load_grid  # noqa: E402

from dp_pose_zoo.cli import build_parser  # noqa: E402
from dp_pose_zoo.metrics import PCKH_COLUMNS  # noqa: E402
from dp_pose_zoo.training.config import load_recipe  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "training/recipes/real_grid/grid.yaml"
GRIDS = [pytest.param(paper_grid.DEFAULT_GRID, id="synthpose"), pytest.param(REAL, id="real")]


@pytest.mark.parametrize("path", GRIDS)
def test_every_cell_is_a_valid_train_and_eval_command_with_a_unique_name(path):
    grid = load_grid(path)
    names = [c.name for c in grid.cells]
    assert len(names) == len(set(names))
    parser = build_parser()
    for cell in grid.cells:
        args = parser.parse_args(grid.train_command(cell)[1:])
        assert args.recipe == f"{grid.spec['recipes']}/{cell.strategy}.yaml"
        assert args.out == f"runs/{grid.spec['name']}/{cell.name}"
        recipe = load_recipe(ROOT / args.recipe, method=args.method, epsilon=args.epsilon, clipping_norm=args.clip,
                             seed=args.seed, public_data=args.public_data)
        assert (recipe.method, recipe.strategy, recipe.seed) == (cell.method, cell.strategy, cell.seed)
        if cell.method != "non-private":
            assert (recipe.epsilon, recipe.clipping_norm) == (cell.epsilon, cell.clip)
        evaluation = parser.parse_args(grid.eval_command(cell)[1:])
        assert (evaluation.checkpoint, evaluation.data) == (args.out, grid.spec["eval_data"])
    # the audit and the repeats name cells that exist
    assert set(grid.spec["audit"]["cells"]) <= set(names)
    assert set(grid.spec["repeats"]["cells"]) <= set(names)


def test_the_synthpose_grid_keeps_its_place_and_axes():
    grid = load_grid()
    assert grid.runs == "runs/paper_grid" and grid.spec["recipes"] == "training/recipes/paper_grid"
    assert grid.report_command() == "training/paper_grid.py report"
    axes = grid.spec["strategies"]["finetune"]
    assert (axes["epsilon"], axes["clip"]) == ([0.2, 1.0, 8.0], [1.0, 0.1, 0.01])


def test_the_real_grid_has_the_issues_cells():
    grid = load_grid(REAL)
    main = {(c.strategy, c.method, c.epsilon, c.clip) for c in grid.cells if not c.seed and not c.public_data}
    methods = ("dp-sgd", "pdp-sgd")
    expected = {(s, "non-private", None, None) for s in ("finetune", "full")}
    expected |= {(s, m, e, 0.1) for s in ("finetune", "full") for m in methods for e in (0.2, 1.0, 8.0)}
    expected |= {("finetune", m, 1.0, c) for m in methods for c in (1.0, 0.01)}
    assert main == expected
    repeats = {(c.method, c.epsilon, c.seed) for c in grid.cells if c.seed}
    assert repeats == {(m, e, s) for m in methods for e in (0.2, 1.0) for s in (1, 2)}
    assert {c.strategy for c in grid.cells if c.seed} == {"finetune"}
    audited = {c for c in grid.cells if c.name in grid.spec["audit"]["cells"]}
    assert audited == {c for c in grid.cells if not c.seed and (c.method == "non-private" or c.epsilon in (1, 8))}


def test_the_real_grids_recipes_fine_tune_the_public_model_on_mpii():
    grid = load_grid(REAL)
    finetune, full = (load_recipe(ROOT / grid.spec["recipes"] / f"{s}.yaml") for s in ("finetune", "full"))
    public = load_recipe(ROOT / "training/recipes/lsp_public_pretrain.yaml")
    # init is where the public recipe's run goes (dp-pose train's default out: runs/<recipe name>)
    assert grid.spec["init"] == finetune.init == full.init == f"runs/{public.name}"
    assert f"--recipe training/recipes/{public.name}.yaml" in grid.spec["init_command"]
    assert finetune.model == full.model == public.model  # the checkpoint they start from loads into them
    # the two strategies share every other setting (common.yaml, the one place to tune them)
    differ = {k for k, v in finetune.to_dict().items() if full.to_dict()[k] != v}
    assert differ == {"name", "strategy"}
    mpii = "mpii:../shared/data/mpii-subset"
    assert finetune.train_data == f"{mpii}/annotations/mpii_train.json" and finetune.val_data == mpii
    assert grid.spec["eval_data"] == f"{mpii}/annotations/mpii_test.json"
    assert (grid.spec["audit"]["members"], grid.spec["audit"]["non_members"]) == (
        finetune.train_data, grid.spec["eval_data"])
    assert finetune.public_data.startswith("lsp:") and finetune.accountant == "prv-rel"
    people = len(json.loads((ROOT / finetune.train_data.split(":", 1)[1]).read_text()))
    assert finetune.delta < 1 / people


# ---------------------------------------------------------------- --grid: runs folder and report section

SYNTH_SECTION = ("<!-- grid-tables:begin (generated by training/paper_grid.py report) -->\nold synthpose tables\n"
                 "<!-- grid-tables:end -->\n")


def _fake_runs(root: Path, grid) -> None:
    """eval.json and config.json for every main cell of ``grid`` under ``root``, Mean and Limbs told apart."""
    for i, cell in enumerate(c for c in grid.cells if not c.seed):
        run = root / grid.runs / cell.name
        run.mkdir(parents=True)
        pckh = {c: 10.0 + i for c in PCKH_COLUMNS} | {"Limbs": 50.0 + i, "Limbs@0.1": 5.0 + i}
        (run / "eval.json").write_text(json.dumps({"pckh": pckh}))
        private = cell.method != "non-private"
        privacy = {"epsilon": cell.epsilon * 0.997, "noise_multiplier": 1.5} if private else None
        (run / "config.json").write_text(json.dumps({"privacy": privacy}))


def test_grid_flag_reports_into_its_own_section_and_runs_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(paper_grid, "ROOT", tmp_path)
    doc = tmp_path / "docs/results.md"
    doc.parent.mkdir()
    doc.write_text(f"# Results\n\n{SYNTH_SECTION}\n## Time\n\nkept\n")
    grid = load_grid(REAL)
    _fake_runs(tmp_path, grid)

    paper_grid.main(["--grid", str(REAL), "list"])
    listed = capsys.readouterr().out
    assert "--out runs/real_grid/full-pdp-sgd-eps8-C0.1 " in listed and "runs/paper_grid" not in listed
    assert "--recipe training/recipes/real_grid/finetune.yaml" in listed

    paper_grid.main(["--grid", str(REAL), "report"])
    text = doc.read_text()
    assert text.startswith(f"# Results\n\n{SYNTH_SECTION}\n## Time\n\nkept\n")  # the other grid's section kept
    heading = "\n## DP fine-tuning on real photos (MPII subset)\n\n<!-- real-grid-tables:begin"
    assert heading in text and text.endswith("<!-- real-grid-tables:end -->\n")
    assert (tmp_path / "docs/img/real_grid_pckh_vs_epsilon.png").stat().st_size > 0
    assert (tmp_path / "docs/img/real_grid_pdp_gain.png").stat().st_size > 0
    assert not (tmp_path / "docs/img/pckh_vs_epsilon.png").exists()  # the SynthPose grid's plots untouched

    header = next(line for line in text.splitlines() if line.startswith("| method |"))
    assert header.endswith("| Mean | Mean@0.1 | Limbs | Limbs@0.1 |") and "eps spent (prv-rel)" in header
    cells = [c for c in grid.cells if not c.seed]
    index = {c.name: i for i, c in enumerate(cells)}
    i = index["finetune-pdp-sgd-eps8-C0.1"]
    assert f"| PDP-SGD | 8.0 | 0.1 | 7.976 | 1.500 | {' | '.join([f'{10.0 + i:.2f}'] * 9)} | " \
           f"{50.0 + i:.2f} | {5.0 + i:.2f} |" in text
    for metric in ("Mean", "Limbs"):
        assert f"#### PDP-SGD minus DP-SGD, finetune, PCKh {metric} (DP-SGD -> PDP-SGD)" in text
        assert f"#### Run-to-run spread (PCKh {metric} of the same cell, other seeds)" in text
    dp, pdp = index["finetune-dp-sgd-eps1-C0.01"], index["finetune-pdp-sgd-eps1-C0.01"]
    assert f"| 0.01 | - | {pdp - dp:+.2f} ({50.0 + dp:.2f} -> {50.0 + pdp:.2f}) | - |" in text  # Limbs
    assert "public subset" not in text  # this grid has no public-set ablation
    assert f"Evaluated on `{grid.spec['eval_data']}`; {len(cells)} of {len(grid.cells)} cells done." in text

    paper_grid.main(["--grid", str(REAL), "report"])  # a second report replaces the section, adds none
    assert doc.read_text() == text
    assert text.count("real-grid-tables:begin") == 1


def test_report_section_markers_name_the_command_that_regenerates_them():
    grid = load_grid(REAL)
    assert grid.report_command() == "training/paper_grid.py --grid training/recipes/real_grid/grid.yaml report"
    doc = (ROOT / "docs/results.md").read_text()
    begin = f"<!-- real-grid-tables:begin (generated by {grid.report_command()}) -->"
    assert doc.count(begin) == 1 and doc.count("<!-- real-grid-tables:end -->") == 1
    assert doc.index("## DP fine-tuning on real photos (MPII subset)") < doc.index(begin)


def test_a_grid_file_without_its_places_is_refused(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text("name: g\nstrategies: {}\n")
    with pytest.raises(SystemExit, match="lacks recipes, init, init_command, eval_data, report"):
        load_grid(path)
    path.write_text("name: ../g\nrecipes: r\ninit: i\ninit_command: c\neval_data: e\nstrategies: {}\n"
                    "report: {markers: m}\n")
    with pytest.raises(SystemExit, match="must be a folder name"):
        load_grid(path)
