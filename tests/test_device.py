"""Device and precision selection: what exists is used, what does not is refused before any step."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dp_pose_zoo.errors import RecipeError
from dp_pose_zoo.training import device as dev
from dp_pose_zoo.training.config import Recipe
from dp_pose_zoo.training.trainer import train


def test_auto_picks_what_the_machine_has(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: False)
    assert dev.resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(dev, "_mps_available", lambda: True)
    assert dev.resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dev.resolve_device("auto") == torch.device("cuda")


def test_a_missing_device_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: False)
    with pytest.raises(RecipeError, match="no CUDA GPU"):
        dev.resolve_device("cuda")
    with pytest.raises(RecipeError, match="Metal backend is not available"):
        dev.resolve_device("mps")
    with pytest.raises(RecipeError, match="device must be one of"):
        dev.resolve_device("tpu")


def test_cpu_precision_follows_the_cpu_flags(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n")
    assert dev.cpu_flags(cpuinfo) == {"fpu", "sse", "avx2", "avx512f"}
    monkeypatch.setattr(dev, "cpu_flags", lambda: {"avx2", "avx512f"})
    cpu = torch.device("cpu")
    dev.check_precision("fp32", cpu)
    with pytest.raises(RecipeError, match="no native bf16 arithmetic"):
        dev.check_precision("bf16", cpu)
    with pytest.raises(RecipeError, match="no native fp16 arithmetic"):
        dev.check_precision("fp16", cpu)
    monkeypatch.setattr(dev, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    dev.check_precision("bf16", cpu)
    monkeypatch.setattr(dev, "cpu_flags", lambda: {"amx_bf16", "amx_fp16"})
    dev.check_precision("bf16", cpu)
    dev.check_precision("fp16", cpu)
    with pytest.raises(RecipeError, match="fp16 is not supported for DP runs"):
        dev.check_precision("fp16", cpu, private=True)


def test_gpu_precisions(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    with pytest.raises(RecipeError, match="no bfloat16 support"):
        dev.check_precision("bf16", torch.device("cuda"))
    dev.check_precision("fp16", torch.device("cuda"))
    with pytest.raises(RecipeError, match="not supported on mps"):
        dev.check_precision("bf16", torch.device("mps"))


def test_autocast_only_for_mixed_precision():
    x = torch.randn(2, 4)
    w = torch.randn(4, 3)
    with dev.Precision("cpu", "bf16").autocast():
        assert (x @ w).dtype == torch.bfloat16
    with dev.FP32.autocast():
        assert (x @ w).dtype == torch.float32


def test_recipe_keys_are_checked():
    with pytest.raises(RecipeError, match="precision must be one of"):
        Recipe.from_dict({"name": "r", "precision": "int8"})
    with pytest.raises(RecipeError, match="device must be one of"):
        Recipe.from_dict({"name": "r", "device": "gpu"})


def test_train_refuses_a_missing_device_before_any_step(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    recipe = Recipe.from_dict(dict(name="r", train_data="synthpose:private-train:4", val_data=None,
                                   device="cuda", method="dp-sgd", epsilon=1.0, delta=1e-3))
    with pytest.raises(RecipeError, match="no CUDA GPU"):
        train(recipe, tmp_path / "run", progress_bar=False)
    assert not (tmp_path / "run").exists()  # no folder, no journal: nothing was spent


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CLI on a machine without a GPU")
def test_cli_device_error_is_one_line(tmp_path):
    recipe = Path(__file__).parents[1] / "training" / "recipes" / "demo.yaml"
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "dp_pose_zoo", "train", "--recipe", str(recipe), "--out", str(out),
                             "--device", "cuda", "-q"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "dp-pose train: error: device cuda: no CUDA GPU is visible to torch on this machine "
        "(use --device cpu or auto)"]
    assert not out.exists()
