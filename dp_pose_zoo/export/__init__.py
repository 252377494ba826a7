"""ONNX export, INT8 quantization and parity checks (the ``[export]`` extra: torch + onnx).

Exported models run on the torch-free :mod:`dp_pose_zoo.runtime`.
"""

from .._deps import require

require("torch", "export")
require("onnx", "export")

from .onnx_export import ExportResult, export_checkpoint, export_onnx  # noqa: E402
from .profiles import QuantProfile, available_profiles, load_profile  # noqa: E402

__all__ = ["ExportResult", "QuantProfile", "available_profiles", "export_checkpoint", "export_onnx", "load_profile"]
