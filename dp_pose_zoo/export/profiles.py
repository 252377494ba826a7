"""Edge-target quantization profiles: small YAML files in the repository's ``export/profiles/``.

A profile names everything ``onnxruntime.quantization.quantize_static`` is
told (types, per-channel, reduce-range, calibration, op types quantized or
kept in float) and one line on when to pick it, so the choice is data, not code.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RecipeError
from ..yaml_mapping import read_yaml_mapping

# The profiles ship beside the package in a source checkout; DP_POSE_PROFILES points elsewhere.
PROFILE_DIR = Path(os.environ.get("DP_POSE_PROFILES", Path(__file__).resolve().parents[2] / "export" / "profiles"))
DEFAULT_PROFILE = "x86-vnni"
_TYPES = ("QUInt8", "QInt8")
_METHODS = ("MinMax", "Entropy", "Percentile")


@dataclass(frozen=True)
class QuantProfile:
    """How to quantize for one edge target (see ``export/profiles/*.yaml``)."""

    name: str
    pick_when: str
    quant_format: str = "QDQ"
    activation_type: str = "QUInt8"
    weight_type: str = "QInt8"
    per_channel: bool = True
    reduce_range: bool = False
    calibrate_method: str = "MinMax"
    calibration_size: int = 128
    op_types_to_quantize: tuple[str, ...] = ("Conv", "MatMul", "Gemm")
    matmul_const_b_only: bool = True
    keep_float_ops: tuple[str, ...] = ("LayerNormalization", "Softmax")
    # Op types whose outputs stay float: ORT then fuses DQ -> MatMul into MatMulIntegerToFloat and the
    # float graph after it (bias + GELU fusions) is left intact, instead of a Q/DQ pair per output.
    float_output_ops: tuple[str, ...] = ()
    nodes_to_exclude: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self):
        for key in ("op_types_to_quantize", "keep_float_ops", "float_output_ops", "nodes_to_exclude"):
            object.__setattr__(self, key, tuple(getattr(self, key) or ()))
        if self.quant_format != "QDQ":
            raise RecipeError(f"profile {self.name}: quant_format must be QDQ (static), got {self.quant_format!r}")
        for key in ("activation_type", "weight_type"):
            if getattr(self, key) not in _TYPES:
                raise RecipeError(f"profile {self.name}: {key} must be one of {_TYPES}, got {getattr(self, key)!r}")
        if self.calibrate_method not in _METHODS:
            raise RecipeError(f"profile {self.name}: calibrate_method must be one of {_METHODS}")
        if int(self.calibration_size) < 1:
            raise RecipeError(f"profile {self.name}: calibration_size must be at least 1")
        both = set(self.op_types_to_quantize) & set(self.keep_float_ops)
        if both:
            raise RecipeError(f"profile {self.name}: {sorted(both)} are both quantized and kept in float")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def available_profiles(directory: Path = PROFILE_DIR) -> list[str]:
    """Names of the profiles in ``directory``."""
    return sorted(p.stem for p in Path(directory).glob("*.yaml"))


def load_profile(name_or_path: str | os.PathLike, *, directory: Path = PROFILE_DIR) -> QuantProfile:
    """A profile by name (``x86-vnni``) or by the path of a YAML file; unknown keys are refused."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = Path(directory) / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(available_profiles(directory)) or f"none found in {directory}"
        raise RecipeError(f"unknown export profile {str(name_or_path)!r}; known: {known}")
    data = read_yaml_mapping(path, "profile")
    data.setdefault("name", path.stem)
    known = {f.name for f in dataclasses.fields(QuantProfile)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RecipeError(f"profile {path}: unknown key(s) {unknown}; known: {sorted(known)}")
    if "pick_when" not in data:
        raise RecipeError(f"profile {path} lacks pick_when (one line on when to choose it)")
    return QuantProfile(**data)
