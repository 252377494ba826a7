"""Membership inference against a model: an empirical check of its epsilon.

Two attacks score each person; a higher score means "was trained on":
- loss threshold (Yeom et al. 2018): minus the model's SimCC loss on the person;
- calibrated loss (Watson et al. 2022): the reference model's loss minus the target's,
  which cancels how hard the person is; the reference is a model that never saw the
  private data, e.g. the public pretraining the run started from.

An (epsilon, delta)-DP training bounds every such test: TPR <= e^eps FPR + delta and
(1 - FPR) <= e^eps (1 - TPR) + delta. Inverting the bounds on an attack's measured
rates gives a lower bound on the epsilon the model can have (Jagielski et al. 2020).
The threshold is picked on one half of the people and the rates are measured on the
other half with Clopper-Pearson intervals, so the bound holds with the stated
confidence and is never flattered by the choice of threshold.

The attacked model is a forward pass, images to SimCC logits: a checkpoint's
torch model (:func:`torch_forward`) or a released ONNX file (:func:`onnx_forward`),
so what ships is what gets attacked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from scipy.stats import beta as beta_dist
from scipy.stats import rankdata

from ..codec import SimCCCodec
from ..datasets.base import PoseDataset
from .data import SimCCDataset
from .losses import simcc_loss
from .model import TinyViTSimCC

if TYPE_CHECKING:  # the runtime's ONNX model is passed in, not imported here
    from ..runtime.onnx_model import OnnxModel

# images (N, 3, H, W) -> SimCC logits (N, K, x_bins), (N, K, y_bins)
Forward = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

MIN_PEOPLE = 4  # per side: each is halved into threshold-picking and evaluation people


def torch_forward(model: TinyViTSimCC) -> Forward:
    """A checkpoint's model as the attack's forward pass (in eval mode: no dropout)."""
    model.eval()
    return model


def onnx_forward(model: OnnxModel) -> Forward:
    """An ONNX model as the attack's forward pass: the same normalized crops in, the same logits out."""
    def forward(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        simcc_x, simcc_y = model.inference(images.numpy())
        return torch.from_numpy(simcc_x), torch.from_numpy(simcc_y)
    return forward


def crop_batches(dataset: PoseDataset, input_size: tuple[int, int], split_ratio: float, *,
                 batch_size: int = 32) -> list[dict[str, torch.Tensor]]:
    """``dataset``'s people as a model's training inputs and targets (no augmentation), batched.

    Prepared once, they serve any number of models of the same input size and split ratio (a grid's audit).
    """
    data = SimCCDataset(dataset, SimCCCodec(tuple(input_size), split_ratio))
    batches = []
    for start in range(0, len(data), batch_size):
        items = [data[i] for i in range(start, min(start + batch_size, len(data)))]
        batches.append({k: torch.stack([it[k] for it in items]) for k in ("image", "target_x", "target_y", "weight")})
    return batches


@torch.no_grad()
def batch_losses(forward: Forward, batches: list[dict[str, torch.Tensor]]) -> np.ndarray:
    """The training loss of every person in ``batches`` (see :func:`crop_batches`), shape ``(N,)``."""
    losses = [simcc_loss(*forward(b["image"]), b["target_x"], b["target_y"], b["weight"]) for b in batches]
    return torch.cat(losses).double().numpy()


def roc_auc(members: np.ndarray, non_members: np.ndarray) -> float:
    """P(score of a member > score of a non-member), ties counted half (Mann-Whitney U)."""
    members, non_members = np.asarray(members, float), np.asarray(non_members, float)
    ranks = rankdata(np.concatenate([members, non_members]))  # average ranks for ties
    n1, n0 = len(members), len(non_members)
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def clopper_pearson(successes: int, trials: int, alpha: float) -> tuple[float, float]:
    """One-sided exact bounds: the true rate is >= lo with 1 - alpha, and <= hi with 1 - alpha."""
    lo = 0.0 if successes == 0 else float(beta_dist.ppf(alpha, successes, trials - successes + 1))
    hi = 1.0 if successes == trials else float(beta_dist.ppf(1 - alpha, successes + 1, trials - successes))
    return lo, hi


def epsilon_from_rates(tpr: float, fpr: float, delta: float) -> float:
    """The smallest epsilon an (epsilon, delta)-DP mechanism needs to reach (tpr, fpr); 0 if none."""
    def log_ratio(num: float, den: float) -> float:
        if num <= 0:
            return 0.0
        return math.inf if den <= 0 else math.log(num / den)

    return max(0.0, log_ratio(tpr - delta, fpr), log_ratio(1 - fpr - delta, 1 - tpr))


def _rates(members: np.ndarray, non_members: np.ndarray, threshold: float) -> tuple[int, int]:
    return int((members >= threshold).sum()), int((non_members >= threshold).sum())


def _bound_at(members, non_members, threshold, delta, alpha) -> float:
    tp, fp = _rates(members, non_members, threshold)
    tpr_lo, _ = clopper_pearson(tp, len(members), alpha)
    _, fpr_hi = clopper_pearson(fp, len(non_members), alpha)
    return epsilon_from_rates(tpr_lo, fpr_hi, delta)


def _pick_threshold(members: np.ndarray, non_members: np.ndarray, delta: float, alpha: float) -> float:
    """The threshold with the best bound on these people, from the middle of the best run of
    candidates: a threshold at the edge of a gap would lose the fresh half's edge cases."""
    scores = np.unique(np.concatenate([members, non_members]))
    candidates = np.concatenate([[scores[0]], (scores[:-1] + scores[1:]) / 2, [scores[-1] + 1]])
    bounds = np.array([_bound_at(members, non_members, t, delta, alpha) for t in candidates])
    best = np.flatnonzero(bounds == bounds.max())
    return float(candidates[best[len(best) // 2]])


@dataclass
class AttackResult:
    name: str
    auc: float
    epsilon_lower_bound: float  # holds with probability >= confidence
    threshold: float
    tpr: float  # on the evaluation half, at the threshold
    fpr: float
    confidence: float

    def to_dict(self) -> dict:
        return dict(vars(self))


def audit_scores(name: str, members: np.ndarray, non_members: np.ndarray, *, delta: float,
                 confidence: float = 0.95, seed: int = 0) -> AttackResult:
    """AUC on everyone, and the epsilon lower bound from a threshold chosen on a random half.

    ``confidence`` is split between the TPR and the FPR interval (union bound).
    """
    if len(members) < MIN_PEOPLE or len(non_members) < MIN_PEOPLE:
        raise ValueError(f"an audit needs at least {MIN_PEOPLE} members and {MIN_PEOPLE} non-members")
    alpha = (1 - confidence) / 2
    rng = np.random.default_rng(seed)
    m, n = rng.permutation(np.asarray(members, float)), rng.permutation(np.asarray(non_members, float))
    m_pick, m_eval = m[: len(m) // 2], m[len(m) // 2:]
    n_pick, n_eval = n[: len(n) // 2], n[len(n) // 2:]
    threshold = _pick_threshold(m_pick, n_pick, delta, alpha)
    tp, fp = _rates(m_eval, n_eval, threshold)
    return AttackResult(name=name, auc=roc_auc(members, non_members),
                        epsilon_lower_bound=_bound_at(m_eval, n_eval, threshold, delta, alpha),
                        threshold=float(threshold), tpr=tp / len(m_eval), fpr=fp / len(n_eval),
                        confidence=confidence)


def check_disjoint(members: PoseDataset, non_members: PoseDataset) -> None:
    overlap = members.image_ids() & non_members.image_ids()
    if overlap:
        raise ValueError(f"members and non-members share {len(overlap)} images (e.g. {sorted(overlap)[0]}); "
                         "an audit needs disjoint sets")


@dataclass
class AuditData:
    """Members' and non-members' crops, and the reference model's losses on them, computed once."""

    members: list[dict[str, torch.Tensor]]
    non_members: list[dict[str, torch.Tensor]]
    reference_losses: tuple[np.ndarray, np.ndarray] | None = None


def attack(forward: Forward, data: AuditData, *, delta: float, confidence: float = 0.95) -> list[AttackResult]:
    """Loss-threshold attack, plus the calibrated one when the data carries reference losses."""
    loss_in, loss_out = batch_losses(forward, data.members), batch_losses(forward, data.non_members)
    results = [audit_scores("loss threshold", -loss_in, -loss_out, delta=delta, confidence=confidence)]
    if data.reference_losses is not None:
        ref_in, ref_out = data.reference_losses
        results.append(audit_scores("loss vs reference", ref_in - loss_in, ref_out - loss_out,
                                    delta=delta, confidence=confidence))
    return results

