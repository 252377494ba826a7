"""INT8 variants of one exported model against its fp32 ONNX, in one run (issue 5's 2x goal).

The shipped static QDQ model (``model.int8.onnx`` from ``dp-pose export --int8``) against
alternatives built here: the shipped recipe with the convolutions left float, and with attention's
activation x activation MatMuls quantized too; dynamic quantization of the weight MatMuls; static
quantization in ORT's QOperator format (QLinearConv / QLinearMatMul instead of Q/DQ pairs). Median
ms per crop at batch 1 and 8, the engines taking turns call by call so load changes hit all alike
(their thread pools do not spin between calls).

    python benchmarks/int8_variants.py runs/default_full_dpsgd_eps1/onnx --threads 2
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from dp_pose_zoo.export.profiles import load_profile
from dp_pose_zoo.export.quantize import CropReader, activation_matmuls, quantize_int8


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("onnx_dir", type=Path, help="an export folder with model.onnx and model.int8.onnx")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    fp32 = args.onnx_dir / "model.onnx"
    variants = {"fp32": fp32, "static QDQ (shipped)": args.onnx_dir / "model.int8.onnx"}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        model = onnx.load(str(pre))
        height, width = (d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[2:])
        attention = activation_matmuls(model)  # activation x activation MatMuls stay float in all variants
        quantize_dynamic(str(pre), f"{tmp}/dynamic.onnx", op_types_to_quantize=["MatMul"],
                         weight_type=QuantType.QInt8, nodes_to_exclude=attention,
                         extra_options={"MatMulConstBOnly": True})
        variants["dynamic MatMul"] = Path(tmp) / "dynamic.onnx"
        # Calibration on noise crops: speed does not depend on the ranges found.
        crops = rng.normal(size=(32, 3, height, width)).astype(np.float32)
        shipped = load_profile("x86-vnni")
        for name, change in (("QDQ, convs float", {"op_types_to_quantize": ("MatMul",)}),
                             ("QDQ + attention MatMuls", {"matmul_const_b_only": False})):
            path = Path(tmp) / f"{len(variants)}.onnx"
            quantize_int8(fp32, path, crops=crops, profile=dataclasses.replace(shipped, **change))
            variants[name] = path
        quantize_static(str(pre), f"{tmp}/qoperator.onnx", CropReader(model.graph.input[0].name, crops),
                        quant_format=QuantFormat.QOperator, op_types_to_quantize=["Conv", "MatMul"],
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=attention, calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"MatMulConstBOnly": True})
        variants["static QOperator"] = Path(tmp) / "qoperator.onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        # Taking turns call by call, a session whose idle pool spins would steal the cores from the next.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sessions = {k: ort.InferenceSession(str(v), options, providers=["CPUExecutionProvider"])
                    for k, v in variants.items()}
        print(f"# {args.onnx_dir}, input {height}x{width}, {args.threads} threads, load {os.getloadavg()[0]:.2f}")
        for batch, calls in ((1, 15), (8, 6)):
            x = rng.normal(size=(batch, 3, height, width)).astype(np.float32)
            times = {k: [] for k in sessions}
            for s in sessions.values():
                s.run(None, {s.get_inputs()[0].name: x})  # warm-up
            for _ in range(calls):
                for k, s in sessions.items():
                    t = time.perf_counter()
                    s.run(None, {s.get_inputs()[0].name: x})
                    times[k].append(time.perf_counter() - t)
            med = {k: 1000 * float(np.median(v)) / batch for k, v in times.items()}
            for k, v in med.items():
                print(f"batch {batch}  {k:24s} {v:7.2f} ms/crop   {med['fp32'] / v:.2f}x fp32")
        print(f"# load at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
