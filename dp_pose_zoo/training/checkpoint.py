"""Checkpoint directories that describe themselves (nanoGPT, hub_mixin).

Layout: ``model.safetensors`` (weights), ``config.json`` (model config, recipe,
progress, metrics, weights' sha256), ``README.md`` (the model card) and
``training_state.pt`` (optimizer, scheduler: written by us, loaded with
``weights_only=True``). A directory is replaced whole, never half-written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError
from ..io import atomic_dir, recover_dir, sha256_file
from .model import ModelConfig, TinyViTSimCC

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"
TRAINING_STATE = "training_state.pt"


def save_checkpoint(out_dir: str | Path, model: TinyViTSimCC, *, recipe: dict, progress: dict,
                    metrics: dict | None = None, privacy: dict | None = None,
                    training_state: dict | None = None, card: Callable[[str], str] | None = None,
                    keep: tuple[str, ...] = ()) -> Path:
    """Write a checkpoint directory atomically, replacing an older one.

    ``card(weights_sha256) -> str`` renders the model card once the weights'
    hash is known. Files named in ``keep`` (the privacy journal) carry over
    from the old directory as hard links: appends made through either name
    land in the same file, so no step recorded there can be lost in the swap.
    """
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, replace=True) as staging:
        for name in keep:
            if (out_dir / name).exists():
                os.link(out_dir / name, staging / name)
        weights = staging / WEIGHTS
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(weights), metadata={"format": "pt"})
        digest = sha256_file(weights)
        config = {
            "format_version": FORMAT_VERSION,
            "model": model.config.to_dict(),
            "recipe": recipe,
            "progress": progress,
            "metrics": metrics or {},
            "privacy": privacy,
            "weights_sha256": digest,
        }
        (staging / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        if training_state is not None:
            torch.save(training_state, staging / TRAINING_STATE)
        if card is not None:
            (staging / CARD).write_text(card(digest))
    return Path(out_dir)


def read_config(ckpt_dir: str | Path) -> dict:
    ckpt = recover_dir(ckpt_dir)
    path = ckpt / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{ckpt} is not a checkpoint directory (no {CONFIG})")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format_version {config.get('format_version')!r}; expected {FORMAT_VERSION}")
    return config


def load_model(ckpt_dir: str | Path) -> tuple[TinyViTSimCC, dict]:
    """Rebuild the model of a checkpoint from its own files; check the weights' hash."""
    ckpt = recover_dir(ckpt_dir)
    config = read_config(ckpt)
    weights = ckpt / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{ckpt} has no {WEIGHTS}")
    if sha256_file(weights) != config["weights_sha256"]:
        raise CheckpointError(f"{weights} does not match the sha256 in {CONFIG}: the file was changed or damaged")
    model = TinyViTSimCC(ModelConfig(**config["model"]))
    load_weights(model, weights)
    return model, config


def load_weights(model: TinyViTSimCC, weights: str | Path) -> None:
    state = load_file(str(weights))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{weights} does not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")


def load_training_state(ckpt_dir: str | Path) -> dict:
    path = recover_dir(ckpt_dir) / TRAINING_STATE
    if not path.is_file():
        raise CheckpointError(f"{path.parent} cannot be resumed: no {TRAINING_STATE}")
    return torch.load(path, weights_only=True)
