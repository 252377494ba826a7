"""Plots of the real-photo DP tables in docs/results.md (the v2 generation and the paper's questions on it).

The tables are the record (each row came from a run's ``dp-pose eval``; the runs
themselves do not outlive a machine), so the plots are drawn from them, not from
``runs/``: whatever the tables say, the plots show.

    python training/plot_real_results.py            # writes docs/img/real_v2_*.png
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

from dp_pose_zoo.metrics import LIMB_COLUMNS, PCKH_COLUMNS

SECTIONS = ("### The v2 generation", "### The paper's questions on the v2 generation")


def table_rows(markdown: str, headings=SECTIONS) -> list[dict[str, str]]:
    """Every row of the Markdown tables under ``headings`` (up to the next ``###``), as {column: cell}."""
    rows = []
    for heading in headings:
        start = markdown.index(heading)
        end = markdown.find("\n### ", start + len(heading))
        columns = None
        for line in markdown[start:end if end != -1 else None].splitlines():
            if not line.startswith("|"):
                columns = None
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if columns is None:
                columns = cells
            elif not set("".join(cells)) <= set("-: "):
                rows.append(dict(zip(columns, cells)))
    return rows


def kind(label: str, previous: str | None = None) -> str:
    """What a row is, from its first cell: public, non-private, blazepose, pdp-sgd, own, other-clip or dp-sgd
    (C 0.1, the default's); a "same, seed 1" row is of the kind of the row above it."""
    if label.startswith("same") and previous:
        return previous
    if re.match(r"C \d", label) and "C 0.1 " not in label:
        return "other-clip"
    for prefix, name in (("public model", "public"), ("non-private", "non-private"), ("BlazePose", "blazepose")):
        if label.startswith(prefix):
            return name
    for pattern, name in (("PDP-SGD", "pdp-sgd"), ("own:", "own")):  # anywhere: "PDP-SGD, finetune (...)"
        if pattern in label:
            return name
    return "dp-sgd"


def points(rows: list[dict[str, str]], metric: str) -> dict[str, list[tuple[float, float]]]:
    """(epsilon, metric) per kind, each evaluation once (a run shown in two tables has the same figures);
    epsilon is inf for the rows without one."""
    out: dict[str, list[tuple[float, float]]] = {}
    seen, previous = set(), None
    for row in rows:
        previous = name = kind(next(iter(row.values())), previous)
        figures = (name, *(row.get(m) for m in PCKH_COLUMNS + LIMB_COLUMNS))
        if figures in seen:
            continue
        seen.add(figures)
        eps_text = row.get("epsilon spent (prv-rel)", "-")
        eps = float(eps_text) if re.fullmatch(r"[0-9.]+", eps_text) else math.inf
        out.setdefault(name, []).append((eps, float(row[metric])))
    return out


def plot(rows: list[dict[str, str]], img_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img_dir.mkdir(parents=True, exist_ok=True)
    written = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, metric in zip(axes, ("Mean", "Limbs")):
        by_kind = points(rows, metric)
        for name, style, text in (("public", ":", "public model"), ("non-private", "--", "non-private fine-tune"),
                                  ("blazepose", "-.", "BlazePose Full")):
            for _, value in by_kind.get(name, [])[:1]:
                ax.axhline(value, ls=style, color="grey", lw=1, label=f"{text} ({value:.2f})")
        dp = sorted(by_kind.get("dp-sgd", []))
        epsilons = sorted({e for e, _ in dp})
        means = [sum(v for e, v in dp if e == eps) / sum(1 for e, _ in dp if e == eps) for eps in epsilons]
        ax.plot(epsilons, means, "-", color="tab:blue", label="DP-SGD, finetune, C 0.1 (mean of runs)")
        ax.plot(*zip(*dp), "s", color="tab:blue", alpha=0.6)
        for name, marker, colour, shift in (("pdp-sgd", "o", "tab:red", 0.93), ("own", "^", "tab:green", 1.07),
                                            ("other-clip", "x", "tab:blue", 1.07)):
            found = by_kind.get(name, [])
            if found:
                ax.plot([e * shift for e, _ in found], [v for _, v in found], marker, color=colour, ls="none",
                        label={"pdp-sgd": "PDP-SGD, finetune", "own": "own variants (epsilon 0.2)",
                               "other-clip": "DP-SGD, C 1 and 0.01"}[name])
        ax.set_xscale("log")
        ax.set_xticks(epsilons, [f"{e:g}" for e in epsilons])
        ax.minorticks_off()
        ax.set_xlabel("epsilon spent (delta 1e-5)")
        ax.set_title(f"MPII-subset test, PCKh@0.5 {metric} (235 people)")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = img_dir / "real_v2_pckh_vs_epsilon.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="docs/results.md")
    parser.add_argument("--img-dir", default="docs/img")
    args = parser.parse_args(argv)
    for path in plot(table_rows(Path(args.results).read_text()), Path(args.img_dir)):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
