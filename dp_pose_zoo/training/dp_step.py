"""One DP-SGD gradient: clip per sample, sum, add Gaussian noise (paper eq. 6-7).

Split in two on purpose: ``clip_and_sum`` is the only part that sees private
samples one by one; ``add_noise`` is the Gaussian mechanism on the sum. The
noisy sum is divided by the EXPECTED batch size ``q * N`` (as Opacus does under
Poisson sampling), never by the realised one: the realised size depends on
who was sampled, so dividing by it would leak membership.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import PrivacyError, RecipeError
from .losses import simcc_loss
from .device import FP32, Precision
from .per_sample import LossFn, batch_size, per_sample_gradients, slice_batch, trainable_names

#: Added to the norm before dividing, so a zero gradient does not divide by zero.
CLIP_EPS = 1e-6


def per_sample_norms(grads: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each sample's L2 norm over ALL parameters together (flat clipping), shape (n,).

    Clipping the concatenated gradient bounds one sample's whole contribution,
    which is what the sensitivity of the sum needs.
    """
    squares = [g.flatten(1).pow(2).sum(dim=1) for g in grads.values()]
    return torch.stack(squares, dim=0).sum(dim=0).sqrt()


def clip_factors(norms: torch.Tensor, clipping_norm: float) -> torch.Tensor:
    """min(1, C / (norm + eps)): scales each gradient to norm <= C, leaves small ones alone."""
    return (clipping_norm / (norms + CLIP_EPS)).clamp(max=1.0)


def _check_clip_args(clipping_norm: float, physical_batch_size: int) -> None:
    if not clipping_norm > 0:
        raise PrivacyError(f"clipping_norm must be > 0; got {clipping_norm}")
    if int(physical_batch_size) != physical_batch_size or physical_batch_size < 1:
        raise RecipeError(f"physical_batch_size must be a positive integer; got {physical_batch_size}")


def clip_and_sum(model: nn.Module, batch: dict[str, torch.Tensor], *, clipping_norm: float,
                 physical_batch_size: int, loss_fn: LossFn = simcc_loss,
                 prefix_units: int = 0, precision: Precision = FP32) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Sum of per-sample gradients, each clipped to L2 norm <= C, over a logical batch.

    The (logical, variable-size) batch is split into physical chunks; per chunk
    compute per-sample gradients, each sample's flat L2 norm over ALL trainable
    parameters, scale by min(1, C / (norm + 1e-6)), and add to a running sum.
    Peak memory is one chunk's per-sample gradients, whatever the logical batch
    size. An empty batch (n = 0, possible under Poisson sampling) returns zeros
    (the noise still has to be added by the caller).

    ``prefix_units``: the batch holds cached frozen-prefix features (see
    ``per_sample_gradients``). ``precision`` autocasts the forward passes only:
    the gradients, norms, clipping and the sum are float32 whatever it is.

    Returns ``(summed clipped gradients per parameter name, per-sample norms
    before clipping (n,))``. The norms are for monitoring (e.g. choosing C on
    public data); logging them for private data is not private.
    """
    _check_clip_args(clipping_norm, physical_batch_size)
    params = dict(model.named_parameters())
    names = trainable_names(model)
    summed = {n: torch.zeros_like(params[n], memory_format=torch.contiguous_format) for n in names}
    norms = []
    n = batch_size(batch)
    for start in range(0, n, physical_batch_size):
        grads = per_sample_gradients(model, slice_batch(batch, start, start + physical_batch_size), loss_fn=loss_fn,
                                     prefix_units=prefix_units, autocast=precision.autocast)
        chunk_norms = per_sample_norms(grads)
        factors = clip_factors(chunk_norms, clipping_norm)
        for name in names:
            summed[name] += torch.tensordot(factors.to(grads[name].dtype), grads[name], dims=1)
        norms.append(chunk_norms.detach())
        del grads  # free this chunk's per-sample gradients before the next chunk
    all_norms = torch.cat(norms) if norms else torch.zeros(0, device=batch["image"].device)
    return summed, all_norms


def noise_std(*, noise_multiplier: float, clipping_norm: float) -> float:
    """Standard deviation sigma * C of the Gaussian noise added to the clipped sum."""
    return float(noise_multiplier) * float(clipping_norm)


def add_noise(summed: dict[str, torch.Tensor], *, noise_multiplier: float, clipping_norm: float,
              expected_batch_size: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """(summed + N(0, (sigma*C)^2 I)) / expected_batch_size.

    Noise is drawn from ``generator`` parameter by parameter in sorted-name
    order, so a seed reproduces it exactly whatever order the dict was built
    in. ``noise_multiplier`` 0 is accepted (no noise: a non-private baseline);
    the accountant, not this function, decides what that is worth.
    """
    if not noise_multiplier >= 0:
        raise PrivacyError(f"noise_multiplier must be >= 0; got {noise_multiplier}")
    if not clipping_norm > 0:
        raise PrivacyError(f"clipping_norm must be > 0; got {clipping_norm}")
    if not expected_batch_size > 0:
        raise PrivacyError(f"expected_batch_size must be > 0; got {expected_batch_size}")
    std = noise_std(noise_multiplier=noise_multiplier, clipping_norm=clipping_norm)
    noisy = {}
    for name in sorted(summed):
        value = summed[name]
        noise = torch.randn(value.shape, generator=generator, dtype=value.dtype, device=generator.device)
        noisy[name] = (value + noise.to(value.device) * std) / expected_batch_size
    return noisy
