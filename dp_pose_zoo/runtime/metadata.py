"""Our keys in an ONNX model's ``metadata_props``: written at export, read at run time.

The exported model carries the card's privacy block so a box that has only the
``.onnx`` can still tell what epsilon it runs. Values are strings (ONNX's
rule); structured ones are JSON with non-finite floats spelled ``"inf"`` /
``"-inf"`` / ``"nan"`` so strict JSON readers on other platforms accept them
(a non-private model's epsilon is infinite).
"""

from __future__ import annotations

import json
import math
from pathlib import PurePath
from typing import Any

import numpy as np

from ..errors import CheckpointError

METADATA_PREFIX = "dp_pose_zoo."
FORMAT_VERSION = 1
# The opset dp-pose export writes. From opset 20 GELU is one ONNX node: between two INT8 convolutions
# the quantizer's Q/DQ pairs then cannot split its erf chain, which ORT would no longer fuse.
DEFAULT_OPSET = 20
# Keys whose values are JSON; the others are plain strings.
_JSON_KEYS = ("privacy", "input_size", "joint_names", "quantization")
_FLOAT_KEYS = ("split_ratio",)
_INT_KEYS = ("format_version",)
REQUIRED_KEYS = ("format_version", "privacy", "input_size", "split_ratio", "joint_names", "weights_sha256")
_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def json_safe(value: Any) -> Any:
    """``value`` for strict JSON: non-finite floats spelled ``"inf"`` / ``"-inf"`` / ``"nan"``, in dicts and lists
    too; numpy values as Python's, paths as text.

    The one spelling of the project's JSON outputs (metadata, ``zoo list``, ``audit``): a non-private
    model's epsilon is ``"inf"`` everywhere.
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, PurePath):
        return str(value)
    return value


def _from_json_safe(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: _from_json_safe(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json_safe(v) for v in value]
    # Only numeric fields may hold a spelled-out non-finite float.
    if isinstance(value, str) and key in {"epsilon", "delta", "noise_multiplier", "clipping_norm", "sample_rate"}:
        return _NON_FINITE.get(value, value)
    return value


def encode_metadata(meta: dict[str, Any]) -> dict[str, str]:
    """Our metadata as prefixed ``metadata_props`` strings."""
    out = {}
    for key, value in meta.items():
        if value is None:
            continue
        if key in _JSON_KEYS:
            text = json.dumps(json_safe(value), sort_keys=True, allow_nan=False)
        else:
            text = str(value)
        out[METADATA_PREFIX + key] = text
    return out


def decode_metadata(props: dict[str, str], *, source: str = "model") -> dict[str, Any]:
    """Our keys of ``props`` (prefix stripped, values typed); ``{}`` when there are none.

    A key of ours that does not parse, or a format newer than this runtime
    reads, is a :class:`CheckpointError`: a model that lies about its privacy
    is worse than one that says nothing.
    """
    ours = {k[len(METADATA_PREFIX):]: v for k, v in props.items() if k.startswith(METADATA_PREFIX)}
    meta: dict[str, Any] = {}
    for key, text in ours.items():
        try:
            if key in _JSON_KEYS:
                meta[key] = _from_json_safe(json.loads(text))
            elif key in _FLOAT_KEYS:
                meta[key] = float(text)
            elif key in _INT_KEYS:
                meta[key] = int(text)
            else:
                meta[key] = text
        except ValueError:
            raise CheckpointError(f"{source}: metadata {METADATA_PREFIX}{key} is malformed: {text[:60]!r}") from None
    if not meta:
        return meta
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise CheckpointError(f"{source}: dp_pose_zoo metadata lacks {', '.join(missing)}")
    if meta["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{source}: metadata format_version {meta['format_version']} is newer than this "
                              f"runtime reads ({FORMAT_VERSION}); upgrade dp-pose-zoo")
    meta["input_size"] = tuple(int(v) for v in meta["input_size"])
    meta["joint_names"] = list(meta["joint_names"])
    return meta
