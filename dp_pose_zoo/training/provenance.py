"""Where a run's weights come from, and the check that none of it saw the private people.

A DP run's epsilon covers only the gradients it takes itself. Weights it starts
from (``init``) that were trained on some of the same people already carry them,
and no number on the new card would say so. So a private run refuses an initial
model any of whose training data shares a picture with its private set: the
init's own ``train_data`` and, through the record every run keeps of its
initial model, the data of the models before it (a non-private fine-tune on the
private set, then one on public data, then DP on the private set again is
caught two steps back). Pictures are compared as PDP-SGD's public set is, by
image id and by decoded pixels.
"""

from __future__ import annotations

from ..datasets import PoseDataset, load_dataset
from ..datasets.base import image_fingerprints
from ..datasets.mixture import parse_sources
from ..errors import DatasetError, PrivacyError
from .checkpoint import read_config
from .config import Recipe


def init_record(recipe: Recipe) -> dict | None:
    """The initial model's provenance: where it was, its weights' sha256, the data it learned from
    (``train_data``) and the data of the models it started from in turn (``base_data``, specs)."""
    if not recipe.init:
        return None
    config = read_config(recipe.init)
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


def check_init_unseen(record: dict | None, private: PoseDataset, private_images: dict) -> None:
    """PrivacyError if the initial model (its ``init_record``) learned from any picture of the private set,
    or if its data cannot be read here to tell."""
    for spec in lineage(record):
        what = f"the initial model {record['path']} was trained on {spec}, which"
        try:
            seen = load_dataset(spec)
        except DatasetError as e:
            raise PrivacyError(f"cannot check that the initial model {record['path']} never saw the private "
                               f"people: its training data {spec} is not readable here ({e})") from None
        check_disjoint(seen, private, private_images, what,
                       "its weights would carry those people outside this run's epsilon")
