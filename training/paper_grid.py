"""Run a grid of DP training cells (issue 8's SynthPose paper grid by default) cell by cell, then report it.

    python training/paper_grid.py list                 # the cells and the command of each
    python training/paper_grid.py run --jobs 2         # train + evaluate the missing cells
    python training/paper_grid.py run --only finetune-pdp-sgd-eps1-C0.1
    python training/paper_grid.py audit                # membership inference on the cells grid.yaml names
    python training/paper_grid.py report               # tables into docs/results.md, plots into docs/img/
    python training/paper_grid.py --grid training/recipes/real_grid/grid.yaml run   # another grid

A grid file names its runs (``runs/<name>/``), the folder of its strategies' recipes
(``<recipes>/<strategy>.yaml``) and the section of docs/results.md its report fills (between
``<!-- <markers>:begin ... -->`` and ``<!-- <markers>:end -->``). Its paths are relative to the
repository's top, where every command runs. A cell is done when its directory holds
``eval.json``; ``run`` skips done cells, so a stopped grid continues where it was. Each cell's
log is ``runs/<name>/<cell>.log``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from dp_pose_zoo.io import atomic_write_bytes
from paper_grid_report import write_report

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_GRID = ROOT / "training/recipes/paper_grid/grid.yaml"
_REQUIRED = ("name", "recipes", "init", "init_command", "eval_data", "strategies", "report")


@dataclass(frozen=True)
class Cell:
    strategy: str
    method: str
    epsilon: float | None = None  # None for non-private
    clip: float | None = None
    seed: int = 0  # repeats of a cell with other seeds measure the run-to-run spread
    public_data: str | None = None  # PDP-SGD: another public subset than the recipe's (an ablation)

    @property
    def name(self) -> str:
        name = f"{self.strategy}-non-private" if self.method == "non-private" else \
            f"{self.strategy}-{self.method}-eps{self.epsilon:g}-C{self.clip:g}"
        name += f"-seed{self.seed}" if self.seed else ""
        return name + (f"-public-{self.public_data.split(':')[1]}" if self.public_data else "")


@dataclass(frozen=True)
class Grid:
    """A grid file's spec and the cells it expands to, with the paths its commands use (relative to ROOT)."""

    path: Path
    spec: dict
    cells: tuple[Cell, ...]

    @property
    def runs(self) -> str:
        return f"runs/{self.spec['name']}"

    def run_dir(self, cell: Cell) -> Path:
        return ROOT / self.runs / cell.name

    def train_command(self, cell: Cell) -> list[str]:
        cmd = ["dp-pose", "train", "--recipe", f"{self.spec['recipes']}/{cell.strategy}.yaml",
               "--method", cell.method, "--out", f"{self.runs}/{cell.name}", "--quiet"]
        if cell.method != "non-private":
            cmd += ["--epsilon", f"{cell.epsilon:g}", "--clip", f"{cell.clip:g}"]
        if cell.seed:
            cmd += ["--seed", str(cell.seed)]
        if cell.public_data:
            cmd += ["--public-data", cell.public_data]
        return cmd

    def eval_command(self, cell: Cell) -> list[str]:
        return ["dp-pose", "eval", f"{self.runs}/{cell.name}", "--data", self.spec["eval_data"], "--json"]

    def report_command(self) -> str:
        """How the report is regenerated; written into its begin marker."""
        if self.path == DEFAULT_GRID:
            return "training/paper_grid.py report"
        shown = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"training/paper_grid.py --grid {shown} report"


def load_grid(path: Path = DEFAULT_GRID) -> Grid:
    path = Path(path).resolve()
    spec = yaml.safe_load(path.read_text())
    missing = [key for key in _REQUIRED if key not in (spec if isinstance(spec, dict) else {})]
    if missing:
        sys.exit(f"paper_grid: {path} lacks {', '.join(missing)}")
    if not isinstance(spec["name"], str) or not spec["name"] or "/" in spec["name"] or spec["name"].startswith("."):
        sys.exit(f"paper_grid: {path}: name {spec['name']!r} must be a folder name (its runs go to runs/<name>/)")
    cells = []
    for strategy, axes in spec["strategies"].items():
        cells.append(Cell(strategy, "non-private"))
        cells += [Cell(strategy, method, eps, clip) for block in _axis_blocks(axes) for method in block["methods"]
                  for eps in block["epsilon"] for clip in block["clip"]]
    for seed in spec.get("repeats", {}).get("seeds", []):
        for base in spec["repeats"]["cells"]:
            cells += [replace(c, seed=seed) for c in cells if c.name == base and not c.seed]
    ablation = spec.get("public_ablation", {})
    for base in ablation.get("cells", []):
        cells += [replace(c, public_data=ablation["public_data"]) for c in cells if c.name == base]
    return Grid(path, spec, tuple(cells))


