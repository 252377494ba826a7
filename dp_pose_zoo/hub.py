"""Checkpoints on the Hugging Face Hub: pull with verification, push without secrets.

Everything goes through huggingface_hub's public API (``snapshot_download``,
``hf_hub_download``, ``HfApi.create_repo`` / ``upload_folder``), so HF_ENDPOINT,
HF_HOME, HF_TOKEN and HF_HUB_OFFLINE work as they do everywhere else; pulled
files live in the normal Hub cache.

The client does not check what it downloads (bytes of the right length are
cached as they come), so :func:`pull` does: the card must parse and carry a
complete privacy claim, ``model.safetensors`` must hash to the card's
``weights_sha256``, and every other file to the card's ``files`` map; a weights
file no hash covers is refused too. Then the card must agree with the files,
as loading and pushing check it: ``config.json``'s ledger and every ONNX's
metadata must name the same weights, method and epsilon (``release.verify_folder``).
On any failure the snapshot folder and the blobs it pointed to are deleted, so
neither a retry nor HF_HUB_OFFLINE=1 can pick up what was refused.

The client builds cache paths from the revision and from the commit the Hub
(or, offline, a ``refs/`` file) names, so a revision must be a branch, tag or
commit name and the commit 40 hex digits before anything is downloaded, and
nothing is read or deleted that does not resolve inside the repository's
``snapshots/`` (or, for blobs, ``blobs/``) folder.

Only safetensors, ONNX, JSON and the card are ever downloaded or uploaded:
``training_state.pt`` (it holds the run's secret noise seed) and the privacy
journal never leave the machine, and nothing here can unpickle a file.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .card import Card
from .errors import CardError, CheckpointError, DPPoseZooError, HubError, IntegrityError, UnknownModelError
# The release layout and its verification are .release's (stamped_card stays importable from here).
from .release import CARD, NEVER_SHIP, RELEASE_FILES, stamped_card, verify_folder

log = logging.getLogger(__name__)

# The shape of a Hub reference; parse_repo_ref then validates the id and the revision.
_REPO_REF = re.compile(r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*)(?:@(?P<rev>[^@]*))?$")
# A branch, tag or commit name: names of letters, digits, '.', '_', '-', '+' joined by '/', none starting
# with '.', so no part is '.' or '..' (the client turns a revision into the path refs/<revision>).
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*(?:/[A-Za-z0-9][A-Za-z0-9._+-]*)*")
_COMMIT = re.compile(r"[0-9a-f]{40}")  # the cache's snapshots/<commit> folders


@dataclass(frozen=True)
class Pulled:
    """A verified snapshot in the Hub cache."""

    repo_id: str
    commit: str
    path: Path
    card: Card


def parse_repo_ref(ref: str) -> tuple[str, str | None]:
    """``"OWNER/REPO@rev"`` -> ``("OWNER/REPO", "rev")``; refuse anything else, and ids or revisions the Hub refuses."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    match = _REPO_REF.match(ref)
    if not match:
        raise UnknownModelError(f"{ref!r} is not a Hub model id (expected OWNER/REPO or OWNER/REPO@REVISION)")
    try:
        validate_repo_id(match["repo"])
    except HFValidationError as e:
        raise UnknownModelError(f"{ref!r} is not a valid Hub model id: {e}") from None
    return match["repo"], None if match["rev"] is None else check_revision(match["rev"], source=repr(ref))


def is_repo_ref(ref: str) -> bool:
    """True when ``ref`` has the shape of ``OWNER/REPO[@REVISION]`` (:func:`parse_repo_ref` says if it is valid)."""
    return _REPO_REF.match(ref) is not None


def check_revision(revision: str, *, source: str | None = None) -> str:
    """``revision`` if it can name a branch, tag or commit; :class:`UnknownModelError` if not.

    Strict because the client builds cache paths from it (``refs/<revision>``): ``../../x`` would
    read, and a refused pull delete, outside the Hub cache.
    """
    if len(revision) > 255 or not _REVISION.fullmatch(revision) or ".." in revision:
        raise UnknownModelError(f"{source + ': ' if source else ''}revision {revision!r} is not a branch, tag or "
                                "commit name (letters, digits, '.', '_', '-', '+', parts joined by '/', none "
                                "starting with '.', no '..')")
    return revision


