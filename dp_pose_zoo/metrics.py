"""PCKh, computed the way MPII tables are: HRNet's / mmpose's Python evaluation.

Followed reference: ``MPIIDataset.evaluate`` in leoxiaobin/deep-high-resolution-net.pytorch
(lib/dataset/mpii.py) and ``MpiiPCKAccuracy`` in open-mmlab/mmpose:

* head size = 0.6 (``SC_BIAS``) x the head box diagonal;
* a visible joint is correct when ``distance / head size <= alpha``;
  joints not visible in the ground truth are not counted at all;
* per group: Head is the head top alone (index 9); every other group is
  ``0.5 * (left + right)``, the two sides weighted equally whatever their counts;
* Mean: per-joint PCKh weighted by each joint's number of visible instances
  (HRNet's ``jnt_ratio``), pelvis and thorax left out;
* Mean@0.1: the same at alpha 0.1. (HRNet takes ``pckAll[11]`` of
  ``arange(0, 0.51, 0.01)``, i.e. alpha 0.11; mmpose takes index 10, alpha 0.1.
  We use 0.1, as mmpose does and as the column's name says.)

Beside the table, :func:`limb_pckh` gives Limbs and Limbs@0.1: the 12 limb joints
(``skeleton.LIMB_JOINTS``: no pelvis, thorax, upper neck or head top), weighted
like Mean. They are what a model with no MPII head points (BlazePose, COCO-trained
models) can be compared on without deriving any joint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .errors import DatasetError
from .skeleton import LIMB_JOINTS, NUM_JOINTS, PCKH_EXCLUDED, PCKH_GROUPS

HEAD_SIZE_FACTOR = 0.6  # MPII's SC_BIAS
PCKH_COLUMNS: tuple[str, ...] = tuple(name for name, _ in PCKH_GROUPS) + ("Mean", "Mean@0.1")
LIMB_COLUMNS: tuple[str, ...] = ("Limbs", "Limbs@0.1")


def pckh_per_joint(pred, gt, visible, head_boxes, alpha: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint PCKh in percent ``(16,)`` (nan where no instance is visible) and visible counts ``(16,)``.

    ``pred`` and ``gt`` are ``(N, 16, 2)``, ``visible`` ``(N, 16)``, ``head_boxes``
    ``(N, 4)`` ``x1, y1, x2, y2`` (a sequence with ``None`` for a missing box is
    accepted, and refused like any other missing box).
    """
    pred, gt, vis, head_boxes = _check_inputs(pred, gt, visible, head_boxes)
    correct = _correct(pred, gt, vis, head_sizes(head_boxes), alpha)
    counts = vis.sum(axis=0).astype(np.int64)
    hits = correct.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        pckh = np.where(counts > 0, 100.0 * hits / np.maximum(counts, 1), np.nan)
    return pckh, counts


def pckh_table(pred, gt, visible, head_boxes) -> dict[str, float]:
    """The MPII table row: Head, Shoulder, ..., Ankle, Mean, Mean@0.1 in percent.

    A left/right group whose one side has no visible instance takes the other
    side's value (HRNet would print nan there); nan only when both are empty.
    """
    pckh, counts = pckh_per_joint(pred, gt, visible, head_boxes, alpha=0.5)
    pckh_01, _ = pckh_per_joint(pred, gt, visible, head_boxes, alpha=0.1)
    table = {name: _group_value(pckh, joints) for name, joints in PCKH_GROUPS}
    table["Mean"] = weighted_mean(pckh, counts)
    table["Mean@0.1"] = weighted_mean(pckh_01, counts)
    return table


def limb_pckh(pred, gt, visible, head_boxes) -> dict[str, float]:
    """``{"Limbs": ..., "Limbs@0.1": ...}``: PCKh in percent over the 12 limb joints at alpha 0.5 and 0.1.

    Weighted by visible instances as Mean is (so it is the share of visible limb
    joints that are correct); nan when no limb joint is visible. Same inputs as
    :func:`pckh_table`.
    """
    pckh, counts = pckh_per_joint(pred, gt, visible, head_boxes, alpha=0.5)
    pckh_01, _ = pckh_per_joint(pred, gt, visible, head_boxes, alpha=0.1)
    return {"Limbs": weighted_mean(pckh, counts, joints=LIMB_JOINTS),
            "Limbs@0.1": weighted_mean(pckh_01, counts, joints=LIMB_JOINTS)}


def format_limb_line(limbs: Mapping[str, float]) -> str:
    """One line for under the table: ``Limbs (12 joints, no head/neck/pelvis/thorax): PCKh@0.5 x  PCKh@0.1 y``."""
    return (f"Limbs ({len(LIMB_JOINTS)} joints, no head/neck/pelvis/thorax): "
            f"PCKh@0.5 {float(limbs['Limbs']):.2f}  PCKh@0.1 {float(limbs['Limbs@0.1']):.2f}")


