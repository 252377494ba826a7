"""The zoo: every checkpoint this machine knows of, described by its own card.

Three places, each read from cards only (nothing here invents a number):

- ``embedded``: the default model shipped inside the package,
  ``dp_pose_zoo/zoo_data/default/`` (``model.onnx`` + ``README.md``). The
  environment variable ``DP_POSE_ZOO_DEFAULT_DIR`` points elsewhere (tests, or
  a site that ships its own default).
- ``cache``: repositories in the Hugging Face cache (HF_HOME / HF_HUB_CACHE)
  whose card is ours (``dp-pose-zoo`` tag or library) and whose weights are
  there too (a card fetched by a Hub listing alone is not a cached model).
- ``hub``: ``list_models(filter="dp-pose-zoo")``, each card fetched with
  ``hf_hub_download``; only with ``hub=True`` (it needs the network).

Torch-free: runtime layer.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .card import LIBRARY_NAME, ZOO_TAG, Card, card_from_text, load_card, validate_card
from .errors import CardError, DefaultModelMissingError, DPPoseZooError, HubError
from .release import CARD, ONNX_FILES, ONNX_PATHS, WEIGHTS
from .runtime.metadata import json_safe

log = logging.getLogger(__name__)

DEFAULT_DIR_ENV = "DP_POSE_ZOO_DEFAULT_DIR"
PACKAGED_DEFAULT = Path(__file__).parent / "zoo_data" / "default"
_RUNTIME_WEIGHTS = (*ONNX_PATHS, WEIGHTS)


@dataclass(frozen=True)
class ZooEntry:
    """One known checkpoint: its name, card, where it lives, and the size of its runtime weights."""

    name: str
    card: Card
    where: tuple[str, ...]
    path: Path | None = None
    revision: str | None = None
    size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; a non-private epsilon is the string ``"inf"`` (as in the ONNX metadata)."""
        p = self.card.privacy
        pckh = self.card.pckh or {}
        return {
            "name": self.name, "card_name": self.card.name, "method": p.method,
            "epsilon": json_safe(p.epsilon),
            "delta": p.delta, "clipping_norm": p.clipping_norm, "strategy": p.strategy,
            "data": self.card.train_data, "base_model_data": self.card.base_model_data,
            "pckh": pckh.get("Mean"), "pckh@0.1": pckh.get("Mean@0.1"),
            "eval_data": self.card.eval_data, "size": self.size, "where": list(self.where),
            "revision": self.revision, "path": str(self.path) if self.path else None,
        }


def default_dir() -> Path:
    """Where the embedded default lives; :class:`DefaultModelMissingError` if it is not there."""
    folder = Path(os.environ.get(DEFAULT_DIR_ENV) or PACKAGED_DEFAULT)
    if not (folder / ONNX_FILES["fp32"]).is_file() or not (folder / CARD).is_file():
        source = f"{DEFAULT_DIR_ENV}={folder}" if os.environ.get(DEFAULT_DIR_ENV) else str(folder)
        raise DefaultModelMissingError(
            f"the embedded default model is missing ({source} needs model.onnx and README.md); reinstall "
            "dp-pose-zoo, or name a model: a checkpoint folder or OWNER/REPO")
    return folder


def embedded_default() -> ZooEntry:
    folder = default_dir()
    return ZooEntry("default", load_card(folder), ("embedded",), path=folder, size=_weights_size(folder, None))


def cached_entries(*, cache_dir: str | Path | None = None) -> list[ZooEntry]:
    """Our checkpoints in the Hub cache, one per repository (the revision ``main`` points to, else the newest)."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return []
    entries = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        revisions = sorted(repo.revisions, key=lambda r: ("main" not in r.refs, -r.last_modified))
        for rev in revisions:
            card = _our_card(rev.snapshot_path / CARD)
            if card is None or _weights_size(rev.snapshot_path, None) is None:
                continue
            entries.append(ZooEntry(repo.repo_id, card, ("cache",), path=rev.snapshot_path,
                                    revision=rev.commit_hash, size=_weights_size(rev.snapshot_path, card)))
            break
    return entries


def hub_entries(*, search: str | None = None, author: str | None = None, limit: int = 50) -> list[ZooEntry]:
    """Our checkpoints on the Hub: ``list_models(filter="dp-pose-zoo")``, each described by its card."""
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        models = list(HfApi().list_models(filter=ZOO_TAG, search=search, author=author, limit=limit))
    except (HfHubHTTPError, OSError) as e:
        raise HubError(f"Hub search failed (offline? HF_HUB_OFFLINE=1?): {str(e).splitlines()[0]}") from None
    entries = []
    for model in models:
        try:
            path = hf_hub_download(model.id, CARD, revision=model.sha)
        except (HfHubHTTPError, OSError) as e:
            log.warning("%s: cannot fetch its card: %s", model.id, str(e).splitlines()[0])
            continue
        card = _our_card(Path(path))
        if card is None:
            log.warning("%s is tagged %s but its card is missing or invalid; not listed", model.id, ZOO_TAG)
            continue
        entries.append(ZooEntry(model.id, card, ("hub",), revision=model.sha, size=_weights_size(None, card)))
    return entries


def list_zoo(*, cache: bool = True, hub: bool = False, search: str | None = None,
             max_epsilon: float | None = None, method: str | None = None,
             cache_dir: str | Path | None = None) -> list[ZooEntry]:
    """Every known checkpoint (embedded default first), merged by name, filtered by privacy."""
    entries: list[ZooEntry] = []
    try:
        entries.append(embedded_default())
    except DPPoseZooError as e:  # a listing still shows the rest; from_pretrained("default") raises
        log.warning("%s", e)
    if cache:
        entries += cached_entries(cache_dir=cache_dir)
    if hub:
        entries += hub_entries(search=search)
    merged: dict[str, ZooEntry] = {}
    for entry in entries:
        if entry.name in merged:
            first = merged[entry.name]
            entry = ZooEntry(first.name, first.card, first.where + entry.where, first.path,
                             first.revision or entry.revision, first.size or entry.size)
        merged[entry.name] = entry
    return [e for e in merged.values() if _keep(e.card, max_epsilon=max_epsilon, method=method)]


def _keep(card: Card, *, max_epsilon: float | None, method: str | None) -> bool:
    if method is not None and card.privacy.method != method:
        return False
    return max_epsilon is None or card.privacy.epsilon <= max_epsilon


def _our_card(path: Path) -> Card | None:
    """The validated card at ``path`` if it is a dp-pose-zoo card; None (logged) otherwise."""
    if not path.is_file():
        return None
    try:
        card = validate_card(card_from_text(path.read_text(encoding="utf-8"), source=str(path)), source=str(path))
    except (CardError, OSError, UnicodeDecodeError) as e:
        log.debug("not a dp-pose-zoo card: %s", e)
        return None
    if ZOO_TAG not in card.tags and card.data.library_name != LIBRARY_NAME:
        return None
    return card


def _weights_size(folder: Path | None, card: Card | None) -> int | None:
    """Bytes of the runtime weights: the file on disk, else what the card's files map says."""
    for name in _RUNTIME_WEIGHTS:
        if folder is not None and (folder / name).is_file():
            return (folder / name).stat().st_size
        if card is not None and name in card.files:
            return card.files[name].size
    return None
