"""training/plot_real_results.py: the plots show what the results tables say."""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))

from plot_real_results import main, points, table_rows  # noqa: E402

HEAD = ("| model | epsilon spent (prv-rel) | sigma | val Mean (90) | Head | Shoulder | Elbow | Wrist | Hip | Knee | "
        "Ankle | Mean | Mean@0.1 | Limbs | Limbs@0.1 |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        "---:|---:|---:|\n")


def row(label: str, eps: str, mean: float, limbs: float) -> str:
    return f"| {label} | {eps} | 1.0 | 50.0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | {mean} | 8 | {limbs} | 9 |\n"


RESULTS = (
    "## Earlier\n\n" + HEAD + row("`ignored_eps1`", "0.9", 10.0, 10.0) +
    "\n### The v2 generation\n\ntext\n\n" + HEAD +
    row("public model (no MPII person)", "-", 58.0, 55.0) +
    row("`dp_eps1` (the default)", "0.9985", 63.0, 60.0) +
    row("`dp_eps8`", "7.9913", 66.0, 63.0) +
    row("non-private fine-tune (`--method non-private`)", "inf", 69.0, 66.0) +
    "\n### The paper's questions on the v2 generation\n\n" + HEAD +
    row("DP-SGD, finetune (`dp_eps0.2`), seed 0", "0.1997", 60.0, 57.0) +
    row("same, seed 1", "0.1997", 59.0, 56.0) +
    row("PDP-SGD, finetune, seed 0", "0.1997", 57.0, 54.0) +
    row("same, seed 1 (`--seed 1`)", "0.1997", 55.0, 52.0) +
    row("PDP-SGD, basis from people the public model never saw", "0.1997", 54.0, 50.0) +
    row("own: head only", "0.1997", 58.5, 55.5) +
    "\n" + HEAD +
    row("C 1 (`--clip 1`)", "0.9985", 64.0, 61.0) +
    row("**C 0.1 (the default)**", "0.9985", 63.0, 60.0) +  # the default again: counted once
    "\n### Later\n\n" + HEAD + row("`ignored_later`", "0.5", 1.0, 1.0)
)


def test_rows_come_from_the_two_sections_only_and_keep_their_kind():
    rows = table_rows(RESULTS)
    assert len(rows) == 12 and not any("ignored" in next(iter(r.values())) for r in rows)
    by_kind = points(rows, "Mean")
    assert by_kind["public"] == [(math.inf, 58.0)] and by_kind["non-private"] == [(math.inf, 69.0)]
    # "same, seed 1" rows are of the kind above them; the default, shown in two tables, is one point.
    assert sorted(by_kind["dp-sgd"]) == [(0.1997, 59.0), (0.1997, 60.0), (0.9985, 63.0), (7.9913, 66.0)]
    assert by_kind["pdp-sgd"] == [(0.1997, 57.0), (0.1997, 55.0), (0.1997, 54.0)]
    assert by_kind["own"] == [(0.1997, 58.5)] and by_kind["other-clip"] == [(0.9985, 64.0)]
    assert points(rows, "Limbs")["pdp-sgd"] == [(0.1997, 54.0), (0.1997, 52.0), (0.1997, 50.0)]


def test_main_writes_the_plot(tmp_path, capsys):
    results = tmp_path / "results.md"
    results.write_text(RESULTS)
    assert main(["--results", str(results), "--img-dir", str(tmp_path / "img")]) == 0
    png = tmp_path / "img" / "real_v2_pckh_vs_epsilon.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and str(png) in capsys.readouterr().out
