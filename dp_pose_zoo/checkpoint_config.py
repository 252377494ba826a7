"""A checkpoint folder's file names and its ``config.json``, checked without torch.

The trainer writes ``config.json`` (``training/checkpoint.py``); eval, export,
audit, resume and ``dp-pose card`` read it. They all check it here, so a
config with a wrong type is one :class:`CheckpointError` line wherever it is
read (never a traceback inside a reader), and ``dp-pose card --check`` never
calls ok a config that eval or resume could not load. It lives outside
``training/`` because the card check runs on the torch-free base install.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from .checks import is_int, is_real
from .errors import CheckpointError, RecipeError
# A checkpoint's file names are the release layout's (JOURNAL: the privacy ledger's crash-proof journal).
from .release import CARD, CONFIG, JOURNAL, TRAINING_STATE, WEIGHTS  # noqa: F401
from .skeleton import NUM_JOINTS

FORMAT_VERSION = 1

NORMS = ("frozen-bn", "group-norm")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class ModelConfig:
    """Everything needed to rebuild the architecture (stored in config.json; see training/model.py)."""

    backbone: str = "tiny_vit_5m_224"
    input_size: tuple[int, int] = (256, 192)  # (height, width)
    split_ratio: float = 2.0
    num_joints: int = NUM_JOINTS
    upsample: int = 4
    norm: str = "frozen-bn"

    def __post_init__(self):
        size = self.input_size
        if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(is_int(v) and v > 0 for v in size)
                and not any(v % 32 for v in size)):
            raise RecipeError(f"input_size must be (height, width), multiples of 32; got {size!r}")
        self.input_size = tuple(int(v) for v in size)
        if not isinstance(self.backbone, str):
            raise RecipeError(f"backbone must be a timm model name; got {self.backbone!r}")
        if not (is_real(self.split_ratio) and math.isfinite(self.split_ratio) and self.split_ratio > 0):
            raise RecipeError(f"split_ratio must be a finite number > 0; got {self.split_ratio!r}")
        if self.num_joints != NUM_JOINTS or not is_int(self.num_joints):
            raise RecipeError(f"num_joints must be {NUM_JOINTS} (MPII's skeleton); got {self.num_joints!r}")
        if not (is_int(self.upsample) and self.upsample >= 1):
            raise RecipeError(f"upsample must be an integer >= 1; got {self.upsample!r}")
        if self.norm not in NORMS:
            raise RecipeError(f"norm must be one of {NORMS}; got {self.norm!r}")

    @property
    def bins(self) -> tuple[int, int]:
        h, w = self.input_size
        return int(round(w * self.split_ratio)), int(round(h * self.split_ratio))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        return d


# What a reader may rely on, key by key: a JSON type, or a check of the value.
_SECTIONS = {"model": dict, "recipe": dict, "progress": dict, "metrics": dict}
_PROGRESS = ("epoch", "step", "samples")
_PRIVACY_REALS = ("epsilon", "noise_multiplier", "sample_rate", "delta", "clipping_norm", "target_epsilon")
_PRIVACY_INTS = ("ledger_steps", "planned_steps")
ALL_KEYS = ("model", "recipe", "progress", "metrics", "privacy", "weights_sha256")


def check_config(config: object, source: str, *, require: tuple[str, ...] = ()) -> dict:
    """``config`` if every section it has is of the type its readers expect and ``require``'d ones are there.

    A CheckpointError (one line, naming ``source`` and every problem) otherwise.
    """
    if not isinstance(config, dict):
        raise CheckpointError(f"{source} must hold a JSON object; got {type(config).__name__}")
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{source} has format_version {config.get('format_version')!r}; "
                              f"expected {FORMAT_VERSION}")
    problems = [f"{key} is missing" for key in require if key not in config]
    for key, kind in _SECTIONS.items():
        if key in config and not isinstance(config[key], kind):
            problems.append(f"{key} must be an object, got {type(config[key]).__name__}")
    if "weights_sha256" in config and not (isinstance(config["weights_sha256"], str)
                                           and _SHA256.match(config["weights_sha256"])):
        problems.append(f"weights_sha256 must be 64 lowercase hex digits, got {config['weights_sha256']!r}")
    if isinstance(config.get("progress"), dict):
        problems += [f"progress.{k} must be an integer >= 0, got {config['progress'].get(k)!r}" for k in _PROGRESS
                     if not (is_int(config["progress"].get(k)) and config["progress"][k] >= 0)]
    metrics = config.get("metrics")
    if isinstance(metrics, dict) and not isinstance(metrics.get("history", []), list):
        problems.append(f"metrics.history must be a list, got {type(metrics['history']).__name__}")
    if isinstance(metrics, dict) and not isinstance(metrics.get("val_pckh", {}), dict):
        problems.append(f"metrics.val_pckh must be an object, got {type(metrics['val_pckh']).__name__}")
    if isinstance(config.get("recipe"), dict) and not isinstance(config["recipe"].get("method", ""), str):
        problems.append(f"recipe.method must be a string, got {config['recipe']['method']!r}")
    problems += _privacy_problems(config.get("privacy"))
    if isinstance(config.get("model"), dict):
        try:
            ModelConfig(**config["model"])
        except (TypeError, RecipeError) as e:
            problems.append(f"model: {e}")
    if problems:
        raise CheckpointError(f"{source} is malformed: " + "; ".join(problems))
    return config


def _privacy_problems(privacy: object) -> list[str]:
    if privacy is None:
        return []
    if not isinstance(privacy, dict):
        return [f"privacy must be an object or null, got {type(privacy).__name__}"]
    problems = [f"privacy.{k} must be a number, got {privacy[k]!r}" for k in _PRIVACY_REALS
                if privacy.get(k) is not None and not is_real(privacy[k])]
    problems += [f"privacy.{k} must be an integer, got {privacy[k]!r}" for k in _PRIVACY_INTS
                 if k in privacy and not is_int(privacy[k])]
    problems += [f"privacy.{k} must be an object, got {type(privacy[k]).__name__}" for k in ("ledger", "journal")
                 if k in privacy and not isinstance(privacy[k], dict)]
    return problems


def read_config_file(path: str | Path, *, require: tuple[str, ...] = ()) -> dict:
    """A checkpoint's ``config.json`` at ``path``, parsed and checked (:func:`check_config`)."""
    path = Path(path)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None
    return check_config(config, str(path), require=require)
