"""Crop pixels to model input, shared by training and the ONNX runtime."""

from __future__ import annotations

import numpy as np

# ImageNet statistics, in RGB order, as timm's TinyViT expects.
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255.0
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255.0


def normalize_crop(crop_bgr: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` BGR uint8 crop(s) to ``(3, H, W)`` float32 RGB input (batched if 4-D)."""
    rgb = np.asarray(crop_bgr)[..., ::-1].astype(np.float32)
    out = (rgb - MEAN) / STD
    return np.ascontiguousarray(np.moveaxis(out, -1, -3))
