"""Where a run's weights come from, and the check that none of it saw the private people.

A DP run's epsilon covers only the gradients it takes itself. Weights it starts
from (``init``) that were trained on some of the same people already carry them,
and no number on the new card would say so. So a private run refuses an initial
model any of whose training data shares a picture with its private set: the
init's own ``train_data`` and, through the record every run keeps of its
initial model, the data of the models before it (a non-private fine-tune on the
private set, then one on public data, then DP on the private set again is
caught two steps back). Pictures are compared as PDP-SGD's public set is, by
image id and by decoded pixels. Data that is not on this machine (an init pulled
from the Hub) cannot be compared: the run stops unless the recipe says why the
init can be trusted, and then the card names that data and quotes the reason.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..datasets import PoseDataset, load_dataset
from ..datasets.base import image_fingerprints
from ..datasets.mixture import parse_sources
from ..errors import DatasetError, PrivacyError
from .checkpoint import read_config
from .config import Recipe

log = logging.getLogger(__name__)


def init_folder(init: str) -> Path:
    """The checkpoint folder ``init`` names: a path, or a Hub release (``OWNER/REPO[@REV]``, pulled into the Hub
    cache and verified against its card, as every command resolves a model reference)."""
    from ..runtime.reference import resolve_reference

    return resolve_reference(init).checkpoint(command="init", needs="a checkpoint with weights to start from")


def init_record(recipe: Recipe, folder: Path | None) -> dict | None:
    """The initial model's provenance: where it was (``recipe.init`` as written: a path or a Hub id), its
    weights' sha256, the data it learned from (``train_data``) and the data of the models it started from in
    turn (``base_data``, specs). ``folder`` is where ``init_folder`` found it."""
    if not recipe.init:
        return None
    config = read_config(folder)
    record = {"path": recipe.init, "weights_sha256": config["weights_sha256"],
              "train_data": config["recipe"].get("train_data")}
    base = lineage(config.get("init"))
    return {**record, "base_data": base} if base else record


def lineage(record: dict | None) -> list[str]:
    """Every data spec the weights of an init ``record`` were trained on, its own data first."""
    return _own_specs(record) + _earlier_specs(record) if record else []


def base_model_data(record: dict | None) -> str | list | None:
    """What a card names as its initial model's data: the init's ``train_data`` as its recipe gave it (weights
    and all), then the specs of the models before it."""
    if not record:
        return None
    own, earlier = record.get("train_data"), _earlier_specs(record)
    if not earlier:
        return own
    return ([own] if isinstance(own, str) else list(own or [])) + earlier


def _own_specs(record: dict) -> list[str]:
    return [s.data for s in parse_sources(record["train_data"])] if record.get("train_data") else []


def _earlier_specs(record: dict) -> list[str]:
    """The specs of the models the init started from, less those it trained on itself."""
    own = _own_specs(record)
    return [spec for spec in record.get("base_data", []) if spec not in own]


def check_disjoint(other: PoseDataset, private: PoseDataset, private_images: dict, what: str, why: str) -> None:
    """PrivacyError unless ``other`` and the private set share no picture, by image id or by pixels.

    ``private_images`` is ``image_fingerprints(private)``, computed once by the caller; ``what`` names
    ``other`` in the message, ``why`` says why it must be disjoint.
    """
    overlap = other.image_ids() & private.image_ids()
    if overlap:
        raise PrivacyError(f"{what} shares {len(overlap)} image(s) with the private training data "
                           f"(e.g. {sorted(overlap)[0]}); {why}")
    # By content too: a renamed or re-encoded copy of a private photo has another id but the same pixels.
    other_images = image_fingerprints(other)
    shared = sorted(other_images.keys() & private_images.keys())
    if shared:
        raise PrivacyError(f"{what} shares {len(shared)} image(s) with the private training data by content "
                           f"(e.g. {other_images[shared[0]].image} = private {private_images[shared[0]].image}); "
                           f"{why}")


def check_init_unseen(record: dict, private: PoseDataset, private_images: dict,
                      attestation: str | None = None) -> dict:
    """PrivacyError if the initial model (its ``init_record``) learned from any picture of the private set, or if
    its data cannot be read here to tell and no ``attestation`` says why it can be trusted. Returns the record,
    noting the data that could not be read (``unchecked_data``) and the ``attestation`` it was taken on."""
    unchecked = []
    for spec in lineage(record):
        what = f"the initial model {record['path']} was trained on {spec}, which"
        try:
            seen = load_dataset(spec)
        except DatasetError as e:
            if attestation is None:
                raise PrivacyError(
                    f"cannot check that the initial model {record['path']} never saw the private people: its "
                    f"training data {spec} is not readable here ({e}); if you know why it did not, say so with "
                    f"--attest-init-unseen (recipe: init_unseen_attestation) and the card will quote it") from None
            unchecked.append(spec)
            continue
        check_disjoint(seen, private, private_images, what,
                       "its weights would carry those people outside this run's epsilon")
    if not unchecked:
        return record
    log.warning("not compared with the private people (not readable here), on the recipe's attestation: the "
                "initial model's data %s", ", ".join(unchecked))
    return {**record, "unchecked_data": unchecked, "attestation": attestation}


def attestation_note(record: dict | None) -> str:
    """The card's sentence for an init whose data could not be compared with the private people ('' if none)."""
    if not record or not record.get("unchecked_data"):
        return ""
    specs = ", ".join(f"`{spec}`" for spec in record["unchecked_data"])
    return (f"**Initial model not checked against the private people:** its training data {specs} was not "
            f"readable where this model was trained, so no picture of it was compared with the private set. "
            f"The trainer attested: \"{record['attestation']}\"")