def _axis_blocks(axes: dict | list[dict]) -> list[dict]:
    """A strategy's axes: one block (methods x epsilon x clip), or a list of blocks for a grid that is no product."""
    return axes if isinstance(axes, list) else [axes]


def _dp_pose(cmd: list[str]) -> list[str]:
    return [str(Path(sys.executable).parent / "dp-pose"), *cmd[1:]]


def run_cell(cell: Cell, grid: Grid) -> str:
    out = grid.run_dir(cell)
    log = ROOT / grid.runs / f"{cell.name}.log"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    start = time.time()
    with log.open("a") as fh:
        if not (out / "config.json").exists() or not _complete(out):
            resume = (out / "config.json").exists()
            cmd = ["dp-pose", "train", "--resume", str(out), "--quiet"] if resume else grid.train_command(cell)
            fh.write(f"$ {' '.join(cmd)}\n")
            fh.flush()
            if subprocess.call(_dp_pose(cmd), cwd=ROOT, stdout=fh, stderr=fh, env=env) != 0:
                return f"{cell.name}: training failed (see {log})"
        result = subprocess.run(_dp_pose(grid.eval_command(cell)), cwd=ROOT, capture_output=True, text=True, env=env)
        fh.write(result.stderr)
        if result.returncode != 0:
            return f"{cell.name}: eval failed (see {log})"
        atomic_write_bytes(out / "eval.json", result.stdout.encode())
    return f"{cell.name}: done in {time.time() - start:.0f} s"


def _complete(out: Path) -> bool:
    config = json.loads((out / "config.json").read_text())
    return config["progress"]["epoch"] >= config["recipe"]["epochs"]


def cmd_list(args) -> None:
    grid = load_grid(args.grid)
    print(f"# init: {grid.spec['init']} (if missing: {grid.spec['init_command']})")
    for cell in grid.cells:
        print(f"{cell.name:34s} {' '.join(grid.train_command(cell))} && {' '.join(grid.eval_command(cell))}")


def cmd_run(args) -> None:
    grid = load_grid(args.grid)
    spec = grid.spec
    if not (ROOT / spec["init"] / "model.safetensors").exists():
        sys.exit(f"paper_grid: the public pretraining {spec['init']} is missing; first run: {spec['init_command']}")
    todo = [c for c in grid.cells if not (grid.run_dir(c) / "eval.json").exists()
            and (not args.only or any(c.name.startswith(p) for p in args.only))]
    print(f"{len(todo)} of {len(grid.cells)} cells to run, {args.jobs} at a time", flush=True)
    (ROOT / grid.runs).mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        for message in pool.map(lambda c: run_cell(c, grid), todo):
            print(message, flush=True)


def cmd_audit(args) -> None:
    """One `dp-pose audit` over the trained cells the grid file names (crops and references shared);
    each cell's JSON line goes to runs/<grid name>/<cell>/audit.json."""
    grid = load_grid(args.grid)
    spec = grid.spec
    cells = [c for c in spec["audit"]["cells"] if (ROOT / grid.runs / c / "eval.json").exists()]
    missing = sorted(set(spec["audit"]["cells"]) - set(cells))
    if missing:
        print(f"not trained yet, not audited: {', '.join(missing)}", flush=True)
    cmd = ["dp-pose", "audit", *(f"{grid.runs}/{c}" for c in cells), "--members", spec["audit"]["members"],
           "--non-members", spec["audit"]["non_members"], "--json"]
    start = time.time()
    result = subprocess.run(_dp_pose(cmd), cwd=ROOT, capture_output=True, text=True)
    if result.returncode not in (0, 3):  # 3: an audit beat a card's epsilon; kept for the report
        sys.exit(f"paper_grid: audit failed: {result.stderr.strip()}")
    for line in result.stdout.splitlines():
        report = json.loads(line)
        atomic_write_bytes(ROOT / report["checkpoint"] / "audit.json", (line + "\n").encode())
    print(f"audited {len(cells)} cells in {time.time() - start:.0f} s"
          + (f"; CLAIM BEATEN: {result.stderr.strip()}" if result.returncode == 3 else ""), flush=True)


def cmd_report(args) -> None:
    grid = load_grid(args.grid)
    write_report(grid.spec, grid.cells, ROOT / grid.runs, ROOT, command=grid.report_command())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", type=Path, default=DEFAULT_GRID,
                        help="the grid file (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list").set_defaults(func=cmd_list)
    p = sub.add_parser("run")
    p.add_argument("--jobs", type=int, default=1, help="cells trained at once (each on 1 thread)")
    p.add_argument("--only", nargs="+", help="cell-name prefixes to run")
    p.set_defaults(func=cmd_run)
    sub.add_parser("audit").set_defaults(func=cmd_audit)
    sub.add_parser("report").set_defaults(func=cmd_report)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
