"""Checkpoint directories that describe themselves (nanoGPT, hub_mixin).

Layout: ``model.safetensors`` (weights), ``config.json`` (model config, recipe,
progress, metrics, weights' sha256), ``README.md`` (the model card) and
``training_state.pt`` (optimizer, scheduler: written by us, loaded with
``weights_only=True``). A directory is replaced whole, never half-written.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..checkpoint_config import (ALL_KEYS, CARD, CONFIG, FORMAT_VERSION, TRAINING_STATE, WEIGHTS, ModelConfig,
                                 read_config_file)
from ..errors import CheckpointError
from ..io import atomic_dir, recover_dir, sha256_file
from .model import TinyViTSimCC


def save_checkpoint(out_dir: str | Path, model: TinyViTSimCC, *, recipe: dict, progress: dict,
                    metrics: dict | None = None, privacy: dict | None = None,
                    training_state: dict | None = None, card: Callable[[str], str] | None = None,
                    keep: tuple[str, ...] = (), init: dict | None = None) -> Path:
    """Write a checkpoint directory atomically, replacing an older one.

    ``card(weights_sha256) -> str`` renders the model card once the weights'
    hash is known. ``init`` (the initial model's path, weights hash and
    training data) is kept in config.json as the run's provenance. Files
    named in ``keep`` (the privacy journal) carry over from the old directory
    as hard links: appends made through either name land in the same file, so
    no step recorded there can be lost in the swap.
    """
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, replace=True) as staging:
        for name in keep:
            if (out_dir / name).exists():
                os.link(out_dir / name, staging / name)
        weights = staging / WEIGHTS
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
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
            **({"init": init} if init else {}),
        }
        (staging / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        if training_state is not None:
            torch.save(training_state, staging / TRAINING_STATE)
        if card is not None:
            (staging / CARD).write_text(card(digest))
    return Path(out_dir)


def read_config(ckpt_dir: str | Path) -> dict:
    """A checkpoint's config.json, every section present and of its type (``checkpoint_config``)."""
    ckpt = recover_dir(ckpt_dir)
    path = ckpt / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{ckpt} is not a checkpoint directory (no {CONFIG})")
    return read_config_file(path, require=ALL_KEYS)


def load_model(ckpt_dir: str | Path) -> tuple[TinyViTSimCC, dict]:
    """Rebuild the model of a checkpoint from its own files; check the weights' hash."""
    ckpt = recover_dir(ckpt_dir)
    config = read_config(ckpt)
    model = TinyViTSimCC(ModelConfig(**config["model"]))
    load_weights(model, verified_weights(ckpt, config))
    return model, config


def verified_weights(ckpt_dir: str | Path, config: dict | None = None) -> Path:
    """The checkpoint's weights file, once its sha256 is the one config.json records."""
    ckpt = recover_dir(ckpt_dir)
    config = read_config(ckpt) if config is None else config
    weights = ckpt / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{ckpt} has no {WEIGHTS}")
    if sha256_file(weights) != config["weights_sha256"]:
        raise CheckpointError(f"{weights} does not match the sha256 in {CONFIG}: the file was changed or damaged")
    return weights


def load_weights(model: TinyViTSimCC, weights: str | Path) -> None:
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{weights} is not a readable safetensors file: {e}") from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a tensor of another shape
        raise CheckpointError(f"{weights} does not fit the model: {str(e).splitlines()[-1].strip()}") from None
    if missing or unexpected:
        raise CheckpointError(f"{weights} does not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")


def load_training_state(ckpt_dir: str | Path) -> dict:
    path = recover_dir(ckpt_dir) / TRAINING_STATE
    if not path.is_file():
        raise CheckpointError(f"{path.parent} cannot be resumed: no {TRAINING_STATE}")
    try:
        state = torch.load(path, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"{path} is damaged: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a training state (a mapping)")
    return state
