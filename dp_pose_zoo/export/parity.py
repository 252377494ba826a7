"""Does the exported model compute what the torch model computes? Numbers for the report.

fp32: ORT vs torch eager on the same real crops -- SimCC logits (close to
float32 rounding) and decoded keypoints in image pixels (bar: 0.5 px).
INT8: its logits and keypoints against ORT fp32, and the PCKh change on a
held-out split (bar: a drop of at most 1.0 point).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..metrics import pckh_table
from ..runtime.onnx_model import OnnxModel
from ..runtime.pose_estimator import decode_to_frame
from .crops import CropSet

if TYPE_CHECKING:  # torch only for the fp32 check: INT8 from an ONNX model runs without it
    import torch

KEYPOINT_BAR_PX = 0.5
LOGIT_BAR_REL = 1e-4  # of the largest logit magnitude: float32 rounding through ~30 layers
PCKH_DROP_BAR = 1.0


def torch_logits(model: "torch.nn.Module", batch: np.ndarray, *,
                 batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """The torch model's SimCC logits for ``batch`` (eval mode)."""
    import torch

    model.eval()
    xs, ys = [], []
    with torch.no_grad():
        for start in range(0, len(batch), batch_size):
            x, y = model(torch.from_numpy(np.ascontiguousarray(batch[start:start + batch_size])))
            xs.append(x.numpy())
            ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)


def onnx_logits(model: OnnxModel, batch: np.ndarray, *, batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """The ONNX model's SimCC logits for ``batch``, run in batches like the torch side."""
    xs, ys = [], []
    for start in range(0, len(batch), batch_size):
        x, y = model.inference(batch[start:start + batch_size])
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def compare(reference: tuple[np.ndarray, np.ndarray], candidate: tuple[np.ndarray, np.ndarray],
            crops: CropSet, split_ratio: float) -> dict:
    """Max abs logit difference and keypoint differences (image pixels) of two models' outputs."""
    logit_diff = max(float(np.abs(a - b).max()) for a, b in zip(reference, candidate))
    scale = max(float(np.abs(a).max()) for a in reference)
    ref_kpts, _ = decode_to_frame(*reference, split_ratio, crops.inverses)
    cand_kpts, _ = decode_to_frame(*candidate, split_ratio, crops.inverses)
    dist = np.linalg.norm(ref_kpts - cand_kpts, axis=-1)
    return {
        "data": crops.source,
        "crops": len(crops),
        "max_abs_logits": logit_diff,
        "max_abs_logit_value": scale,
        "max_keypoint_px": float(dist.max()),
        "mean_keypoint_px": float(dist.mean()),
        "joints_moved": float(np.mean(dist > 0)),
    }


def fp32_parity(model: "torch.nn.Module", onnx_model: OnnxModel, crops: CropSet) -> dict:
    """ORT fp32 vs torch eager on ``crops``, with pass/fail against the bars."""
    report = compare(torch_logits(model, crops.batch), onnx_logits(onnx_model, crops.batch), crops,
                     onnx_model.split_ratio)
    report["bars"] = {"max_keypoint_px": KEYPOINT_BAR_PX, "max_abs_logits": LOGIT_BAR_REL * max(1.0, report[
        "max_abs_logit_value"])}
    report["pass"] = bool(report["max_keypoint_px"] <= KEYPOINT_BAR_PX
                          and report["max_abs_logits"] <= report["bars"]["max_abs_logits"])
    return report


def int8_parity(fp32: OnnxModel, int8: OnnxModel, crops: CropSet) -> dict:
    """INT8 vs fp32 ORT on ``crops`` (informative: INT8 is judged by PCKh)."""
    return compare(onnx_logits(fp32, crops.batch), onnx_logits(int8, crops.batch), crops, fp32.split_ratio)


def predict_frame(model: OnnxModel, crops: CropSet) -> np.ndarray:
    """Keypoints ``(N, 16, 2)`` in image pixels."""
    keypoints, _ = decode_to_frame(*onnx_logits(model, crops.batch), model.split_ratio, crops.inverses)
    return keypoints


def pckh_change(fp32: OnnxModel, int8: OnnxModel, crops: CropSet) -> dict:
    """PCKh tables of both models on annotated ``crops`` and the Mean's change (int8 - fp32, points)."""
    if crops.joints is None:
        raise ValueError("PCKh needs annotated crops")
    tables = {}
    for name, model in (("fp32", fp32), ("int8", int8)):
        table = pckh_table(predict_frame(model, crops), crops.joints, crops.visible, crops.head_boxes)
        tables[name] = {k: (None if math.isnan(v) else round(v, 4)) for k, v in table.items()}
    change = tables["int8"]["Mean"] - tables["fp32"]["Mean"]
    return {"data": crops.source, "people": len(crops), "fp32": tables["fp32"], "int8": tables["int8"],
            "mean_change": round(change, 4), "bar_max_drop": PCKH_DROP_BAR, "pass": bool(-change <= PCKH_DROP_BAR)}
