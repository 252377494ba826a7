"""Where training runs and in which precision: ``device: auto|cpu|cuda|mps``, ``precision: fp32|bf16|fp16``.

Mixed precision is autocast around the model's forward pass only: weights,
gradients, the loss, per-sample norms, clipping, noise and the accountant stay
float32. Both are checked before any data is read or any step is journaled,
so a recipe asking for hardware that is not there fails in one line.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import RecipeError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# x86 CPU flags of native bf16 / fp16 arithmetic. Without them autocast still runs, emulated and
# slower than float32, so asking for it is refused rather than silently made slower.
_CPU_FLAGS = {"bf16": ("avx512_bf16", "amx_bf16"), "fp16": ("avx512_fp16", "amx_fp16")}


def resolve_device(name: str) -> torch.device:
    """``auto`` is the first of cuda, mps, cpu that this machine has; a named device must exist."""
    if name not in DEVICES:
        raise RecipeError(f"device must be one of {DEVICES}; got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    elif name == "cuda" and not torch.cuda.is_available():
        raise RecipeError("device cuda: no CUDA GPU is visible to torch on this machine (use --device cpu or auto)")
    elif name == "mps" and not _mps_available():
        raise RecipeError("device mps: Apple's Metal backend is not available here (use --device cpu or auto)")
    return torch.device(name)


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str] | None:
    """The CPU's feature flags (Linux), or None where /proc/cpuinfo does not say."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return None


def check_precision(precision: str, device: torch.device, *, private: bool = False) -> None:
    """Refuse a precision this device cannot run natively (or that a DP run cannot use safely)."""
    if precision not in PRECISIONS:
        raise RecipeError(f"precision must be one of {PRECISIONS}; got {precision!r}")
    if precision == "fp32":
        return
    if precision == "fp16" and private:
        # Per-sample gradients are not loss-scaled; in float16 small ones underflow to zero before clipping.
        raise RecipeError("precision fp16 is not supported for DP runs (per-sample gradients would underflow); "
                          "use bf16 or fp32")
    if device.type == "cuda":
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise RecipeError("precision bf16: this GPU has no bfloat16 support; use fp16 or fp32")
        return
    if device.type == "mps":
        if precision == "bf16":
            raise RecipeError("precision bf16 is not supported on mps; use fp16 or fp32")
        return
    flags = cpu_flags()
    if flags is None:
        native = precision == "bf16" and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    else:
        native = any(flag in flags for flag in _CPU_FLAGS[precision])
    if not native:
        raise RecipeError(f"precision {precision}: this CPU has no native {precision} arithmetic "
                          f"({' or '.join(_CPU_FLAGS[precision])}); use fp32")


@dataclass(frozen=True)
class Precision:
    """The autocast context of a run: ``with precision.autocast(): logits = model(x)``."""

    device_type: str = "cpu"
    name: str = "fp32"

    @property
    def dtype(self) -> torch.dtype | None:
        return _DTYPES[self.name]

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


FP32 = Precision()


def select(device: str, precision: str, *, private: bool) -> tuple[torch.device, Precision]:
    """The run's device and precision, both checked (see module docstring)."""
    dev = resolve_device(device)
    check_precision(precision, dev, private=private)
    return dev, Precision(dev.type, precision)


def to_device(batch: dict[str, torch.Tensor] | None, device: torch.device) -> dict[str, torch.Tensor] | None:
    """A batch's tensors on ``device`` (a CPU batch, or an empty draw's None, as it is)."""
    if batch is None or device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
