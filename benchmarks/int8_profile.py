"""Where the time goes in fp32 and INT8 ONNX: ORT's per-node profiles of both, in one run.

Issue 5 asks for INT8 at 2x ORT fp32. Quantization can only speed up the matrix
work (weight MatMuls, convolutions); this script measures how much of the fp32
time that is, how much faster INT8 does it, and what INT8 adds. Every node's
kernel time (ORT's profiler, same crops, same threads) goes into one group:

    gemm       MatMul/Gemm with a weight operand    | MatMulIntegerToFloat, QLinearMatMul, ...
    attention  activation x activation MatMul (q @ k^T, attn @ v), float in both
    conv       Conv + NCHWc reorders                | QLinearConv
    int8 io    -                                    | Quantize/DequantizeLinear, 8-bit transposes
    float      everything else (LayerNorm, GroupNorm, Softmax, GELU, adds, reshapes, ...)

and prints ceilings for the INT8/fp32 speed-up: with Q/DQ free, and with the
matrix work free (no INT8 kernel can beat zero).

    python benchmarks/int8_profile.py runs/default_full_dpsgd_eps1/onnx --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnxruntime as ort

GROUPS = ("gemm", "attention", "conv", "int8 io", "float")
INT8_GEMM = {"MatMulIntegerToFloat", "QLinearMatMul", "MatMulInteger", "DynamicQuantizeMatMul", "QGemm"}
INT8_CONV = {"QLinearConv", "NhwcQLinearConv"}
FLOAT_CONV = {"Conv", "FusedConv", "NchwcConv", "ReorderInput", "ReorderOutput"}
INT8_IO = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
EIGHT_BIT = ("uint8", "int8")


def group(op: str, args: dict) -> str:
    """The group of one profiled node, from its op type and its inputs' types and shapes."""
    if op in INT8_GEMM:
        return "gemm"
    if op in ("MatMul", "FusedMatMul", "Gemm"):
        # ORT pre-packs a weight B and then lists only A; attention's B is a 4-D activation.
        shapes = [next(iter(t.values())) for t in args["input_type_shape"]]
        return "gemm" if len(shapes) < 2 or len(shapes[1]) == 2 else "attention"
    if op in INT8_CONV or op in FLOAT_CONV:
        return "conv"
    if op in INT8_IO:
        return "int8 io"
    if op == "Transpose" and next(iter(args["input_type_shape"][0])) in EIGHT_BIT:
        return "int8 io"  # layout changes around QLinearConv (ORT runs it channels-last)
    return "float"


def profile(paths: dict[str, Path], batch: np.ndarray, *, threads: int, runs: int) -> dict[str, dict[str, float]]:
    """Per model: the median over ``runs`` calls of each group's kernel time (ms per call), and the wall time.

    The models take turns call by call, so load changes hit both alike; their
    thread pools do not spin between calls (a spinning pool of one session would
    steal the cores from the other's next call).
    """
    with tempfile.TemporaryDirectory() as tmp:
        sessions = {}
        for name, path in paths.items():
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.enable_profiling = True
            options.profile_file_prefix = f"{tmp}/{name}"
            sessions[name] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {sessions["fp32"].get_inputs()[0].name: batch}
        for i in range(3 + runs):  # 3 warm-up calls each, profiled too and left out below
            for session in sessions.values():
                session.run(None, feed)
        return {name: _group_times(json.loads(Path(s.end_profiling()).read_text()), runs)
                for name, s in sessions.items()}


def _group_times(events: list[dict], runs: int) -> dict[str, float]:
    calls = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("name") == "model_run")[-runs:]
    per_run = [defaultdict(float) for _ in calls]
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        i = next((k for k, (start, end) in enumerate(calls) if start <= e["ts"] <= end), None)
        if i is not None:
            per_run[i][group(e["args"]["op_name"], e["args"])] += e["dur"] / 1000
    result = {g: statistics.median(r[g] for r in per_run) for g in GROUPS}
    result["kernels"] = statistics.median(sum(r.values()) for r in per_run)
    result["wall"] = statistics.median((end - start) / 1000 for start, end in calls)
    return result


def report(fp32: dict[str, float], int8: dict[str, float], batch: int) -> list[str]:
    lines = [f"batch {batch}: ms per call (median), share of the fp32 kernel time",
             f"  {'group':10s} {'fp32':>9s} {'INT8':>9s}  {'fp32 share':>10s}  {'fp32/INT8':>9s}"]
    total = fp32["kernels"]
    for g in (*GROUPS, "kernels", "wall"):
        ratio = f"{fp32[g] / int8[g]:9.2f}" if fp32[g] > 0 and int8[g] > 0 else f"{'-':>9s}"
        share = f"{100 * fp32[g] / total:9.1f}%" if g in GROUPS else f"{'':10s}"
        lines.append(f"  {g:10s} {fp32[g]:9.2f} {int8[g]:9.2f}  {share}  {ratio}")
    matrix = fp32["gemm"] + fp32["conv"]
    lines += [
        f"  INT8 / fp32 speed-up, measured: {total / int8['kernels']:.2f}x (kernels), "
        f"{fp32['wall'] / int8['wall']:.2f}x (wall)",
        f"  ceiling with Q/DQ and 8-bit transposes free: {total / (int8['kernels'] - int8['int8 io']):.2f}x",
        f"  ceiling with weight GEMMs and convs free: {total / (total - matrix):.2f}x; "
        f"with attention MatMuls free too: {total / (total - matrix - fp32['attention']):.2f}x",
    ]
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("onnx_dir", type=Path, help="a folder with model.onnx and model.int8.onnx (dp-pose export --int8)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=10, help="timed runs per model and batch (default: %(default)s)")
    args = p.parse_args()
    paths = {name: args.onnx_dir / f for name, f in (("fp32", "model.onnx"), ("int8", "model.int8.onnx"))}
    missing = [str(v) for v in paths.values() if not v.is_file()]
    if missing:
        p.error(f"not found: {', '.join(missing)}")
    probe = ort.InferenceSession(str(paths["fp32"]), providers=["CPUExecutionProvider"])
    height, width = probe.get_inputs()[0].shape[2:]
    rng = np.random.default_rng(0)
    print(f"# {args.onnx_dir}, input {height}x{width}, {args.threads} threads, onnxruntime {ort.__version__}, "
          f"load {os.getloadavg()[0]:.2f}")
    for batch_size in (1, 8):
        batch = rng.normal(size=(batch_size, 3, height, width)).astype(np.float32)
        times = profile(paths, batch, threads=args.threads, runs=args.runs)
        print("\n".join(report(times["fp32"], times["int8"], batch_size)))
    print(f"# load at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
