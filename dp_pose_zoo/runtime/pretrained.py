"""``PoseEstimator.from_pretrained``: a model by name, with its card attached.

``"default"`` is the embedded default (see :func:`dp_pose_zoo.zoo.default_dir`),
an existing path is a local checkpoint or export folder (or an ``.onnx`` file
beside its card), and ``OWNER/REPO[@revision]`` is pulled from the Hub and
verified (:func:`dp_pose_zoo.hub.pull`). A path that exists wins over a Hub id
that looks the same (``runs/demo``).

The card and the ONNX file must tell the same story: the ONNX metadata's
``weights_sha256`` (the safetensors it was exported from) must equal the
card's, and so must the privacy method and epsilon. A model file is checked
exactly as its folder is, against the same card. A model without a card, or
an ONNX without our metadata, is refused here -- ``PoseEstimator(path)``
still opens such a file directly; its privacy is then unknown or, from its
metadata, an unverified claim (``est.card`` is None).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

from ..card import Card, load_card
from ..errors import CardError, CheckpointError, IntegrityError, UnknownModelError
from .pose_estimator import PoseEstimator

ONNX_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
CARD_FILE = "README.md"


def from_pretrained(name_or_path: str | os.PathLike = "default", *, precision: str = "fp32",
                    revision: str | None = None, threads: int | None = None,
                    providers: Sequence[str] | None = None) -> PoseEstimator:
    """A :class:`PoseEstimator` for ``"default"``, a local path or ``OWNER/REPO[@rev]``; ``est.card`` is its card."""
    onnx_path, card = resolve(name_or_path, precision=precision, revision=revision)
    estimator = PoseEstimator(onnx_path, threads=threads, providers=providers, require_metadata=True)
    check_consistent(estimator.metadata, card, source=str(onnx_path))
    estimator.card = card
    return estimator


def resolve(name_or_path: str | os.PathLike, *, precision: str = "fp32",
            revision: str | None = None) -> tuple[Path, Card]:
    """The ONNX file and the validated card a model name stands for (pulling from the Hub if needed)."""
    from .. import hub, zoo

    if precision not in ONNX_FILES:
        raise UnknownModelError(f"precision must be one of {', '.join(ONNX_FILES)}, got {precision!r}")
    name = os.fspath(name_or_path)
    if name == "default":
        return find_model(zoo.default_dir(), precision=precision, source="the embedded default")
    path = Path(name).expanduser()
    if path.exists():
        return find_model(path, precision=precision, source=str(path))
    if hub.is_repo_ref(name):
        pulled = hub.pull(name, revision=revision)
        return find_model(pulled.path, precision=precision, source=f"{pulled.repo_id}@{pulled.commit[:12]}")
    raise UnknownModelError(f"{name!r} is not 'default', an existing path, or a Hub id OWNER/REPO[@REVISION]")


def find_model(path: Path, *, precision: str = "fp32", source: str) -> tuple[Path, Card]:
    """``(onnx, card)`` in a folder (``onnx/<file>`` or ``<file>``) or for an ``.onnx`` file beside its card.

    A model file is checked as its folder is (:func:`model_folder`): the same card, the same hashes.
    """
    wanted = ONNX_FILES[precision]
    if path.is_file():
        onnx_path, folder = path, model_folder(path)
    else:
        candidates = [path / "onnx" / wanted, path / wanted]
        onnx_path = next((c for c in candidates if c.is_file()), None)
        if onnx_path is None:
            hint = " (run `dp-pose export` on the checkpoint)" if (path / "model.safetensors").is_file() else ""
            raise CheckpointError(f"{source} has no {precision} ONNX model ({' or '.join(map(str, candidates))})"
                                  f"{hint}")
        folder = path
    card_path = card_for(folder, onnx_path)
    if card_path is None:
        raise CardError(f"{source} has no model card (README.md); from_pretrained needs one to state its privacy")
    card = load_card(card_path)
    expected = card.files.get(onnx_path.relative_to(card_path.parent).as_posix()) \
        if card_path.parent in onnx_path.parents else None
    if expected is not None:
        from ..hub import sha256_file

        if sha256_file(onnx_path) != expected.sha256:
            raise IntegrityError(f"{onnx_path} does not match the sha256 in its card (tampered or damaged)")
    return onnx_path, card


def model_folder(onnx_path: Path) -> Path:
    """The folder a model file belongs to: the checkpoint when the file sits in its ``onnx/`` (as
    ``dp-pose export`` and a pulled release lay it out) and the checkpoint has a card, else its own folder."""
    if onnx_path.parent.name == "onnx" and (onnx_path.parent.parent / CARD_FILE).is_file():
        return onnx_path.parent.parent
    return onnx_path.parent


def card_for(folder: Path, onnx_path: Path) -> Path | None:
    """The card describing ``onnx_path`` in ``folder``: the folder's own, else the one beside the file."""
    return next((c for c in (folder / CARD_FILE, onnx_path.parent / CARD_FILE) if c.is_file()), None)


def has_card(onnx_path: str | os.PathLike) -> bool:
    """True when a model file has a card beside it (or above its ``onnx/``): then it must be verified against it."""
    path = Path(onnx_path)
    return card_for(model_folder(path), path) is not None


def check_consistent(metadata: dict, card: Card, *, source: str) -> None:
    """Refuse an ONNX whose metadata names other weights or another privacy claim than its card."""
    if metadata.get("weights_sha256") != card.weights_sha256:
        raise IntegrityError(f"{source} was exported from weights {str(metadata.get('weights_sha256'))[:12]}..., "
                             f"but its card describes {str(card.weights_sha256)[:12]}...")
    privacy = metadata.get("privacy") or {}
    eps, card_eps = privacy.get("epsilon"), card.privacy.epsilon
    same_eps = isinstance(eps, (int, float)) and (eps == card_eps or (math.isinf(eps) and math.isinf(card_eps)))
    if privacy.get("method") != card.privacy.method or not same_eps:
        raise IntegrityError(f"{source}: the ONNX metadata says {privacy.get('method')} epsilon {eps}, the card "
                             f"{card.privacy.method} epsilon {card_eps}")
