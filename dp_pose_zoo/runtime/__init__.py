"""The torch-free runtime: ONNX pose models with their card, run on frames.

Needs numpy, opencv and onnxruntime only (the base install); nothing here may
import torch, timm or opacus, and ``tests/test_torch_free.py`` checks it.
"""

from .metadata import FORMAT_VERSION, METADATA_PREFIX, decode_metadata, encode_metadata
from .onnx_model import OnnxModel
from .pose_estimator import Person, PoseEstimator

__all__ = ["FORMAT_VERSION", "METADATA_PREFIX", "OnnxModel", "Person", "PoseEstimator",
           "decode_metadata", "encode_metadata"]
