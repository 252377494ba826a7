"""SimCC: keypoints as two 1-D classifications, one over x bins, one over y bins.

With split ratio ``k`` a crop of width W has ``W * k`` x bins; bin ``i``
stands for the coordinate ``i / k``. Encoding places a Gaussian (label
smoothing, peak 1) on each axis at the joint's coordinate; decoding takes the
arg-max bin of each axis. Pure numpy: the runtime decodes without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .skeleton import FLIP_INDEX


@dataclass(frozen=True)
class SimCCCodec:
    """Encode/decode SimCC targets for crops of ``input_size = (height, width)``.

    The default sigmas are mmpose's RTMPose ones for 256x192 at k=2, scaled with
    the crop so a smaller training crop keeps the same relative smoothing.
    """

    input_size: tuple[int, int] = (256, 192)
    split_ratio: float = 2.0
    sigma: tuple[float, float] | None = None  # (x, y) in bins

    @property
    def num_bins(self) -> tuple[int, int]:
        """``(x_bins, y_bins)``."""
        h, w = self.input_size
        return int(round(w * self.split_ratio)), int(round(h * self.split_ratio))

    @property
    def sigmas(self) -> tuple[float, float]:
        if self.sigma is not None:
            return self.sigma
        h, w = self.input_size
        return 4.9 * w / 192.0, 5.66 * h / 256.0

    def encode(self, keypoints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Targets for one person.

        ``keypoints (K, 2)`` in crop pixels, ``visible (K,)``. Returns
        ``target_x (K, x_bins)``, ``target_y (K, y_bins)`` (float32) and
        ``weight (K,)``: 1 for a visible joint inside the crop, else 0.
        """
        kpts = np.asarray(keypoints, dtype=np.float64)
        vis = np.asarray(visible, dtype=np.float64) > 0
        x_bins, y_bins = self.num_bins
        h, w = self.input_size
        inside = (kpts[:, 0] >= 0) & (kpts[:, 0] <= w - 1) & (kpts[:, 1] >= 0) & (kpts[:, 1] <= h - 1)
        weight = (vis & inside).astype(np.float32)
        sx, sy = self.sigmas
        mu = kpts * self.split_ratio
        target_x = np.exp(-((np.arange(x_bins)[None, :] - mu[:, :1]) ** 2) / (2 * sx**2))
        target_y = np.exp(-((np.arange(y_bins)[None, :] - mu[:, 1:]) ** 2) / (2 * sy**2))
        target_x *= weight[:, None]
        target_y *= weight[:, None]
        return target_x.astype(np.float32), target_y.astype(np.float32), weight

    def decode(self, simcc_x: np.ndarray, simcc_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints ``(..., K, 2)`` in crop pixels and confidences ``(..., K)``.

        The confidence is the smaller of the two axes' maximum logits, as
        mmpose and rtmlib report it (trained towards 1 at the joint).
        """
        return decode_simcc(simcc_x, simcc_y, self.split_ratio)


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray, split_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Arg-max decode of SimCC logits ``(..., K, bins)``; see :meth:`SimCCCodec.decode`."""
    simcc_x = np.asarray(simcc_x)
    simcc_y = np.asarray(simcc_y)
    x = np.argmax(simcc_x, axis=-1).astype(np.float32)
    y = np.argmax(simcc_y, axis=-1).astype(np.float32)
    score = np.minimum(simcc_x.max(axis=-1), simcc_y.max(axis=-1)).astype(np.float32)
    keypoints = np.stack([x, y], axis=-1) / np.float32(split_ratio)
    return keypoints, score


def flip_back_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray, split_ratio: float,
                    flip_index: np.ndarray = FLIP_INDEX) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``(N, K, bins)`` a model gave for horizontally mirrored crops, mapped back onto the crops.

    Left and right joints swap (``flip_index``) and the x bins mirror. Pixel
    centres mirror as x -> W - 1 - x, which is bin ``(W - 1) k - i``: the
    reversed bins shifted by k - 1 (plain reversal would put every x half a
    pixel off at k = 2). The last k - 1 bins, beyond the mirrored crop's edge,
    repeat the edge bin. Needs an integer split ratio.
    """
    shift = float(split_ratio) - 1
    if shift < 0 or shift != int(shift):
        raise ValueError(f"flip test needs an integer split ratio >= 1; got {split_ratio}")
    shift = int(shift)
    x = np.asarray(simcc_x)[:, flip_index, ::-1]
    if shift:
        x = np.concatenate([x[..., shift:], np.repeat(x[..., -1:], shift, axis=-1)], axis=-1)
    return np.ascontiguousarray(x), np.ascontiguousarray(np.asarray(simcc_y)[:, flip_index])


def simcc_logits(infer: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], crops: np.ndarray,
                 split_ratio: float, *, flip_test: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``infer(crops)``, or with ``flip_test`` :func:`flip_averaged`: how every prediction path runs a model."""
    return flip_averaged(infer, crops, split_ratio) if flip_test else infer(crops)


def flip_averaged(infer: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], crops: np.ndarray,
                  split_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """``infer``'s logits for ``crops (N, 3, H, W)`` averaged with those for the crops mirrored (mmpose's
    flip test): one batch of 2N through the model, at twice the cost of ``infer(crops)``."""
    both_x, both_y = infer(np.concatenate([crops, crops[..., ::-1]]))
    n = len(crops)
    back_x, back_y = flip_back_simcc(both_x[n:], both_y[n:], split_ratio)
    return (both_x[:n] + back_x) / 2, (both_y[:n] + back_y) / 2
