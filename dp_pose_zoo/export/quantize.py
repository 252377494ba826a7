"""Static INT8 (QDQ) quantization with onnxruntime.quantization, calibrated on real crops.

What quantizes badly stays float: LayerNorm, Softmax, GELU and the attention's
activation-by-activation MatMuls (``MatMulConstBOnly``); only Conv and the
weight MatMuls get INT8. :func:`quantized_summary` reads the result back off
the graph, so the report says what was actually kept, not what was intended.
"""

from __future__ import annotations

import fnmatch
import logging
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

from .profiles import QuantProfile

log = logging.getLogger(__name__)


class CropReader(CalibrationDataReader):
    """Feeds calibration crops ``(N, 3, H, W)`` to ORT's calibrator in batches."""

    def __init__(self, input_name: str, crops: np.ndarray, *, batch_size: int = 8):
        self.input_name = input_name
        self.crops = np.ascontiguousarray(crops, dtype=np.float32)
        self.batch_size = batch_size
        self._start = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._start >= len(self.crops):
            return None
        batch = self.crops[self._start:self._start + self.batch_size]
        self._start += self.batch_size
        return {self.input_name: batch}

    def rewind(self) -> None:
        self._start = 0


def quantize_int8(fp32_path: str | Path, out_path: str | Path, *, crops: np.ndarray,
                  profile: QuantProfile) -> dict:
    """Write the INT8 QDQ model of ``fp32_path`` to ``out_path``; return :func:`quantized_summary`.

    The fp32 model is first pre-processed (ONNX shape inference, graph
    optimisation), as onnxruntime recommends before static quantization.
    Metadata does not survive that reliably: the caller re-adds it.
    """
    with tempfile.TemporaryDirectory(prefix="dp-pose-quant-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        # ORT's symbolic shape inference gives up on TinyViT's window reshapes; ONNX's own
        # shape inference and the graph optimisation are what calibration needs.
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        model = onnx.load(str(pre))
        input_name = model.graph.input[0].name
        excluded = matching_nodes(model, profile.nodes_to_exclude)
        if profile.matmul_const_b_only:  # ORT's own MatMulConstBOnly is not honoured in QDQ mode
            excluded += [n for n in activation_matmuls(model) if n not in excluded]
        extra = {"MatMulConstBOnly": profile.matmul_const_b_only,
                 "OpTypesToExcludeOutputQuantization": list(profile.float_output_ops)}
        quantize_static(
            str(pre), str(out_path), CropReader(input_name, crops),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(profile.op_types_to_quantize),
            per_channel=profile.per_channel,
            reduce_range=profile.reduce_range,
            activation_type=getattr(QuantType, profile.activation_type),
            weight_type=getattr(QuantType, profile.weight_type),
            nodes_to_exclude=excluded,
            calibrate_method=getattr(CalibrationMethod, profile.calibrate_method),
            extra_options=extra,
        )
    summary = quantized_summary(onnx.load(str(out_path)), profile)
    summary["excluded_nodes"] = excluded
    log.info("INT8: quantized %s; kept in float %s", summary["quantized"], summary["kept_float"])
    return summary


def matching_nodes(model: onnx.ModelProto, patterns) -> list[str]:
    """Names of the graph's nodes that match any glob pattern."""
    return [n.name for n in model.graph.node if any(fnmatch.fnmatchcase(n.name, p) for p in patterns)]


def activation_matmuls(model: onnx.ModelProto) -> list[str]:
    """Names of MatMul nodes whose B is not a weight (attention's q @ k^T and attn @ v)."""
    weights = {init.name for init in model.graph.initializer}
    weights |= {out for node in model.graph.node if node.op_type == "Constant" for out in node.output}
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and n.input[1] not in weights]


def quantized_summary(model: onnx.ModelProto, profile: QuantProfile) -> dict:
    """Counts by op type of compute nodes that run in INT8 (fed by DequantizeLinear) or stay float."""
    producer = {out: node for node in model.graph.node for out in node.output}
    watched = set(profile.op_types_to_quantize) | set(profile.keep_float_ops)
    quantized, kept = Counter(), Counter()
    for node in model.graph.node:
        if node.op_type not in watched:
            continue
        fed = [producer.get(name) for name in node.input[:2] if name]
        is_q = node.op_type in profile.op_types_to_quantize and all(
            p is not None and p.op_type == "DequantizeLinear" for p in fed)
        (quantized if is_q else kept)[node.op_type] += 1
    return {"quantized": dict(sorted(quantized.items())), "kept_float": dict(sorted(kept.items()))}
