"""Membership-inference audit: the statistics against independent formulas, the attack on a
model that memorises its training people against one that cannot, and the same attack through a
released ONNX file against its torch weights."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom

from dp_pose_zoo.cli import main
from dp_pose_zoo.datasets import load_dataset
from dp_pose_zoo.runtime.onnx_model import OnnxModel
from dp_pose_zoo.training.audit import (audit_scores, batch_losses, clopper_pearson, crop_batches,
                                        epsilon_from_rates, onnx_forward, roc_auc, torch_forward)
from dp_pose_zoo.training.checkpoint import load_model
from dp_pose_zoo.training.config import Recipe
from dp_pose_zoo.training.trainer import train

sys.path.insert(0, str(Path(__file__).parent))
from _app_fixtures import default_card  # noqa: E402
from _infer_fixtures import tiny_export, tiny_onnx  # noqa: E402,F401

REAL_PEOPLE = ["--members", "mpii:tests/data/mpii-sample/test_mpii.json",
               "--non-members", "coco:tests/data/coco-sample/test_coco.json"]


def test_auc_matches_pairwise_count_with_ties():
    rng = np.random.default_rng(0)
    members, non_members = rng.integers(0, 5, 40).astype(float), rng.integers(0, 4, 30).astype(float)
    wins = sum((m > n) + 0.5 * (m == n) for m in members for n in non_members)
    assert roc_auc(members, non_members) == pytest.approx(wins / (40 * 30), abs=1e-12)


@pytest.mark.parametrize("k,n", [(0, 20), (7, 20), (20, 20), (1, 3), (250, 500)])
def test_clopper_pearson_bounds_are_where_the_binomial_tail_equals_alpha(k, n):
    alpha = 0.025
    lo, hi = clopper_pearson(k, n, alpha)
    # Exact one-sided bounds: P(X >= k | lo) = alpha and P(X <= k | hi) = alpha.
    if k > 0:
        assert binom.sf(k - 1, n, lo) == pytest.approx(alpha, rel=1e-6)
    else:
        assert lo == 0.0
    if k < n:
        assert binom.cdf(k, n, hi) == pytest.approx(alpha, rel=1e-6)
    else:
        assert hi == 1.0
    assert lo <= k / n <= hi


def test_epsilon_from_rates_inverts_the_dp_inequalities():
    assert epsilon_from_rates(0.5, 0.1, 0.0) == pytest.approx(math.log(5))
    assert epsilon_from_rates(0.9, 0.5, 0.0) == pytest.approx(math.log(0.5 / 0.1))  # the (1-FPR)/(1-TPR) side
    assert epsilon_from_rates(0.5, 0.1, 0.1) == pytest.approx(math.log(4))
    assert epsilon_from_rates(0.3, 0.3, 1e-5) == 0.0  # a coin flip proves nothing
    assert epsilon_from_rates(0.2, 0.4, 0.0) == 0.0  # worse than chance: no bound


def test_perfect_separation_gives_the_clopper_pearson_limit():
    n, delta, confidence = 200, 1e-5, 0.95
    result = audit_scores("t", np.arange(n) + 1000.0, np.arange(n) * 1.0, delta=delta, confidence=confidence)
    # Threshold chosen on one half, evaluated on the other (100 + 100): TPR 1, FPR 0, and the
    # one-sided exact bounds are alpha^(1/100) and 1 - alpha^(1/100), alpha = 0.025 each.
    half, alpha = n // 2, (1 - confidence) / 2
    tpr_lo, fpr_hi = alpha ** (1 / half), 1 - alpha ** (1 / half)
    assert (result.tpr, result.fpr) == (1.0, 0.0)
    assert result.auc == 1.0
    assert result.epsilon_lower_bound == pytest.approx(math.log((tpr_lo - delta) / fpr_hi), rel=1e-9)


def test_same_distribution_gives_no_bound():
    rng = np.random.default_rng(1)
    result = audit_scores("t", rng.normal(size=500), rng.normal(size=500), delta=1e-5)
    assert abs(result.auc - 0.5) < 0.05
    assert result.epsilon_lower_bound < 0.3


def _recipe(**overrides) -> Recipe:
    base = dict(name="memo", train_data="synthpose:private-train:16", val_data=None, strategy="scratch",
                epochs=30, batch_size=8, lr=3e-3, warmup_steps=2, seed=0,
                augment={"flip": 0.0, "scale": 0.0, "rotation": 0.0},
                model={"input_size": [64, 64], "norm": "group-norm"})
    return Recipe.from_dict({**base, **overrides})


@pytest.mark.slow
def test_audit_tells_a_memorising_model_from_one_that_cannot(tmp_path, capsys):
    memorised = train(_recipe(), tmp_path / "memorised", progress_bar=False)
    untouched = train(_recipe(epochs=1, lr=1e-12), tmp_path / "untouched", progress_bar=False)
    data = ["--members", "synthpose:private-train:16", "--non-members", "synthpose:private-test:16"]

    capsys.readouterr()
    # Both in one call: one JSON line each, the crops prepared once.
    assert main(["audit", str(memorised), str(untouched), *data, "--reference", "none", "--json"]) == 0
    reports = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["checkpoint"] for r in reports] == [str(memorised), str(untouched)]
    seen, unseen = (r["attacks"][0] for r in reports)
    assert seen["auc"] > 0.9, seen
    assert seen["epsilon_lower_bound"] > 0.3, seen
    assert abs(unseen["auc"] - 0.5) < 0.3, unseen
    assert unseen["epsilon_lower_bound"] == 0.0, unseen

    # The same memorising weights under a card claiming epsilon 0.01: the audit refuses the claim.
    config_file = memorised / "config.json"
    config = json.loads(config_file.read_text())
    config["privacy"] = {"epsilon": 0.01, "delta": 1e-5}
    config_file.write_text(json.dumps(config))
    assert main(["audit", str(memorised), *data, "--reference", "none"]) == 3
    assert "exceeds the card's epsilon 0.01" in capsys.readouterr().err


def test_audit_refuses_overlapping_sets(tmp_path, capsys):
    ckpt = train(_recipe(epochs=1, train_data="synthpose:private-train:4", batch_size=4),
                 tmp_path / "c", progress_bar=False)
    assert main(["audit", str(ckpt), "--members", "synthpose:private-train:8",
                 "--non-members", "synthpose:private-train:8", "--reference", "none"]) == 2
    assert "share 8 images" in capsys.readouterr().err


def test_audit_rejects_a_path_that_is_not_data(tmp_path, capsys):
    ckpt = train(_recipe(epochs=1, train_data="synthpose:private-train:4", batch_size=4),
                 tmp_path / "c", progress_bar=False)
    assert main(["audit", str(ckpt), "--members", str(tmp_path / "nope"),
                 "--non-members", "synthpose:private-test:8"]) == 2
    assert "neither a data spec" in capsys.readouterr().err


@pytest.mark.parametrize("extra,message", [
    (["--members", "synthpose:private-train:3", "--non-members", "synthpose:private-test:8"], "at least 4"),
    (["--members", "synthpose:private-train:8", "--non-members", "synthpose:private-test:2"], "at least 4"),
    (["--members", "synthpose:private-train:8", "--non-members", "synthpose:private-test:8", "--batch-size", "0"],
     "--batch-size"),
    (["--members", "synthpose:private-train:8", "--non-members", "synthpose:private-test:8", "--batch-size", "-4"],
     "--batch-size"),
])
def test_audit_refuses_too_few_people_or_a_bad_batch_size_in_one_line(tiny_checkpoint, capsys, extra, message):
    assert main(["audit", str(tiny_checkpoint), "--reference", "none", *extra]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dp-pose audit: error: ") and message in lines[0]
    assert captured.out == ""


def test_an_onnx_model_scores_each_person_with_the_loss_of_its_weights(tiny_checkpoint, tiny_export):
    model, _ = load_model(tiny_checkpoint)
    onnx = OnnxModel(tiny_export / "model.onnx")
    assert tuple(onnx.input_size) == tuple(model.config.input_size) and onnx.split_ratio == model.config.split_ratio
    batches = crop_batches(load_dataset("synthpose:private-test:10"), onnx.input_size, onnx.split_ratio, batch_size=4)
    from_torch = batch_losses(torch_forward(model), batches)
    from_onnx = batch_losses(onnx_forward(onnx), batches)
    assert from_onnx.shape == (10,) and np.ptp(from_torch) > 1e-3  # people differ: the comparison means something
    np.testing.assert_allclose(from_onnx, from_torch, rtol=1e-4, atol=1e-5)


def test_audit_attacks_an_onnx_only_release_under_its_cards_claim(tiny_checkpoint, tiny_export, capsys):
    data = ["--members", "synthpose:private-train:8", "--non-members", "synthpose:private-test:8"]
    capsys.readouterr()
    assert main(["audit", str(tiny_checkpoint), str(tiny_export), *data, "--reference", "none", "--json"]) == 0
    weights, release = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert release["checkpoint"] == str(tiny_export) and release["method"] == weights["method"] == "non-private"
    assert release["card_epsilon"] == weights["card_epsilon"] == "inf"
    for a, b in zip(weights["attacks"], release["attacks"]):  # the same people scored by the same model
        assert a["auc"] == pytest.approx(b["auc"], abs=1e-9) and a["name"] == b["name"]

    # The export as the reference for its own weights: the calibrated scores are ~0, no attack can win.
    assert main(["audit", str(tiny_checkpoint), *data, "--reference", str(tiny_export), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["reference"] == str(tiny_export) and report["attacks"][1]["name"] == "loss vs reference"
    assert report["attacks"][1]["epsilon_lower_bound"] == 0.0


def test_audit_runs_the_embedded_default_on_real_people(capsys):
    """The shipped file under its card's epsilon (these people are not its members: the run, not the verdict)."""
    capsys.readouterr()
    assert main(["audit", "default", *REAL_PEOPLE, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    card = default_card()
    assert report["card_epsilon"] == card.privacy.epsilon and report["method"] == card.privacy.method
    assert report["delta"] == card.privacy.delta and report["people"][0] == 5 and report["people"][1] >= 4
    assert report["reference"] is None and [a["name"] for a in report["attacks"]] == ["loss threshold"]


def test_a_reference_of_another_input_size_is_one_line(tiny_export, capsys):
    assert main(["audit", "default", *REAL_PEOPLE, "--reference", str(tiny_export)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dp-pose audit: error: ") and "needs the same crops" in err[0]
