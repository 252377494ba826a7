"""The SimCC loss, per sample (the DP engine clips per-sample gradients of it)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def simcc_loss(pred_x: torch.Tensor, pred_y: torch.Tensor, target_x: torch.Tensor, target_y: torch.Tensor,
               weight: torch.Tensor, beta: float = 10.0) -> torch.Tensor:
    """KL divergence between softmax(beta * target) and softmax(beta * logits), per axis.

    mmpose's KLDiscretLoss with label softmax; summed over bins, added over the
    two axes, averaged over joints with ``weight`` (0 for unlabelled joints).
    Returns one loss per sample, shape ``(N,)``.
    """
    def kl(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(pred * beta, dim=-1)
        log_q = F.log_softmax(target * beta, dim=-1)
        return (log_q.exp() * (log_q - log_p)).sum(dim=-1)

    per_joint = (kl(pred_x, target_x) + kl(pred_y, target_y)) * weight
    return per_joint.mean(dim=-1)
