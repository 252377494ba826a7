"""Inference speed in one run: torch eager vs ORT fp32 vs ORT INT8, same machine, same crops.

    python benchmarks/export_speed.py [--checkpoint DIR] [--input 256x192] [--threads 2] [--profile x86-vnni]
                                      [--keep DIR]

Without ``--checkpoint`` a freshly initialised TinyViT-SimCC is used, its
parameters jittered (see :func:`jitter_`): speed does not depend on the weights,
but a fresh model's many equal tensors would give INT8 a graph no trained
checkpoint gives. The INT8 model is calibrated on SynthPose's public
domain, as ``dp-pose export --int8`` does. Each (engine, batch) runs a few
warm-up calls, then ``--repeats`` timed calls; the median is reported as ms
per crop. The CPU flags and the load average are printed beside the results,
because other processes on a shared machine change them.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from dp_pose_zoo.datasets import load_dataset
from dp_pose_zoo.export.crops import dataset_crops
from dp_pose_zoo.export.onnx_export import export_onnx
from dp_pose_zoo.export.profiles import load_profile
from dp_pose_zoo.export.quantize import quantize_int8
from dp_pose_zoo.runtime.onnx_model import open_session
from dp_pose_zoo.training.model import ModelConfig, TinyViTSimCC

FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "asimd", "asimddp", "i8mm")


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    line = next((ln for ln in text.splitlines() if ln.startswith(("flags", "Features"))), "")
    have = set(line.split(":", 1)[-1].split())
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "")
    return f"{model}; " + " ".join(f for f in FLAGS if f in have)


def jitter_(model: torch.nn.Module, scale: float = 1e-3) -> None:
    """Add small noise to every parameter, in place, so no two parameters are equal.

    A fresh model's LayerNorm and bias tensors are all ones or zeros; the ONNX export
    merges equal initializers, and the INT8 quantizer then takes a merged LayerNorm
    bias for a Conv bias: 40 extra DequantizeLinear nodes run per call (seen at
    256x192), which a trained checkpoint never has.
    """
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p), alpha=scale)


def benchmark_model(checkpoint: str | None, input_size: str) -> TinyViTSimCC:
    """The checkpoint's model, or a fresh jittered one (frozen BN, as ModelConfig's default) at ``input_size``
    ("HxW"); in eval mode."""
    if checkpoint:
        from dp_pose_zoo.training.checkpoint import load_model

        model, _ = load_model(checkpoint)
    else:
        h, w = (int(v) for v in input_size.split("x"))
        torch.manual_seed(0)
        model = TinyViTSimCC(ModelConfig(input_size=(h, w)))
        jitter_(model)
    return model.eval()


def benchmark_crops(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """8 SynthPose private-val crops to time, and 64 public-domain crops to calibrate INT8 on."""
    crops = dataset_crops(load_dataset("synthpose:private-val:8"), size).batch
    calib = dataset_crops(load_dataset("synthpose:public-val:64"), size).batch
    return crops, calib


def median_ms(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a checkpoint directory (default: a fresh model)")
    parser.add_argument("--input", default="256x192", help="HxW for a fresh model (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", default="x86-vnni")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="also keep the two ONNX models in DIR (for benchmarks/int8_profile.py)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model = benchmark_model(args.checkpoint, args.input)
    size = model.config.input_size
    crops, calib = benchmark_crops(size)

    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = export_onnx(model, Path(tmp) / "model.onnx")
        int8_path = Path(tmp) / "model.int8.onnx"
        summary = quantize_int8(fp32_path, int8_path, crops=calib, profile=load_profile(args.profile))
        # Bare sessions (the runtime's own options): no metadata needed to time the graph.
        fp32 = open_session(fp32_path, threads=args.threads)
        int8 = open_session(int8_path, threads=args.threads)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for path in (fp32_path, int8_path):
                shutil.copyfile(path, args.keep / path.name)

        def torch_run(batch):
            with torch.inference_mode():
                model(torch.from_numpy(batch))

        def ort_run(session):
            return lambda batch: session.run(None, {"input": batch})

        engines = {"torch eager": torch_run, "ORT fp32": ort_run(fp32), f"ORT INT8 ({args.profile})": ort_run(int8)}
        results = {}
        for batch_size in (1, 8):
            batch = np.ascontiguousarray(crops[:batch_size])
            repeats = args.repeats if batch_size == 1 else max(5, args.repeats // 4)
            for name, fn in engines.items():
                results[name, batch_size] = median_ms(lambda: fn(batch), repeats) / batch_size

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs visible; CPU: {cpu_flags()}")
    print(f"load average before/after: {LOAD_BEFORE} / {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
          f"{os.getloadavg()[2]:.2f}")
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; input {size[0]}x{size[1]}, "
          f"{args.threads} threads; median of {args.repeats} (batch 1) / {max(5, args.repeats // 4)} (batch 8) calls")
    print(f"INT8 kept in float: {summary['kept_float']}; quantized: {summary['quantized']}")
    print()
    print("| engine | batch 1 ms/crop | batch 8 ms/crop |")
    print("|---|---:|---:|")
    for name in engines:
        print(f"| {name} | {results[name, 1]:.2f} | {results[name, 8]:.2f} |")
    names = list(engines)
    for batch_size in (1, 8):
        t, f, q = (results[n, batch_size] for n in names)
        print(f"batch {batch_size}: ORT fp32 is {t / f:.2f}x torch eager (goal >= 1.6x); "
              f"INT8 is {f / q:.2f}x ORT fp32 (goal >= 2x)")


LOAD_BEFORE = "%.2f %.2f %.2f" % os.getloadavg()

if __name__ == "__main__":
    main()
