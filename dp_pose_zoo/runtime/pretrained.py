"""``PoseEstimator.from_pretrained``: a model by reference, with its card attached.

The reference is any that :func:`dp_pose_zoo.runtime.reference.resolve_reference`
reads: ``"default"`` (the embedded default), a local checkpoint or export
folder (or an ``.onnx`` file beside its card), or ``OWNER/REPO[@revision]``,
pulled from the Hub and verified (:func:`dp_pose_zoo.hub.pull`). A path that
exists wins over a Hub id that looks the same (``runs/demo``).

The card and the ONNX file must tell the same story: the ONNX metadata's
``weights_sha256`` (the safetensors it was exported from) must equal the
card's, and so must the privacy method and epsilon. A model file is checked
exactly as its folder is, against the same card (:mod:`dp_pose_zoo.release`).
A model without a card, or an ONNX without our metadata, is refused here --
:func:`open_estimator` (``dp-pose infer``) still opens a bare file; its
privacy is then, from its metadata, an unverified claim (``est.card`` is None).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

from ..card import Card
from .pose_estimator import PoseEstimator
from .reference import ModelRef, resolve_reference

log = logging.getLogger(__name__)


def from_pretrained(name_or_path: str | os.PathLike = "default", *, precision: str = "fp32",
                    revision: str | None = None, threads: int | None = None,
                    providers: Sequence[str] | None = None) -> PoseEstimator:
    """A :class:`PoseEstimator` for ``"default"``, a local path or ``OWNER/REPO[@rev]``; ``est.card`` is its card."""
    return PoseEstimator.from_pretrained(name_or_path, precision=precision, revision=revision, threads=threads,
                                         providers=providers)


def open_estimator(ref: ModelRef, *, precision: str = "fp32", threads: int | None = None,
                   providers: Sequence[str] | None = None) -> PoseEstimator:
    """The reference's model, verified against its card; a model file with no card is opened as it is.

    Its metadata's privacy is then its own claim (``est.card`` is None), labelled unverified in the outputs.
    """
    if ref.file is not None and not ref.verified:
        log.info("%s has no model card beside it: its privacy claim is unverified", ref.file)
        return PoseEstimator(ref.file, threads=threads, providers=providers)
    return PoseEstimator.from_reference(ref, precision=precision, threads=threads, providers=providers)


def resolve(name_or_path: str | os.PathLike, *, precision: str = "fp32",
            revision: str | None = None) -> tuple[Path, Card]:
    """The ONNX file and the validated card a model reference stands for (pulling from the Hub if needed)."""
    return resolve_reference(name_or_path, revision=revision, precision=precision).onnx(precision)
