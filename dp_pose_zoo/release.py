"""What a release folder holds, and the one verification every command runs on it.

A release (a checkpoint, an export folder, a Hub snapshot, the embedded
default) is a folder of these files, at its top or under ``onnx/`` for a
checkpoint's exports::

    README.md           the model card (privacy claim, weights_sha256, files map)
    config.json         model args, recipe, the privacy ledger (checkpoints only)
    model.safetensors   the weights (checkpoints only)
    model.onnx          fp32 export, the card's privacy block in its metadata
    model.int8.onnx     static INT8 export, the same metadata
    parity.json         the export's parity report

The card must tell the same story as the files: ``model.safetensors`` hashes to
its ``weights_sha256`` and every other file to its ``files`` map, config.json's
ledger names the same weights, method and epsilon, and so does each ONNX's
metadata. :func:`verify_folder` (pull) checks everything, :func:`stamped_card`
(card, push) checks and hashes, :func:`find_model` (running an ONNX) checks the
file it opens. Torch-free: runtime layer.
"""

from __future__ import annotations

import json
import math
from fnmatch import fnmatch
from pathlib import Path

from .card import Card, FileHash, load_card
from .errors import CardError, CheckpointError, IntegrityError, UnknownModelError
from .io import sha256_file

CARD = "README.md"
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
TRAINING_STATE = "training_state.pt"  # holds the run's secret noise seed: never shipped
JOURNAL = "privacy_journal.jsonl"  # the privacy ledger's journal: never shipped
PARITY = "parity.json"
ONNX_DIR = "onnx"  # where `dp-pose export` puts a checkpoint's exports
ONNX_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
# Model files a release may hold, fp32 first, a checkpoint's own export before a top-level one (find_model's order).
ONNX_PATHS = tuple(p for name in ONNX_FILES.values() for p in (f"{ONNX_DIR}/{name}", name))
# What a release holds, at the top (a checkpoint or a bare export folder) or under onnx/ (a checkpoint's exports).
RELEASE_FILES = (CARD, CONFIG, WEIGHTS, *ONNX_FILES.values(), PARITY,
                 *(f"{ONNX_DIR}/{name}" for name in (*ONNX_FILES.values(), PARITY)))
# Never shipped, whatever a future RELEASE_FILES says: the secret seed, the journal, anything pickled, dotfiles.
NEVER_SHIP = (TRAINING_STATE, JOURNAL, "*.pt", "*.pth", "*.bin", "*.pkl", "*.pickle", ".*")
_WEIGHTS_SUFFIXES = (".safetensors", ".onnx")


def release_files(folder: str | Path) -> list[str]:
    """The paths under ``folder`` a push uploads (README.md first), never a NEVER_SHIP one."""
    folder = Path(folder)
    found = [p for p in RELEASE_FILES if (folder / p).is_file()]
    return [p for p in found if not any(fnmatch(Path(p).name, pat) for pat in NEVER_SHIP)]


def has_checkpoint(folder: Path) -> bool:
    """True when ``folder`` holds trainable weights with their config (what eval on torch, export and audit need)."""
    return (folder / WEIGHTS).is_file() and (folder / CONFIG).is_file()


# -- the card against the folder ----------------------------------------------------------------
def stamped_card(folder: str | Path) -> Card:
    """The folder's card with the ``files`` map of what it ships.

    Refuses a release that contradicts its card: weights that hash otherwise,
    a ``config.json`` ledger with another method or epsilon, an ONNX export of
    other weights or with another privacy block (:func:`check_release`).
    """
    folder = Path(folder)
    card = load_card(folder / CARD)
    files = [p for p in release_files(folder) if p != CARD]
    if not any(p.endswith(_WEIGHTS_SUFFIXES) for p in files):
        raise CheckpointError(f"{folder} has no weights to ship (model.safetensors or an ONNX export)")
    hashes = {p: FileHash(sha256_file(folder / p), (folder / p).stat().st_size) for p in files}
    if WEIGHTS in hashes and hashes[WEIGHTS].sha256 != card.weights_sha256:
        raise IntegrityError(f"{folder / WEIGHTS} does not match the card's weights_sha256: "
                             "the weights changed after the card was written")
    check_release(card, folder)
    return card.with_files(hashes)


def check_release(card: Card, folder: Path) -> None:
    """Refuse a card that contradicts the folder's config.json (the ledger) or its ONNX exports."""
    config_path = folder / CONFIG
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{config_path} is not valid JSON: {e}") from None
        if config.get("weights_sha256") != card.weights_sha256:
            raise CardError(f"{folder}: the card's weights_sha256 differs from config.json's")
        method = (config.get("recipe") or {}).get("method")
        if method is not None and method != card.privacy.method:
            raise CardError(f"{folder}: the card says method {card.privacy.method}, the recipe {method}")
        ledger_eps = (config.get("privacy") or {}).get("epsilon")
        if ledger_eps is not None and not math.isclose(ledger_eps, card.privacy.epsilon, rel_tol=1e-9):
            raise CardError(f"{folder}: the card says epsilon {card.privacy.epsilon}, the ledger {ledger_eps}")
    for name in (*ONNX_FILES.values(), *(f"{ONNX_DIR}/{n}" for n in ONNX_FILES.values())):
        if (folder / name).is_file():
            from .runtime.onnx_model import OnnxModel

            model = OnnxModel(folder / name, require_metadata=True)
            check_consistent(model.metadata, card, source=str(folder / name))


