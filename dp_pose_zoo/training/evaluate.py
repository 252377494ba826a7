"""Predict every person of a data set with a torch model and score PCKh."""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from ..codec import decode_simcc, simcc_logits
from ..datasets.base import PoseDataset
from ..geometry import apply_affine, crop_matrix, warp_crop
from ..metrics import limb_pckh, pckh_table
from ..preprocess import normalize_crop
from .model import TinyViTSimCC


@torch.no_grad()
def predict(model: TinyViTSimCC, dataset: PoseDataset, *, batch_size: int = 32, progress: bool = False,
            flip_test: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints ``(N, 16, 2)`` in image pixels and scores ``(N, 16)`` for every record; ``flip_test``
    averages each crop's logits with its mirror's (``codec.flip_averaged``), as the runtime does."""
    model.eval()
    device = next(model.parameters()).device
    size = model.config.input_size
    keypoints, scores = [], []
    records = dataset.records

    def infer(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return tuple(t.float().cpu().numpy() for t in model(torch.from_numpy(images).to(device)))

    bar = tqdm(total=len(records), desc="eval", unit="person", disable=not progress, leave=False)
    for start in range(0, len(records), batch_size):
        batch = records[start:start + batch_size]
        inverses, crops = [], []
        for rec in batch:
            matrix = crop_matrix(rec.center, rec.scale, size)
            crops.append(normalize_crop(warp_crop(dataset.load_image(rec), matrix, size)))
            inverses.append(crop_matrix(rec.center, rec.scale, size, inverse=True))
        crops = np.stack(crops)
        simcc_x, simcc_y = simcc_logits(infer, crops, model.config.split_ratio, flip_test=flip_test)
        kpts, conf = decode_simcc(simcc_x, simcc_y, model.config.split_ratio)
        keypoints += [apply_affine(k, inv) for k, inv in zip(kpts, inverses)]
        scores.append(conf)
        bar.update(len(batch))
    bar.close()
    return np.stack(keypoints), np.concatenate(scores)


def evaluate(model: TinyViTSimCC, dataset: PoseDataset, *, batch_size: int = 32,
             progress: bool = False, flip_test: bool = False) -> dict[str, float]:
    """The PCKh table (Head ... Ankle, Mean, Mean@0.1) of ``model`` on ``dataset``, and the 12 limb joints'
    PCKh (Limbs, Limbs@0.1)."""
    pred, _ = predict(model, dataset, batch_size=batch_size, progress=progress, flip_test=flip_test)
    truth = dataset.ground_truth()
    return {**pckh_table(pred, *truth), **limb_pckh(pred, *truth)}
