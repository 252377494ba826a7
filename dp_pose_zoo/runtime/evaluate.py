"""Predict every person of a data set with an ONNX model, torch-free: what ``dp-pose eval`` runs on ONNX.

The crops and the decoding are the runtime's own (``crop_batch``,
``decode_to_frame``: what :class:`PoseEstimator` runs on a frame), from each
annotated person's center and scale as ``training/evaluate.py`` crops them, so
a checkpoint and its export score the same people the same way.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from ..codec import simcc_logits
from ..datasets.base import PoseDataset
from .onnx_model import OnnxModel
from .pose_estimator import crop_batch, decode_to_frame


def predict_onnx(model: OnnxModel, dataset: PoseDataset, *, batch_size: int = 32, progress: bool = False,
                 flip_test: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints ``(N, 16, 2)`` in image pixels and scores ``(N, 16)`` for every record; ``flip_test``
    averages each crop's logits with its mirror's (``codec.flip_averaged``)."""
    records = dataset.records
    keypoints, scores = [], []
    bar = tqdm(total=len(records), desc="eval", unit="person", disable=not progress, leave=False)
    for start in range(0, len(records), batch_size):
        batch = records[start:start + batch_size]
        crops, inverses = zip(*(crop_batch(dataset.load_image(rec), rec.center[None], np.array([rec.scale]),
                                           model.input_size) for rec in batch))
        crops = np.concatenate(crops)
        simcc_x, simcc_y = simcc_logits(model.inference, crops, model.split_ratio, flip_test=flip_test)
        kpts, conf = decode_to_frame(simcc_x, simcc_y, model.split_ratio, np.concatenate(inverses))
        keypoints.append(kpts)
        scores.append(conf)
        bar.update(len(batch))
    bar.close()
    return np.concatenate(keypoints), np.concatenate(scores)
