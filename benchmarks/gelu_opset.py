"""INT8 speed of one model exported at opset 17 and at opset 20, in one run.

At opset 17 GELU is an erf chain; after a quantized convolution the INT8 graph
feeds that chain from two DequantizeLinear nodes, which ORT no longer fuses
into one Gelu kernel. Opset 20 has a Gelu node. This matters for frozen-BN
models, whose MBConv convolutions feed GELU directly (GroupNorm models put a
float normalisation in between). The fp32 graphs run the same kernels.

The four models take turns in blocks of calls (a block: 3 warm-up calls, then
``--repeats`` timed ones), three rounds; the median block is reported.

    python benchmarks/gelu_opset.py [--checkpoint DIR] [--input 256x192] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np

from dp_pose_zoo.export.onnx_export import export_onnx
from dp_pose_zoo.export.profiles import load_profile
from dp_pose_zoo.export.quantize import quantize_int8
from dp_pose_zoo.runtime.onnx_model import open_session
from export_speed import benchmark_crops, benchmark_model, cpu_flags, median_ms


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="a checkpoint directory (default: a fresh frozen-BN model)")
    p.add_argument("--input", default="256x192", help="HxW for a fresh model (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()
    model = benchmark_model(args.checkpoint, args.input)
    size = model.config.input_size
    crops, calib = benchmark_crops(size)
    print(f"# CPU: {cpu_flags()}; input {size[0]}x{size[1]}, norm {model.config.norm}, {args.threads} threads, "
          f"load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        sessions = {}
        for opset in (17, 20):
            fp32 = export_onnx(model, Path(tmp) / f"opset{opset}.onnx", opset=opset)
            int8 = Path(tmp) / f"opset{opset}.int8.onnx"
            quantize_int8(fp32, int8, crops=calib, profile=load_profile("x86-vnni"))
            sessions[f"fp32 opset {opset}"] = open_session(fp32, threads=args.threads)
            sessions[f"INT8 opset {opset}"] = open_session(int8, threads=args.threads)
        for batch_size in (1, 8):
            feed = {"input": np.ascontiguousarray(crops[:batch_size])}
            blocks = {name: [] for name in sessions}
            for _ in range(3):
                for name, session in sessions.items():
                    blocks[name].append(median_ms(lambda: session.run(None, feed), args.repeats) / batch_size)
            ms = {name: statistics.median(v) for name, v in blocks.items()}
            for name, v in ms.items():
                fp32_name = "fp32 " + name.split(" ", 1)[1]
                print(f"batch {batch_size}  {name:14s} {v:7.2f} ms/crop   {ms[fp32_name] / v:.2f}x its fp32")
            print(f"batch {batch_size}  INT8 opset 20 is {ms['INT8 opset 17'] / ms['INT8 opset 20']:.2f}x "
                  f"INT8 opset 17")
    print(f"# load at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
