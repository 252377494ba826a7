"""One model reference for every command: what ``MODEL`` names, and what it holds.

``infer``, ``eval``, ``export``, ``audit``, ``card``, ``demo`` and ``zoo push``
all take the same reference::

    default                   the embedded default (dp_pose_zoo.zoo.default_dir)
    OWNER/REPO[@REVISION]     a Hub release, pulled and verified (dp_pose_zoo.hub.pull)
    runs/demo                 a checkpoint folder (model.safetensors, config.json, README.md, onnx/)
    runs/demo/onnx            an export folder (model.onnx, model.int8.onnx, README.md)
    model.int8.onnx           a model file, checked against the card beside it (or above its onnx/)

A path that exists wins over a Hub id that looks the same (``runs/demo``).
:func:`resolve_reference` turns the text into a :class:`ModelRef` (a folder and
what it holds); each command asks it for what it needs -- an ONNX model
(:meth:`ModelRef.onnx`, verified by :func:`dp_pose_zoo.release.find_model`) or a
checkpoint with weights (:meth:`ModelRef.checkpoint`) -- and a reference that
lacks it is one line saying so. Torch-free: runtime layer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..card import Card
from ..errors import CheckpointError, ModelNotFoundError, UnknownModelError
from ..io import recover_dir
from ..release import CONFIG, ONNX_DIR, ONNX_FILES, ONNX_PATHS, WEIGHTS, find_model, has_card, has_checkpoint

CHECKPOINT_FILES = f"{WEIGHTS} and {CONFIG}"


@dataclass(frozen=True)
class ModelRef:
    """A resolved model reference: the release folder, and the model file when one was named."""

    text: str  # as the user wrote it
    source: str  # how messages name it: "the embedded default", "OWNER/REPO@<commit>", a path
    name: str  # a short name for output folders: "default", the repository's, the folder's or the file's
    folder: Path
    file: Path | None = None  # a model file named directly (then it is the model, whatever the folder holds)

    @property
    def has_weights(self) -> bool:
        """True for a checkpoint (trainable weights with their config), not for an ONNX-only model."""
        return self.file is None and has_checkpoint(self.folder)

    @property
    def has_onnx(self) -> bool:
        """True when the reference names a model file or its folder holds an ONNX export."""
        return self.file is not None or any((self.folder / p).is_file() for p in ONNX_PATHS)

    @property
    def verified(self) -> bool:
        """False only for a model file with no card beside it: its privacy claim is its own."""
        return self.file is None or has_card(self.file)

    def checkpoint(self, *, command: str, needs: str = "a checkpoint with weights") -> Path:
        """The checkpoint folder, or :class:`CheckpointError` saying in one line what this reference lacks."""
        if not self.has_weights and not self.has_onnx:
            missing = " or ".join(n for n in (CONFIG, WEIGHTS) if not (self.folder / n).is_file())
            raise CheckpointError(f"{self.source} is not a checkpoint directory (no {missing})")
        if not self.has_weights:
            kind = "a model file" if self.file is not None else "an ONNX-only model"
            raise CheckpointError(f"{command} needs {needs} ({CHECKPOINT_FILES}); {self.source} is {kind}: it can "
                                  "be run, evaluated, audited and quantized, not fine-tuned or re-exported")
        return self.folder

    def onnx(self, precision: str = "fp32") -> tuple[Path, Card]:
        """The ONNX model of ``precision`` and the card it was verified against (:func:`release.find_model`)."""
        if self.file is not None and self.file.suffix != ".onnx":
            raise CheckpointError(f"{self.source} is not an ONNX model file")
        return find_model(self.file or self.folder, precision=precision, source=self.source)


def resolve_reference(text: str | os.PathLike, *, revision: str | None = None,
                      precision: str | None = None) -> ModelRef:
    """What ``text`` names (see the module docstring); a Hub release is pulled and verified first.

    ``precision``, when given, is checked before anything is downloaded.
    """
    from .. import hub, zoo

    if precision is not None and precision not in ONNX_FILES:
        raise UnknownModelError(f"precision must be one of {', '.join(ONNX_FILES)}, got {precision!r}")
    name = os.fspath(text)
    if name == "default":
        return ModelRef(name, "the embedded default", "default", zoo.default_dir())
    path = recover_dir(Path(name).expanduser())  # a checkpoint swap cut short is restored, as load_model does
    if path.is_dir():
        return ModelRef(name, str(path), _short_name(path), path)
    if path.is_file():
        if path.suffix not in (".onnx", ".safetensors"):
            raise UnknownModelError(f"{path} is not a model file (.onnx), a checkpoint or export folder, "
                                    "'default' or OWNER/REPO")
        if path.suffix == ".safetensors":  # the weights file stands for its checkpoint
            return ModelRef(name, str(path.parent), _short_name(path.parent), path.parent)
        return ModelRef(name, str(path), _short_name(path.parent), path.parent, file=path)
    if path.suffix == ".onnx":
        raise ModelNotFoundError(f"ONNX model not found: {path}")
    if hub.is_repo_ref(name):
        pulled = hub.pull(name, revision=revision)
        return ModelRef(name, f"{pulled.repo_id}@{pulled.commit[:12]}", pulled.repo_id.split("/")[1], pulled.path)
    if os.sep in name or name.startswith(("~", ".")):
        raise ModelNotFoundError(f"checkpoint directory not found: {path} is not a checkpoint directory, an export "
                                 "folder, a model file, 'default' or OWNER/REPO")
    raise UnknownModelError(f"{name!r} is not 'default', an existing path, or a Hub id OWNER/REPO[@REVISION]")



def _short_name(folder: Path) -> str:
    """A checkpoint's folder name, also for its ``onnx/`` export folder."""
    folder = folder.resolve()
    return (folder.parent if folder.name == ONNX_DIR else folder).name