def verify_folder(folder: str | Path, *, source: str | None = None) -> Card:
    """The folder's card if every file in it matches the card's hashes and agrees with its claim.

    :class:`IntegrityError` for a file that hashes otherwise; then, once every weights file is known
    to be the card's (so onnxruntime parses no unchecked bytes), the consistency check loading and
    pushing run (:func:`check_release`): a card relabelled epsilon 0.1 over a ledger and ONNX
    metadata of 1.0 hashes fine but is refused.
    """
    folder = Path(folder)
    source = source or str(folder)
    if not (folder / CARD).is_file():
        raise CardError(f"{source} has no model card ({CARD}); refusing a checkpoint that makes no claim")
    card = load_card(folder / CARD)
    present = [p for p in release_files(folder) if p != CARD]
    if not any(p.endswith(_WEIGHTS_SUFFIXES) for p in present):
        raise CheckpointError(f"{source} has no weights (model.safetensors or an ONNX export)")
    bad = _mismatches(folder, card, present)
    if bad:
        raise IntegrityError(f"{source}: {'; '.join(bad)}")
    check_release(card, folder)
    return card


def _mismatches(folder: Path, card: Card, present: list[str]) -> list[str]:
    bad = []
    for path in present:
        expected = card.files.get(path)
        if path == WEIGHTS and expected is None:
            expected = FileHash(card.weights_sha256, (folder / path).stat().st_size)
        if expected is None:
            if path.endswith(_WEIGHTS_SUFFIXES):
                bad.append(f"{path} is not covered by the card's hashes")
            continue
        if path == WEIGHTS and expected.sha256 != card.weights_sha256:
            bad.append(f"the card's files map and weights_sha256 disagree on {path}")
        elif sha256_file(folder / path) != expected.sha256:
            bad.append(f"{path} does not match the sha256 in the card (tampered or damaged)")
    return bad


# -- one model file of a release ----------------------------------------------------------------
def find_model(path: Path, *, precision: str = "fp32", source: str) -> tuple[Path, Card]:
    """``(onnx, card)`` in a folder (``onnx/<file>`` or ``<file>``) or for an ``.onnx`` file beside its card.

    A model file is checked as its folder is (:func:`model_folder`): the same card, the same hashes.
    """
    if precision not in ONNX_FILES:
        raise UnknownModelError(f"precision must be one of {', '.join(ONNX_FILES)}, got {precision!r}")
    wanted = ONNX_FILES[precision]
    if path.is_file():
        onnx_path, folder = path, model_folder(path)
    else:
        candidates = [path / ONNX_DIR / wanted, path / wanted]
        onnx_path = next((c for c in candidates if c.is_file()), None)
        if onnx_path is None:
            hint = " (run `dp-pose export` on the checkpoint)" if (path / WEIGHTS).is_file() else ""
            if precision == "int8" and not hint:
                hint = " (`dp-pose export MODEL --int8` makes one from its fp32 ONNX)"
            raise CheckpointError(f"{source} has no {precision} ONNX model ({' or '.join(map(str, candidates))})"
                                  f"{hint}")
        folder = path
    card_path = card_for(folder, onnx_path)
    if card_path is None:
        raise CardError(f"{source} has no model card (README.md); from_pretrained needs one to state its privacy")
    card = load_card(card_path)
    expected = card.files.get(onnx_path.relative_to(card_path.parent).as_posix()) \
        if card_path.parent in onnx_path.parents else None
    if expected is not None and sha256_file(onnx_path) != expected.sha256:
        raise IntegrityError(f"{onnx_path} does not match the sha256 in its card (tampered or damaged)")
    return onnx_path, card


def model_folder(onnx_path: Path) -> Path:
    """The folder a model file belongs to: the checkpoint when the file sits in its ``onnx/`` (as
    ``dp-pose export`` and a pulled release lay it out) and the checkpoint has a card, else its own folder."""
    if onnx_path.parent.name == ONNX_DIR and (onnx_path.parent.parent / CARD).is_file():
        return onnx_path.parent.parent
    return onnx_path.parent


def card_for(folder: Path, onnx_path: Path) -> Path | None:
    """The card describing ``onnx_path`` in ``folder``: the folder's own, else the one beside the file."""
    return next((c for c in (folder / CARD, onnx_path.parent / CARD) if c.is_file()), None)


def has_card(onnx_path: str | Path) -> bool:
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
