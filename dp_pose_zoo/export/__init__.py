"""ONNX export, INT8 quantization and parity checks.

A checkpoint's export traces the torch model (the ``[export]`` extra: torch,
timm, onnx); quantizing an ONNX model to INT8 needs only onnx and onnxruntime
(the ``[quantize]`` extra): importing this package pulls neither torch nor
onnx, the entry points below ask for what they need. Exported models run on
the torch-free :mod:`dp_pose_zoo.runtime`.
"""

from .profiles import QuantProfile, available_profiles, load_profile

_ON_TORCH = ("ExportResult", "export_checkpoint", "export_onnx")  # .onnx_export: the [export] extra


def __getattr__(name: str):
    if name in _ON_TORCH:
        from .._deps import require

        for package in ("torch", "timm", "onnx"):
            require(package, "export")
        from . import onnx_export

        return getattr(onnx_export, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ExportResult", "QuantProfile", "available_profiles", "export_checkpoint", "export_onnx", "load_profile"]
