"""The base of every runtime model: one class owns the ONNX Runtime session (rtmlib's BaseTool).

It opens the file, reads our metadata (privacy block, input size, SimCC split
ratio, joint names, source weights' sha256) and runs batches. Models built by
subclasses add preprocess and postprocess around :meth:`OnnxModel.inference`.

An ONNX file without our metadata is *usable with a warning* when its graph
has our layout (one ``(N, 3, H, W)`` input with fixed H and W, two SimCC
outputs ``(N, 16, bins)`` with fixed bins): the input size and split ratio are
read off the graph, and ``metadata["privacy"]`` is ``None``, meaning "unknown"
-- never assume such a model is private. Pass ``require_metadata=True`` to
refuse it instead. A corrupt or truncated file is always refused.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnxruntime as ort

from ..errors import CheckpointError
from ..skeleton import JOINT_NAMES, NUM_JOINTS
from .metadata import decode_metadata

log = logging.getLogger(__name__)

DEFAULT_PROVIDERS: tuple[str, ...] = ("CPUExecutionProvider",)


def session_options(threads: int | None) -> ort.SessionOptions:
    """Options for a CPU session using ``threads`` intra-op threads (None: ORT's default)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # ORT's own warnings go to stderr unasked; ours go to logging
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    return opts


def open_session(path: Path, *, threads: int | None = None,
                 providers: Sequence[str] | None = None) -> ort.InferenceSession:
    """An ORT session for ``path``; a file ORT cannot load becomes one-line :class:`CheckpointError`."""
    if not path.is_file():
        raise CheckpointError(f"ONNX model not found: {path}")
    try:
        return ort.InferenceSession(os.fspath(path), sess_options=session_options(threads),
                                    providers=list(providers or DEFAULT_PROVIDERS))
    except Exception as e:  # ORT raises its own pybind classes (InvalidProtobuf, Fail, ...)
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if len(reason) > 160:
            reason = reason[:157] + "..."
        raise CheckpointError(f"{path} is not a loadable ONNX model (corrupt or truncated?): {reason}") from None


class OnnxModel:
    """An ONNX SimCC pose model and its metadata; :meth:`inference` runs one batch."""

    def __init__(self, model_path: str | os.PathLike, *, threads: int | None = None,
                 providers: Sequence[str] | None = None, require_metadata: bool = False):
        self.path = Path(model_path)
        self.session = open_session(self.path, threads=threads, providers=providers)
        inputs = self.session.get_inputs()
        outputs = self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 2:
            raise CheckpointError(f"{self.path}: expected 1 input and 2 outputs (SimCC x, y); "
                                  f"got {len(inputs)} and {len(outputs)}")
        self.input_name = inputs[0].name
        by_name = {o.name: o for o in outputs}
        ordered = [by_name["simcc_x"], by_name["simcc_y"]] if {"simcc_x", "simcc_y"} <= set(by_name) else outputs
        self.output_names = [o.name for o in ordered]
        props = self.session.get_modelmeta().custom_metadata_map
        meta = decode_metadata(dict(props), source=str(self.path))
        if not meta:
            if require_metadata:
                raise CheckpointError(f"{self.path} has no dp_pose_zoo metadata (privacy block, input size); "
                                      "refusing it as asked")
            meta = self._metadata_from_graph(inputs[0].shape, [o.shape for o in ordered])
            log.warning("%s has no dp_pose_zoo metadata: its privacy is unknown; input size %s and split ratio "
                        "%g were read off the graph", self.path, meta["input_size"], meta["split_ratio"])
        self._check_graph(inputs[0].shape, meta)
        self._metadata = meta
        batch = inputs[0].shape[0]
        self.max_batch = batch if isinstance(batch, int) and batch > 0 else None

    @property
    def metadata(self) -> dict[str, Any]:
        """Our metadata: privacy (None = unknown), input_size (h, w), split_ratio, joint_names, ..."""
        return dict(self._metadata)

    @property
    def input_size(self) -> tuple[int, int]:
        return self._metadata["input_size"]

    @property
    def split_ratio(self) -> float:
        return self._metadata["split_ratio"]

    def inference(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """SimCC logits ``(N, K, x_bins)``, ``(N, K, y_bins)`` for a ``(N, 3, H, W)`` float32 batch."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if len(batch) == 0:
            h, w = self.input_size
            k = len(self._metadata["joint_names"])
            r = self.split_ratio
            return (np.zeros((0, k, int(round(w * r))), np.float32), np.zeros((0, k, int(round(h * r))), np.float32))
        step = self.max_batch or max(len(batch), 1)
        xs, ys = [], []
        for start in range(0, len(batch), step):
            x, y = self.session.run(self.output_names, {self.input_name: batch[start:start + step]})
            xs.append(x)
            ys.append(y)
        return np.concatenate(xs), np.concatenate(ys)

    def _metadata_from_graph(self, input_shape, output_shapes) -> dict[str, Any]:
        """Input size and split ratio of a foreign model whose layout is ours; refuse anything else."""
        fixed = lambda dims: all(isinstance(d, int) and d > 0 for d in dims)  # noqa: E731
        if len(input_shape) != 4 or input_shape[1] != 3 or not fixed(input_shape[2:]):
            raise CheckpointError(f"{self.path} has no dp_pose_zoo metadata and its input {input_shape} is not "
                                  "(N, 3, H, W) with fixed H and W; cannot use it")
        if any(len(s) != 3 or s[1] != NUM_JOINTS or not fixed(s[2:]) for s in output_shapes):
            raise CheckpointError(f"{self.path} has no dp_pose_zoo metadata and its outputs {output_shapes} are not "
                                  f"two SimCC maps (N, {NUM_JOINTS}, bins); cannot use it")
        h, w = int(input_shape[2]), int(input_shape[3])
        return {"format_version": None, "privacy": None, "input_size": (h, w),
                "split_ratio": output_shapes[0][2] / w, "joint_names": list(JOINT_NAMES), "weights_sha256": None}

    def _check_graph(self, input_shape, meta: dict[str, Any]) -> None:
        h, w = meta["input_size"]
        dims = list(input_shape[2:]) if len(input_shape) == 4 else []
        if len(dims) != 2 or any(isinstance(d, int) and d != want for d, want in zip(dims, (h, w))):
            raise CheckpointError(f"{self.path}: input shape {input_shape} does not match the metadata's "
                                  f"input size {(h, w)}")
        if len(meta["joint_names"]) != NUM_JOINTS:
            raise CheckpointError(f"{self.path}: {len(meta['joint_names'])} joint names; this runtime reads "
                                  f"MPII's {NUM_JOINTS}")
