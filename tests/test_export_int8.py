"""``dp-pose export MODEL --int8`` from an ONNX model, without torch; each export path with its extra alone.

The children block every package their extra does not list (tests/_blocked_imports.py), as a box
with only ``pip install "dp-pose-zoo[quantize]"`` (or ``[export]``) would be.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _blocked_imports import blocking_prelude  # noqa: E402
from _infer_fixtures import run_cli, tiny_export, tiny_onnx  # noqa: E402,F401

ROOT = Path(__file__).parent.parent
COCO_DIR = Path(__file__).parent / "data" / "coco-sample"
QUICK = ["--parity-data", str(COCO_DIR), "--parity-size", "4", "--calibration", str(COCO_DIR),
         "--eval-data", "synthpose:private-test:8"]
IMPORT_NAMES = {"opencv-python-headless": "cv2", "huggingface-hub": "huggingface_hub", "pyyaml": "yaml",
                "onnxruntime": "onnxruntime", "opacus": "opacus", "scipy": "scipy", "torch": "torch",
                "torchvision": "torchvision", "timm": "timm", "safetensors": "safetensors", "onnx": "onnx",
                "gradio": "gradio", "matplotlib": "matplotlib", "numpy": "numpy", "tqdm": "tqdm",
                "cryptography": "cryptography"}


def _extra_packages(extra: str | None) -> set[str]:
    """Import names of what ``pip install dp-pose-zoo[extra]`` installs, read from pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"]) + (project["optional-dependencies"][extra] if extra else [])
    names = {re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].strip().lower() for spec in specs}
    return {IMPORT_NAMES[n] for n in names if not n.startswith("dp-pose-zoo")}


def _blocked_beyond(extra: str | None) -> tuple[str, ...]:
    """Every package some extra installs that ``extra`` (with the base) does not."""
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    everything = set().union(*(_extra_packages(name) for name in optional if name != "dev"))
    return tuple(sorted(everything - _extra_packages(extra)))


def _run_cli_child(extra: str | None, argv: list[str]) -> subprocess.CompletedProcess:
    code = blocking_prelude(_blocked_beyond(extra)) + (
        "import json, sys\n"
        "from dp_pose_zoo.cli import main\n"
        "status = main(sys.argv[1:])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED)\n"
        "print(json.dumps({'status': status, 'heavy': heavy}))\n")
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=600)


def _child_result(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_extras_say_what_each_export_path_needs():
    assert {"onnx", "onnxruntime"} <= _extra_packages("quantize")
    assert not {"torch", "timm", "opacus"} & _extra_packages("quantize")
    assert {"torch", "timm", "onnx", "safetensors"} <= _extra_packages("export")
    assert {"torch", "timm", "safetensors", "gradio"} <= set(_blocked_beyond("quantize"))


@pytest.fixture(scope="module")
def quantized(tiny_export, tmp_path_factory):
    """``dp-pose export EXPORT_FOLDER --int8`` run where only the [quantize] extra is installed."""
    out = tmp_path_factory.mktemp("int8") / "edge"
    result = _child_result(_run_cli_child("quantize", ["export", str(tiny_export), "--int8", "--out", str(out),
                                                       *QUICK, "--json"]))
    assert result["status"] == 0
    return out, result


def test_int8_from_an_onnx_model_imports_no_torch(quantized):
    out, result = quantized
    assert result["heavy"] == []
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "model.int8.onnx", "model.onnx", "parity.json"]


def test_the_int8_model_carries_the_fp32_privacy_claim_and_runs_verified(quantized, tiny_export):
    from dp_pose_zoo.runtime.pretrained import from_pretrained

    out, _ = quantized
    fp32 = from_pretrained(tiny_export)
    int8 = from_pretrained(out, precision="int8")  # card, hashes and metadata checked as for any release
    assert int8.metadata["privacy"] == fp32.metadata["privacy"]
    assert int8.metadata["weights_sha256"] == fp32.metadata["weights_sha256"] == int8.card.weights_sha256
    assert int8.metadata["precision"] == "int8"
    quant = int8.metadata["quantization"]
    assert quant["calibration"]["data"] == str(COCO_DIR) and quant["quantized"]
    assert (out / "model.onnx").read_bytes() == (tiny_export / "model.onnx").read_bytes()
    report = json.loads((out / "parity.json").read_text())
    assert report["int8"]["file"] == "model.int8.onnx" and "mean_change" in report["int8"]["pckh"]
    assert report["pass"] == report["int8"]["pckh"]["pass"]


def test_export_of_a_checkpoint_needs_only_the_export_extra(tiny_checkpoint, tmp_path):
    out = tmp_path / "onnx"
    result = _child_result(_run_cli_child("export", ["export", str(tiny_checkpoint), "--out", str(out),
                                                     "--parity-data", str(COCO_DIR), "--parity-size", "4"]))
    assert result["status"] == 0 and result["heavy"] == []
    assert (out / "model.onnx").is_file()


def test_an_onnx_model_can_be_quantized_not_exported_again(tiny_export, tmp_path, capsys):
    assert run_cli(["export", str(tiny_export), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "needs a checkpoint with weights" in err and "--int8" in err
    assert not (tmp_path / "x").exists()


def test_a_tampered_onnx_is_refused_and_nothing_is_written(tiny_export, tmp_path, capsys):
    """The card's files map names the ONNX's sha256: a changed file is refused before quantizing."""
    release = tmp_path / "release"
    shutil.copytree(tiny_export, release)
    card = (release / "README.md").read_text()
    digest = hashlib.sha256((release / "model.onnx").read_bytes()).hexdigest()
    size = (release / "model.onnx").stat().st_size
    files = f"files:\n  model.onnx:\n    sha256: {digest}\n    size: {size}\n"
    (release / "README.md").write_text(card.replace("\n---\n", f"\n{files}---\n", 1))
    with open(release / "model.onnx", "ab") as f:
        f.write(b"\0")
    assert run_cli(["export", str(release), "--int8", "--out", str(tmp_path / "out"), *QUICK]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not match the sha256" in err
    assert not (tmp_path / "out").exists()