# -- pull -------------------------------------------------------------------------------------
def pull(ref: str, *, revision: str | None = None, cache_dir: str | Path | None = None) -> Pulled:
    """Download ``OWNER/REPO[@revision]`` into the Hub cache and verify it against its card.

    With HF_HUB_OFFLINE=1 the cached snapshot is used (and verified again).
    A refused snapshot is removed from the cache before the error is raised.
    """
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    repo_id, ref_rev = parse_repo_ref(ref)
    revision = check_revision(revision or ref_rev or "main", source=repo_id)
    storage = Path(cache_dir or constants.HF_HUB_CACHE).expanduser() / f"models--{repo_id.replace('/', '--')}"
    resolved = _resolve(repo_id, revision, cache_dir)
    commit = resolved.resolved
    try:
        # The resolved revision pins the download to the commit checked above: no path is built from another.
        folder = Path(snapshot_download(repo_id, revision=resolved, allow_patterns=list(RELEASE_FILES),
                                        ignore_patterns=list(NEVER_SHIP), cache_dir=cache_dir))
    except (HfHubHTTPError, OSError) as e:  # LocalEntryNotFoundError is an OSError too
        raise _download_error(e, repo_id, revision) from None
    _check_in_snapshots(folder, storage, commit)
    source = f"{repo_id}@{commit[:12]}"
    try:
        card = verify_folder(folder, source=source)
    except (CardError, CheckpointError, IntegrityError) as e:
        discard_snapshot(folder, storage)
        raise type(e)(f"{e}; refused and deleted from the Hub cache") from None
    log.info("verified %s in %s", source, folder)
    return Pulled(repo_id=repo_id, commit=commit, path=folder, card=card)


def _resolve(repo_id: str, revision: str, cache_dir: str | Path | None):
    """The commit ``revision`` names (asked of the Hub, or read from the cache's refs/ offline), checked
    to be 40 hex digits before any cache path is made from it: a hostile endpoint or an edited ref file
    could otherwise send ``../..``."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RevisionResolutionError

    try:
        resolved = HfApi().resolve_revision(repo_id, revision=revision, cache_dir=cache_dir)
    except (HfHubHTTPError, RevisionResolutionError, OSError) as e:
        raise _download_error(e, repo_id, revision) from None
    if not _COMMIT.fullmatch(resolved.resolved):
        raise HubError(f"{repo_id}@{revision} resolves to {resolved.resolved[:80]!r}, not a commit of 40 hex digits "
                       "(a hostile endpoint, or an edited refs/ file in the Hub cache); refusing it")
    return resolved


def _download_error(error: Exception, repo_id: str, revision: str) -> DPPoseZooError:
    """Our one-line error for what huggingface_hub raised while resolving or downloading."""
    from huggingface_hub.errors import (LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError,
                                        RevisionResolutionError)

    if isinstance(error, RepositoryNotFoundError):
        return UnknownModelError(f"{repo_id}: no such model repository on the Hub")
    if isinstance(error, RevisionNotFoundError):
        return UnknownModelError(f"{repo_id}: no revision {revision!r}")
    if isinstance(error, (LocalEntryNotFoundError, RevisionResolutionError)):
        return HubError(f"{repo_id}@{revision} is not in the Hub cache and the Hub cannot be reached "
                        "(HF_HUB_OFFLINE=1, or no network); pull it once while online")
    return HubError(f"{repo_id}: download failed: {_one_line(error)}")


def _check_in_snapshots(folder: Path, storage: Path, commit: str) -> None:
    """Refuse a folder that is not ``storage/snapshots/<commit>`` once symlinks and ``..`` are resolved."""
    snapshots = Path(os.path.realpath(storage / "snapshots"))
    if Path(os.path.realpath(folder)) != snapshots / commit:
        raise HubError(f"{folder} is not the snapshot of commit {commit} in the Hub cache ({snapshots}); "
                       "refusing to read it")


def discard_snapshot(folder: Path, storage: Path) -> None:
    """Delete a snapshot folder and the blobs only it points to: a refused download leaves nothing usable.

    Only ever inside ``storage`` (the repository's cache folder): the folder must be one of its
    snapshots and a blob one of its blobs, whatever the symlinks say.
    """
    snapshots = Path(os.path.realpath(storage / "snapshots"))
    blobs_dir = Path(os.path.realpath(storage / "blobs"))
    folder = Path(os.path.realpath(folder))
    if folder.parent != snapshots:
        raise HubError(f"{folder} is not a snapshot in {snapshots}; not deleting it")
    keep: set[Path] = set()
    for other in snapshots.iterdir():
        if other.name != folder.name:
            keep.update(p.resolve() for p in other.rglob("*") if p.is_symlink())
    blobs = {p.resolve() for p in folder.rglob("*") if p.is_symlink()}
    shutil.rmtree(folder, ignore_errors=True)
    for blob in blobs - keep:
        if blob.parent == blobs_dir:  # never follow a link out of this repo's blobs
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
