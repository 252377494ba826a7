"""Per-sample gradients, one per IMAGE, with ``torch.func``.

Why not Opacus' hooks: timm's TinyViT folds attention windows into the batch
dimension and owns attention-bias parameters that no Opacus layer knows, so a
hook would see windows, not images (see DESIGN.md, privacy engineering rules).
Here each sample runs alone, as a batch of one, through ``functional_call``
under ``vmap(grad(...))``: whatever the model does inside (windows, biases,
LayerNorm), the gradient is that of one image's loss.

Only parameters with ``requires_grad`` are differentiated; frozen parameters
and buffers enter as constants, so a ``finetune`` model pays per-sample memory
only for its trainable part.
"""

from __future__ import annotations

import contextlib
from typing import Callable, ContextManager

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from ..errors import PrivacyError
from .losses import simcc_loss

#: The batch keys the per-sample loss reads (others, e.g. ``index``, are ignored).
BATCH_KEYS = ("image", "target_x", "target_y", "weight")

LossFn = Callable[..., torch.Tensor]


def trainable_names(model: nn.Module) -> list[str]:
    """Sorted names of the parameters with ``requires_grad``: THE fixed order.

    Noise draws, flattening and the projection basis all use this order, so a
    seed reproduces the same noise and a basis lines up with a gradient.
    """
    return sorted(n for n, p in model.named_parameters() if p.requires_grad)


def batch_size(batch: dict[str, torch.Tensor]) -> int:
    """Number of samples in a batch (its images)."""
    return int(batch["image"].shape[0])


def slice_batch(batch: dict[str, torch.Tensor], start: int, stop: int) -> dict[str, torch.Tensor]:
    """Samples ``start:stop`` of the keys the loss needs (views, no copy)."""
    return {k: batch[k][start:stop] for k in BATCH_KEYS}


def check_attention_cache_safe(model: nn.Module) -> None:
    """Refuse a model whose attention-bias cache could be read during ``functional_call``.

    timm's TinyViT ``Attention.get_attention_biases`` indexes
    ``attention_biases`` afresh in training mode but, in eval mode, caches the
    indexed tensor per device and reuses it. Under ``functional_call`` the
    cached tensor would be the one built from the module's own parameters (or
    a ``grad`` tracer leaked from an earlier transform), not the parameters
    being differentiated: the attention-bias gradient would silently be zero
    and the forward pass stale. ``TinyViTSimCC.train()`` puts attention in
    training mode (only BatchNorm stays in eval), and ``Attention.train()``
    empties the cache, so the DP engine requires exactly that.
    """
    stale = [name for name, m in model.named_modules() if hasattr(m, "attention_bias_cache") and not m.training]
    if stale:
        raise PrivacyError(
            "per-sample gradients need the model in train() mode: timm's TinyViT attention caches its "
            f"attention biases in eval mode, which would make per-sample gradients wrong ({stale[0]} and "
            f"{len(stale) - 1} more are in eval mode); call model.train() first"
        )


_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)


def _float_input(module: nn.Module, args: tuple) -> tuple:
    return (args[0].float(), *args[1:])


@contextlib.contextmanager
def norms_take_float32(model: nn.Module):
    """Hand every normalisation layer a float32 input explicitly while the context lasts.

    Autocast runs LayerNorm, GroupNorm and BatchNorm in float32 anyway; but when
    it inserts that cast itself, the backward pass under ``vmap(grad(...))``
    fails on a float32/bfloat16 mismatch (torch 2.14). An explicit cast before
    the layer is the same maths, and the transforms handle it.
    """
    handles = [m.register_forward_pre_hook(_float_input) for m in model.modules() if isinstance(m, _NORMS)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _empty_gradients(model: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    return {n: params[n].new_zeros((0, *params[n].shape)) for n in names}


def per_sample_gradients(model: nn.Module, batch: dict[str, torch.Tensor], *,
                         loss_fn: LossFn = simcc_loss, prefix_units: int = 0,
                         autocast: Callable[[], ContextManager] = contextlib.nullcontext) -> dict[str, torch.Tensor]:
    """Gradients of each sample's loss w.r.t. every parameter with requires_grad, shape (n, *param.shape).

    Each sample is run as a batch of one (``unsqueeze(0)``), so nothing in the
    model can mix samples; ``randomness="error"`` makes any stochastic layer
    (dropout, drop-path) fail loudly instead of giving per-sample gradients
    that a plain backward pass could not reproduce. With ``prefix_units`` the
    batch's ``image`` holds cached features of the model's frozen prefix
    (``TinyViTSimCC.frozen_prefix``). A batch whose ``image`` is
    ``(n, views, 3, H, W)`` (or cached features with the same leading axes) and whose targets are
    ``(n, views, joints, bins)`` holds several augmentations of each person: the
    person's gradient is that of the mean loss over its views (augmentation
    multiplicity; one person is still one sample). ``autocast`` wraps the forward pass
    alone (mixed precision, ``training.device.Precision.autocast``): the
    logits are cast back and the loss and the gradients of the float32
    parameters come out in float32. Peak memory is ``n`` times
    the trainable parameters plus the activations of ``n`` single forward
    passes: callers chunk big batches (see ``dp_step.clip_and_sum``).
    """
    check_attention_cache_safe(model)
    names = trainable_names(model)
    if not names:
        raise PrivacyError("the model has no trainable parameters (set_strategy first)")
    if batch_size(batch) == 0:
        return _empty_gradients(model, names)
    views = batch["target_x"].dim() == 4  # (n, views, joints, bins): SimCCDataset(views=K), cached or not
    named = dict(model.named_parameters())
    trainable = {n: named[n].detach() for n in names}
    frozen = {n: p.detach() for n, p in named.items() if not p.requires_grad}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def sample_loss(params: dict[str, torch.Tensor], image: torch.Tensor, target_x: torch.Tensor,
                    target_y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        kwargs = {"prefix_units": prefix_units} if prefix_units else {}
        if not views:  # one view: a batch of one
            image, target_x, target_y, weight = (t.unsqueeze(0) for t in (image, target_x, target_y, weight))
        with autocast():
            pred_x, pred_y = functional_call(model, (params, frozen, buffers), (image,), kwargs)
        # Several views of one person: the mean of their losses, so the gradient is the mean of theirs, taken
        # before clipping: one person's whole contribution is still clipped once (augmentation multiplicity).
        return loss_fn(pred_x.float(), pred_y.float(), target_x, target_y, weight).mean()

    per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0, 0, 0), randomness="error")
    with norms_take_float32(model) if autocast is not contextlib.nullcontext else contextlib.nullcontext():
        return per_sample(trainable, *(batch[k] for k in BATCH_KEYS))
