"""Checkpoints on the Hugging Face Hub: pull with verification, push without secrets.

Everything goes through huggingface_hub's public API (``snapshot_download``,
``hf_hub_download``, ``HfApi.create_repo`` / ``upload_folder``), so HF_ENDPOINT,
HF_HOME, HF_TOKEN and HF_HUB_OFFLINE work as they do everywhere else; pulled
files live in the normal Hub cache.

The client does not check what it downloads (bytes of the right length are
cached as they come), so :func:`pull` does: the card must parse and carry a
complete privacy claim, ``model.safetensors`` must hash to the card's
``weights_sha256``, and every other file to the card's ``files`` map; a weights
file no hash covers is refused too. On any failure the snapshot folder and
the blobs it pointed to are deleted, so neither a retry nor HF_HUB_OFFLINE=1
can pick up what was refused.

Only safetensors, ONNX, JSON and the card are ever downloaded or uploaded:
``training_state.pt`` (it holds the run's secret noise seed) and the privacy
journal never leave the machine, and nothing here can unpickle a file.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from .card import Card, FileHash, load_card
from .errors import CardError, CheckpointError, HubError, IntegrityError, UnknownModelError
from .io import sha256_file

log = logging.getLogger(__name__)

CARD = "README.md"
WEIGHTS = "model.safetensors"
# What a release holds, at the top (a checkpoint or a bare export folder) or under onnx/ (a checkpoint's exports).
RELEASE_FILES = ("README.md", "config.json", "model.safetensors", "model.onnx", "model.int8.onnx", "parity.json",
                 "onnx/model.onnx", "onnx/model.int8.onnx", "onnx/parity.json")
# Never shipped, whatever a future RELEASE_FILES says: the secret seed, the journal, anything pickled, dotfiles.
NEVER_SHIP = ("training_state.pt", "privacy_journal.jsonl", "*.pt", "*.pth", "*.bin", "*.pkl", "*.pickle", ".*")
_WEIGHTS_SUFFIXES = (".safetensors", ".onnx")
_REPO_REF = re.compile(r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*)(?:@(?P<rev>[^@\s]+))?$")


@dataclass(frozen=True)
class Pulled:
    """A verified snapshot in the Hub cache."""

    repo_id: str
    commit: str
    path: Path
    card: Card


def parse_repo_ref(ref: str) -> tuple[str, str | None]:
    """``"OWNER/REPO@rev"`` -> ``("OWNER/REPO", "rev")``; refuse anything else."""
    match = _REPO_REF.match(ref)
    if not match:
        raise UnknownModelError(f"{ref!r} is not a Hub model id (expected OWNER/REPO or OWNER/REPO@REVISION)")
    return match["repo"], match["rev"]


def is_repo_ref(ref: str) -> bool:
    return _REPO_REF.match(ref) is not None


# -- what a release ships ---------------------------------------------------------------------
def release_files(folder: str | Path) -> list[str]:
    """The paths under ``folder`` a push uploads (README.md first), never a NEVER_SHIP one."""
    folder = Path(folder)
    found = [p for p in RELEASE_FILES if (folder / p).is_file()]
    return [p for p in found if not any(fnmatch(Path(p).name, pat) for pat in NEVER_SHIP)]


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
    config_path = folder / "config.json"
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
    for name in ("model.onnx", "model.int8.onnx", "onnx/model.onnx", "onnx/model.int8.onnx"):
        if (folder / name).is_file():
            from .runtime.onnx_model import OnnxModel
            from .runtime.pretrained import check_consistent

            model = OnnxModel(folder / name, require_metadata=True)
            check_consistent(model.metadata, card, source=str(folder / name))


def verify_folder(folder: str | Path, *, source: str | None = None) -> Card:
    """The folder's card if every weights file in it matches the card's hashes; :class:`IntegrityError` if not."""
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


# -- pull -------------------------------------------------------------------------------------
def pull(ref: str, *, revision: str | None = None, cache_dir: str | Path | None = None) -> Pulled:
    """Download ``OWNER/REPO[@revision]`` into the Hub cache and verify it against its card.

    With HF_HUB_OFFLINE=1 the cached snapshot is used (and verified again).
    A refused snapshot is removed from the cache before the error is raised.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    repo_id, ref_rev = parse_repo_ref(ref)
    revision = revision or ref_rev or "main"
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=list(RELEASE_FILES),
                                        ignore_patterns=list(NEVER_SHIP), cache_dir=cache_dir))
    except RepositoryNotFoundError:
        raise UnknownModelError(f"{repo_id}: no such model repository on the Hub") from None
    except RevisionNotFoundError:
        raise UnknownModelError(f"{repo_id}: no revision {revision!r}") from None
    except LocalEntryNotFoundError:
        raise HubError(f"{repo_id}@{revision} is not in the Hub cache and the Hub cannot be reached "
                       "(HF_HUB_OFFLINE=1, or no network); pull it once while online") from None
    except (EntryNotFoundError, HfHubHTTPError, OSError) as e:
        raise HubError(f"{repo_id}: download failed: {_one_line(e)}") from None
    commit = folder.name
    source = f"{repo_id}@{commit[:12]}"
    try:
        card = verify_folder(folder, source=source)
    except (CardError, CheckpointError, IntegrityError) as e:
        discard_snapshot(folder)
        raise type(e)(f"{e}; refused and deleted from the Hub cache") from None
    log.info("verified %s in %s", source, folder)
    return Pulled(repo_id=repo_id, commit=commit, path=folder, card=card)


