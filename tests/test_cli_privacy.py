"""``dp-pose privacy``: planning a run from the command line."""

from __future__ import annotations

import argparse
import json
import math

import pytest

from dp_pose_zoo.commands import privacy
from dp_pose_zoo.errors import PrivacyError
from dp_pose_zoo.training.accounting import epsilon_for


def run_privacy(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dp-pose")
    sub = parser.add_subparsers(dest="command", required=True)
    privacy.add_parser(sub)
    args = parser.parse_args(["privacy", *argv])
    return args.func(args)


def as_json(capsys, argv: list[str]) -> dict:
    assert run_privacy([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_epsilon_mode_human(capsys):
    assert run_privacy(["--sample-rate", "0.02", "--noise-multiplier", "1.1", "--steps", "300",
                        "--delta", "1e-5", "--accountant", "rdp"]) == 0
    out = capsys.readouterr().out
    eps = epsilon_for(noise_multiplier=1.1, sample_rate=0.02, steps=300, delta=1e-5, accountant="rdp")
    line = next(line for line in out.splitlines() if line.startswith("epsilon"))
    shown = float(line.split()[1])
    assert eps <= shown <= eps * 1.001  # rounded up, 4 significant digits
    for key in ("accountant", "sample rate", "steps", "delta", "noise multiplier"):
        assert key in out


def test_epsilon_mode_json_matches(capsys):
    r = as_json(capsys, ["--sample-rate", "0.02", "--noise-multiplier", "1.1", "--steps", "300", "--delta", "1e-5"])
    assert r["epsilon"] == epsilon_for(noise_multiplier=1.1, sample_rate=0.02, steps=300, delta=1e-5)
    assert r["accountant"] == "prv-rel" and r["steps"] == 300


def test_accountant_choices_are_the_accountants_default_first():
    """The torch-free CLI spells the names out; they must be training.accounting's, with its default."""
    from dp_pose_zoo.training import accounting
    from dp_pose_zoo.training.config import Recipe

    assert privacy.ACCOUNTANT_CHOICES == accounting.ACCOUNTANTS
    assert privacy.ACCOUNTANT_CHOICES[0] == accounting.DEFAULT_ACCOUNTANT == Recipe(name="x", train_data="y").accountant


@pytest.mark.parametrize("accountant", ["prv", "prv-rel"])
def test_each_prv_is_reported_under_its_name(capsys, accountant):
    argv = ["--sample-rate", "0.02", "--noise-multiplier", "3.0", "--steps", "300", "--delta", "1e-5"]
    r = as_json(capsys, [*argv, "--accountant", accountant])
    assert r["accountant"] == accountant
    assert r["epsilon"] == epsilon_for(noise_multiplier=3.0, sample_rate=0.02, steps=300, delta=1e-5,
                                       accountant=accountant)


def test_noise_mode(capsys):
    r = as_json(capsys, ["--epsilon", "3", "--delta", "1e-5", "--sample-rate", "0.02", "--steps", "300",
                         "--accountant", "rdp"])
    assert r["mode"] == "noise"
    assert 0.97 * 3 <= r["epsilon"] <= 3
    assert r["epsilon"] == epsilon_for(noise_multiplier=r["noise_multiplier"], sample_rate=0.02, steps=300,
                                       delta=1e-5, accountant="rdp")


def test_epochs_and_dataset_size(capsys):
    r = as_json(capsys, ["--noise-multiplier", "1.0", "--delta", "1e-5", "--dataset-size", "20000",
                         "--batch-size", "256", "--epochs", "2", "--accountant", "rdp"])
    assert r["sample_rate"] == 256 / 20000
    assert r["steps"] == math.ceil(2 * 20000 / 256)  # 157
    r = as_json(capsys, ["--noise-multiplier", "1.0", "--delta", "1e-5", "--sample-rate", "0.1", "--epochs", "3",
                         "--accountant", "rdp"])
    assert r["steps"] == 30  # exact, not ceil(30.000000000000004)


def test_rounding_up_display():
    assert privacy.ceil_sig(1.23401) == "1.235"
    assert privacy.ceil_sig(2.0) == "2.000"
    assert float(privacy.ceil_sig(0.1 + 0.2)) >= 0.1 + 0.2


@pytest.mark.parametrize("argv,match", [
    (["--sample-rate", "0.01", "--steps", "10", "--delta", "1e-5"], "exactly one of --noise-multiplier"),
    (["--sample-rate", "0.01", "--steps", "10", "--delta", "1e-5", "--epsilon", "1", "--noise-multiplier", "1"],
     "exactly one of --noise-multiplier"),
    (["--noise-multiplier", "1", "--delta", "1e-3", "--dataset-size", "1000", "--batch-size", "10", "--steps", "5"],
     "N=1000"),
    (["--noise-multiplier", "1", "--delta", "1e-5", "--sample-rate", "0.01"], "--steps or --epochs"),
    (["--noise-multiplier", "1", "--delta", "1e-5", "--sample-rate", "2", "--steps", "5"], "sample_rate=2.0"),
    (["--noise-multiplier", "1", "--delta", "1e-5", "--batch-size", "5", "--steps", "5"], "go together"),
])
def test_bad_inputs_raise(argv, match):
    with pytest.raises(PrivacyError, match=match):
        run_privacy(argv)


@pytest.mark.parametrize("argv", [
    ["--sample-rate", "0.01", "--steps", "10", "--delta", "1e-5"],
    ["--sample-rate", "0.01", "--steps", "10", "--delta", "1e-5", "--epsilon", "1", "--noise-multiplier", "1"],
    ["--noise-multiplier", "1", "--delta", "1e-3", "--dataset-size", "1000", "--batch-size", "10", "--steps", "5"],
])
def test_through_cli_main_exit_2_one_line(capsys, argv):
    from dp_pose_zoo import cli

    assert cli.main(["privacy", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("dp-pose privacy: error: ")


def test_through_cli_main_ok(capsys):
    from dp_pose_zoo import cli

    assert cli.main(["privacy", "--sample-rate", "0.02", "--noise-multiplier", "1.1", "--steps", "300",
                     "--delta", "1e-5", "--accountant", "rdp", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 300


@pytest.mark.parametrize("steps", ["1000000", "1000000000"])
def test_prv_beyond_its_memory_is_refused_in_one_line_naming_rdp(capsys, steps):
    from dp_pose_zoo import cli

    argv = ["--noise-multiplier", "1.0", "--steps", steps]
    assert cli.main(["privacy", "--sample-rate", "0.01", "--delta", "1e-5", *argv]) == 2  # a MemoryError before
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("dp-pose privacy: error: ")
    assert "--accountant rdp" in err
    # RDP needs no grid: the same history is computed.
    assert cli.main(["privacy", "--sample-rate", "0.01", "--delta", "1e-5", *argv, "--accountant", "rdp"]) == 0
