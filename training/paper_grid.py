"""Run the paper grid (issue 8) cell by cell, then report it.

    python training/paper_grid.py list                 # the cells and the command of each
    python training/paper_grid.py run --jobs 2         # train + evaluate the missing cells
    python training/paper_grid.py run --only finetune-pdp-sgd-eps1-C0.1
    python training/paper_grid.py audit                # membership inference on the cells grid.yaml names
    python training/paper_grid.py report               # tables into docs/results.md, plots into docs/img/

A cell is done when its directory holds ``eval.json``; ``run`` skips done cells, so a
stopped grid continues where it was. Each cell's log is ``runs/paper_grid/<cell>.log``.
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
GRID = ROOT / "training/recipes/paper_grid/grid.yaml"
RUNS = ROOT / "runs/paper_grid"


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

    def train_command(self) -> list[str]:
        cmd = ["dp-pose", "train", "--recipe", f"training/recipes/paper_grid/{self.strategy}.yaml",
               "--method", self.method, "--out", f"runs/paper_grid/{self.name}", "--quiet"]
        if self.method != "non-private":
            cmd += ["--epsilon", f"{self.epsilon:g}", "--clip", f"{self.clip:g}"]
        if self.seed:
            cmd += ["--seed", str(self.seed)]
        if self.public_data:
            cmd += ["--public-data", self.public_data]
        return cmd


def load_grid(path: Path = GRID) -> tuple[dict, list[Cell]]:
    spec = yaml.safe_load(path.read_text())
    cells = []
    for strategy, axes in spec["strategies"].items():
        cells.append(Cell(strategy, "non-private"))
        cells += [Cell(strategy, method, eps, clip) for method in axes["methods"]
                  for eps in axes["epsilon"] for clip in axes["clip"]]
    for seed in spec.get("repeats", {}).get("seeds", []):
        for base in spec["repeats"]["cells"]:
            cells += [replace(c, seed=seed) for c in cells if c.name == base and not c.seed]
    ablation = spec.get("public_ablation", {})
    for base in ablation.get("cells", []):
        cells += [replace(c, public_data=ablation["public_data"]) for c in cells if c.name == base]
    return spec, cells


def eval_command(cell: Cell, spec: dict) -> list[str]:
    return ["dp-pose", "eval", f"runs/paper_grid/{cell.name}", "--data", spec["eval_data"], "--json"]


def _dp_pose(cmd: list[str]) -> list[str]:
    return [str(Path(sys.executable).parent / "dp-pose"), *cmd[1:]]


def run_cell(cell: Cell, spec: dict) -> str:
    out = RUNS / cell.name
    log = RUNS / f"{cell.name}.log"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    start = time.time()
    with log.open("a") as fh:
        if not (out / "config.json").exists() or not _complete(out):
            resume = (out / "config.json").exists()
            cmd = ["dp-pose", "train", "--resume", str(out), "--quiet"] if resume else cell.train_command()
            fh.write(f"$ {' '.join(cmd)}\n")
            fh.flush()
            if subprocess.call(_dp_pose(cmd), cwd=ROOT, stdout=fh, stderr=fh, env=env) != 0:
                return f"{cell.name}: training failed (see {log})"
        result = subprocess.run(_dp_pose(eval_command(cell, spec)), cwd=ROOT, capture_output=True, text=True, env=env)
        fh.write(result.stderr)
        if result.returncode != 0:
            return f"{cell.name}: eval failed (see {log})"
        atomic_write_bytes(out / "eval.json", result.stdout.encode())
    return f"{cell.name}: done in {time.time() - start:.0f} s"


def _complete(out: Path) -> bool:
    config = json.loads((out / "config.json").read_text())
    return config["progress"]["epoch"] >= config["recipe"]["epochs"]


def cmd_list(args) -> None:
    spec, cells = load_grid()
    print(f"# init: {spec['init']} (if missing: {spec['init_command']})")
    for cell in cells:
        print(f"{cell.name:34s} {' '.join(cell.train_command())} && {' '.join(eval_command(cell, spec))}")


def cmd_run(args) -> None:
    spec, cells = load_grid()
    if not (ROOT / spec["init"] / "model.safetensors").exists():
        sys.exit(f"paper_grid: the public pretraining {spec['init']} is missing; first run: {spec['init_command']}")
    todo = [c for c in cells if not (RUNS / c.name / "eval.json").exists()
            and (not args.only or any(c.name.startswith(p) for p in args.only))]
    print(f"{len(todo)} of {len(cells)} cells to run, {args.jobs} at a time", flush=True)
    RUNS.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        for message in pool.map(lambda c: run_cell(c, spec), todo):
            print(message, flush=True)


def cmd_audit(args) -> None:
    """One `dp-pose audit` over the trained cells grid.yaml names (crops and references shared);
    each cell's JSON line goes to runs/paper_grid/<cell>/audit.json."""
    spec, _ = load_grid()
    cells = [c for c in spec["audit"]["cells"] if (RUNS / c / "eval.json").exists()]
    missing = sorted(set(spec["audit"]["cells"]) - set(cells))
    if missing:
        print(f"not trained yet, not audited: {', '.join(missing)}", flush=True)
    cmd = ["dp-pose", "audit", *(f"runs/paper_grid/{c}" for c in cells), "--members", spec["audit"]["members"],
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list").set_defaults(func=cmd_list)
    p = sub.add_parser("run")
    p.add_argument("--jobs", type=int, default=1, help="cells trained at once (each on 1 thread)")
    p.add_argument("--only", nargs="+", help="cell-name prefixes to run")
    p.set_defaults(func=cmd_run)
    sub.add_parser("audit").set_defaults(func=cmd_audit)
    sub.add_parser("report").set_defaults(func=lambda a: write_report(*load_grid(), RUNS, ROOT))
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