def discard_snapshot(folder: Path) -> None:
    """Delete a snapshot folder and the blobs only it points to: a refused download leaves nothing usable."""
    storage = folder.parent.parent.resolve()
    keep: set[Path] = set()
    for other in (storage / "snapshots").iterdir():
        if other.name != folder.name:
            keep.update(p.resolve() for p in other.rglob("*") if p.is_symlink())
    blobs = {p.resolve() for p in folder.rglob("*") if p.is_symlink()}
    shutil.rmtree(folder, ignore_errors=True)
    for blob in blobs - keep:
        if storage in blob.parents:  # never follow a link out of this repo's cache folder
            blob.unlink(missing_ok=True)
    log.info("removed the refused snapshot %s from the Hub cache", folder)


# -- push -------------------------------------------------------------------------------------
def push(folder: str | Path, repo_id: str, *, private: bool = False, message: str | None = None) -> str:
    """Upload a checkpoint (or export) folder to ``repo_id``; returns the commit sha.

    Ships only RELEASE_FILES (weights, config, card, ONNX exports, parity
    report), never NEVER_SHIP; the card goes up stamped with the ``files``
    hashes and the ``dp-pose-zoo`` tag, so pull can verify and search can find it.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    folder = Path(folder)
    repo_id, rev = parse_repo_ref(repo_id)
    if rev is not None:
        raise UnknownModelError(f"push goes to a repository's main branch; drop @{rev}")
    card = stamped_card(folder)
    api = HfApi()
    with tempfile.TemporaryDirectory(prefix="dp-pose-push-") as tmp:
        staging = Path(tmp)
        for path in card.files:
            (staging / path).parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(folder / path, staging / path)
        (staging / CARD).write_text(card.text, encoding="utf-8")
        try:
            api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
            info = api.upload_folder(folder_path=staging, repo_id=repo_id, repo_type="model",
                                     allow_patterns=list(RELEASE_FILES), ignore_patterns=list(NEVER_SHIP),
                                     commit_message=message or f"dp-pose zoo push: {card.name or folder.name}")
        except (HfHubHTTPError, OSError, ValueError) as e:  # ValueError: the Hub refused the card's YAML
            raise HubError(f"push to {repo_id} failed: {_one_line(e)}") from None
    return info.oid


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _one_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