def format_pckh_table(table: Mapping[str, float], title: str | None = None) -> str:
    """One header row and one value row (2 decimals), columns right-aligned like the papers' tables.

    With ``title``, a first column holds it (left-aligned, blank header).
    """
    missing = [c for c in PCKH_COLUMNS if c not in table]
    if missing:
        raise ValueError(f"PCKh table lacks column(s): {', '.join(missing)}")
    headers = list(PCKH_COLUMNS)
    values = [f"{float(table[c]):.2f}" for c in PCKH_COLUMNS]
    widths = [max(len(h), len(v)) for h, v in zip(headers, values)]
    header_cells = [h.rjust(w) for h, w in zip(headers, widths)]
    value_cells = [v.rjust(w) for v, w in zip(values, widths)]
    if title is not None:
        width = len(title)
        header_cells.insert(0, "".ljust(width))
        value_cells.insert(0, title.ljust(width))
    return "  ".join(header_cells).rstrip() + "\n" + "  ".join(value_cells)


def head_sizes(head_boxes: np.ndarray) -> np.ndarray:
    """``(N,)`` head sizes: 0.6 x the diagonal of each ``x1, y1, x2, y2`` box."""
    boxes = np.asarray(head_boxes, dtype=np.float64)
    return HEAD_SIZE_FACTOR * np.linalg.norm(boxes[:, 2:4] - boxes[:, 0:2], axis=1)


def weighted_mean(pckh: np.ndarray, counts: np.ndarray, *, joints: Sequence[int] | None = None) -> float:
    """Mean PCKh weighted by visible counts (HRNet's jnt_ratio) over ``joints``; by default every
    joint outside PCKH_EXCLUDED (MPII's Mean)."""
    if joints is None:
        keep = np.ones(NUM_JOINTS, dtype=bool)
        keep[list(PCKH_EXCLUDED)] = False
    else:
        keep = np.zeros(NUM_JOINTS, dtype=bool)
        keep[list(joints)] = True
    keep &= counts > 0
    total = counts[keep].sum()
    if total == 0:
        return float("nan")
    return float(np.sum(pckh[keep] * counts[keep]) / total)


def _group_value(pckh: np.ndarray, joints: tuple[int, ...]) -> float:
    """Equal-weight mean of the group's joints (0.5 * (left + right)), skipping empty ones."""
    values = pckh[list(joints)]
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def _correct(pred: np.ndarray, gt: np.ndarray, vis: np.ndarray, sizes: np.ndarray,
             alpha: float) -> np.ndarray:
    """Boolean ``(N, 16)``: visible in the ground truth and within ``alpha`` head sizes.

    Distances are divided by the head size before the comparison, as HRNet
    does, so a joint exactly at ``alpha`` head sizes counts as correct. A nan
    prediction is wrong.
    """
    dist = np.linalg.norm(pred - gt, axis=2)
    with np.errstate(invalid="ignore"):
        scaled = dist / sizes[:, None]
        return (scaled <= alpha) & vis


def _check_inputs(pred, gt, visible, head_boxes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Arrays of the documented shapes; ValueError on shapes, DatasetError on head boxes."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    vis = np.asarray(visible, dtype=np.float64)
    if gt.ndim != 3 or gt.shape[1:] != (NUM_JOINTS, 2):
        raise ValueError(f"gt must be (N, {NUM_JOINTS}, 2), got {gt.shape}")
    n = gt.shape[0]
    if pred.shape != gt.shape:
        raise ValueError(f"pred must have gt's shape {gt.shape}, got {pred.shape}")
    if vis.shape != (n, NUM_JOINTS):
        raise ValueError(f"visible must be ({n}, {NUM_JOINTS}), got {vis.shape}")
    boxes = _as_head_boxes(head_boxes, n)
    sizes = head_sizes(boxes)
    bad = int(np.sum(~(np.isfinite(sizes) & (sizes > 0))))
    if bad:
        raise DatasetError(
            f"PCKh needs a head box for every person: {bad} of {n} are missing or degenerate (zero diagonal)"
        )
    return pred, gt, vis > 0, boxes


def _as_head_boxes(head_boxes, n: int) -> np.ndarray:
    """``(n, 4)`` float boxes, with nan rows where the input has ``None``."""
    if isinstance(head_boxes, Sequence) and not isinstance(head_boxes, (str, bytes)):
        rows = [np.full(4, np.nan) if box is None else np.asarray(box, dtype=np.float64).reshape(-1)
                for box in head_boxes]
        if any(row.shape != (4,) for row in rows):
            raise ValueError("each head box must be 4 numbers x1, y1, x2, y2")
        boxes = np.stack(rows) if rows else np.zeros((0, 4))
    else:
        boxes = np.asarray(head_boxes, dtype=np.float64)
    if boxes.shape != (n, 4):
        raise ValueError(f"head_boxes must be ({n}, 4), got {boxes.shape}")
    return boxes
