import json
import subprocess
import sys
from pathlib import Path

import pytest

from dp_pose_zoo.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_console_script_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "dp_pose_zoo", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("train", "eval", "synth"):
        assert command in out


@pytest.mark.parametrize("command", ["train", "eval", "synth"])
def test_each_subcommand_has_help_with_examples(capsys, command):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_synth_writes_a_split_that_eval_reads_as_mpii(capsys, tmp_path, tiny_checkpoint):
    code, out, _ = run(capsys, "synth", "--out", str(tmp_path / "s"), "--n", "6", "--domain", "public", "--seed", "5")
    assert code == 0 and "wrote 6 public people" in out
    records = json.loads((tmp_path / "s" / "annotations" / "mpii_train.json").read_text())
    assert len(records) == 6 and len(list((tmp_path / "s" / "images").iterdir())) == 6
    spec = f"mpii:{tmp_path / 's' / 'annotations' / 'mpii_train.json'}"
    code, out, _ = run(capsys, "eval", str(tiny_checkpoint), "--data", spec, "--json")
    assert code == 0
    result = json.loads(out)
    assert result["people"] == 6 and set(result["pckh"]) == {
        "Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean@0.1", "Limbs", "Limbs@0.1"}
    assert result["people_without_head_box"] == 0


def test_eval_prints_the_paper_table(capsys, tiny_checkpoint):
    code, out, _ = run(capsys, "eval", str(tiny_checkpoint), "--data", "synthpose:private-test:8")
    assert code == 0
    header = next(line for line in out.splitlines() if "Head" in line)
    cols = header.split()
    assert cols[cols.index("Head"):] == ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean@0.1"]


def test_eval_prints_the_limb_figures_under_the_table_and_in_json(capsys, tiny_checkpoint):
    from dp_pose_zoo.datasets import load_dataset
    from dp_pose_zoo.metrics import limb_pckh
    from dp_pose_zoo.training.checkpoint import load_model
    from dp_pose_zoo.training.evaluate import predict

    spec = "synthpose:private-test:12"
    code, out, _ = run(capsys, "eval", str(tiny_checkpoint), "--data", spec)
    assert code == 0
    lines = out.strip().splitlines()
    assert "Mean@0.1" in lines[-3] and lines[-1].startswith("Limbs (12 joints")
    dataset = load_dataset(spec)
    expected = limb_pckh(predict(load_model(tiny_checkpoint)[0], dataset)[0], *dataset.ground_truth())
    words = lines[-1].split()
    assert words[-4:] == ["PCKh@0.5", f"{expected['Limbs']:.2f}", "PCKh@0.1", f"{expected['Limbs@0.1']:.2f}"]
    code, out, _ = run(capsys, "eval", str(tiny_checkpoint), "--data", spec, "--json")
    pckh = json.loads(out)["pckh"]
    assert pckh["Limbs"] == pytest.approx(expected["Limbs"], abs=1e-4)
    assert pckh["Limbs@0.1"] == pytest.approx(expected["Limbs@0.1"], abs=1e-4)


def test_eval_leaves_out_people_without_a_head_box_and_says_so(capsys, tiny_checkpoint):
    # Real COCO val2017 people: one of the 12 has too few face keypoints to derive a head box.
    sample = Path(__file__).parent / "data" / "coco-sample" / "test_coco.json"
    code, out, err = run(capsys, "eval", str(tiny_checkpoint), "--data", f"coco:{sample}", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["people"] == 11 and result["people_without_head_box"] == 1
    assert "1 of 12 people" in err and "left out" in err
    # MPII's sample has no head boxes at all (they live in the ground-truth .mat): nothing to score.
    mpii = Path(__file__).parent / "data" / "mpii-sample" / "test_mpii.json"
    code, _, err = run(capsys, "eval", str(tiny_checkpoint), "--data", f"mpii:{mpii}")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "none of the 5 people" in lines[0]


@pytest.mark.parametrize("argv,message", [
    (["eval", "/nonexistent/ckpt"], "not a checkpoint directory"),
    (["eval", "{ckpt}", "--data", "imagenet:x"], "unknown data set kind"),
    (["eval", "{ckpt}", "--data", "synthpose:private-nope"], "unknown SynthPose split"),
    (["eval", "{ckpt}", "--data", "mpii:/nonexistent"], "nonexistent"),
    (["eval", "{ckpt}", "--data", "synthpose:private-test:4", "--batch-size", "0"], "--batch-size"),
    (["eval", "{ckpt}", "--data", "synthpose:private-test:4", "--batch-size", "-2"], "--batch-size"),
    (["train"], "needs --recipe"),
    (["train", "--recipe", "/nonexistent.yaml"], "recipe not found"),
    (["train", "--resume", "/nonexistent/run"], "not a checkpoint directory"),
    (["synth", "--out", "{tmp}", "--n", "0"], "n"),
])
def test_bad_input_gives_one_line_and_exit_2(capsys, tmp_path, tiny_checkpoint, argv, message):
    (tmp_path / "keep.txt").write_text("x")  # a non-empty folder synth must refuse
    argv = [a.format(ckpt=tiny_checkpoint, tmp=tmp_path) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dp-pose {argv[0]}: error:") and message in lines[0]
    assert (tmp_path / "keep.txt").read_text() == "x"


def test_train_flags_override_the_recipe(capsys, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train_data: synthpose:private-train:20\nval_data: null\nstrategy: finetune\nepochs: 1\n"
                      "batch_size: 10\nnoise_multiplier: 3.0\nmodel:\n  input_size: [64, 64]\n")
    out = tmp_path / "run"
    code, stdout, _ = run(capsys, "train", "--recipe", str(recipe), "--out", str(out), "-q", "--method", "dp-sgd",
                          "--epsilon", "4", "--delta", "1e-3", "--clip", "0.5", "--lr", "0.002", "--strategy", "head",
                          "--ema-decay", "0.9")
    assert code == 0 and f"checkpoint: {out}" in stdout
    config = json.loads((out / "config.json").read_text())
    r = config["recipe"]
    assert (r["lr"], r["strategy"], r["ema_decay"]) == (0.002, "head", 0.9)
    # --epsilon replaced the recipe's fixed noise multiplier, which was then calibrated to it.
    assert (r["method"], r["epsilon"], r["noise_multiplier"], r["delta"], r["clipping_norm"]) == (
        "dp-sgd", 4.0, None, 1e-3, 0.5)
    assert config["privacy"]["epsilon"] <= 4.0 and config["privacy"]["noise_multiplier"] > 0


def test_train_nproc_relaunches_the_given_argv_without_nproc(monkeypatch):
    """main(argv) is what is relaunched, whatever sys.argv holds, and a value spelled ``train`` stays."""
    from dp_pose_zoo import cli

    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    monkeypatch.setattr(sys, "argv", ["dp-pose", "eval", "elsewhere"])
    argv = ["-v", "train", "--recipe", "train", "--out", "train", "--nproc", "2", "--epochs", "3"]
    assert main(argv) == 0
    (cmd,) = calls
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"] and "--nproc_per_node=2" in cmd
    assert cmd[cmd.index("--nproc_per_node=2") + 1:] == ["-m", "dp_pose_zoo", "-v", "train", "--recipe", "train",
                                                         "--out", "train", "--epochs", "3"]
    assert cli.torchrun_args(["train", "--nproc=4", "--out", "runs/train"]) == ["train", "--out", "runs/train"]
