"""The DP-SGD / PDP-SGD step (paper eq. 5-8), in one place: ``DPStep``.

``dp_step(batch, step)`` is Opacus' one verb: journal the step, clip each
sample's gradient and sum, sum over ranks, add Gaussian noise once, divide by
the expected batch size, project onto the public subspace (PDP-SGD), and let
the optimizer step. The maths it calls: ``per_sample`` (per-sample gradients)
and ``projection`` (the public subspace).

``clip_and_sum`` is the only part that sees private samples one by one;
``add_noise`` is the Gaussian mechanism on the sum. The noisy sum is divided
by the EXPECTED batch size ``q * N`` (as Opacus does under Poisson sampling),
never by the realised one: the realised size depends on who was sampled, so
dividing by it would leak membership.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..errors import PrivacyError, RecipeError
from .device import FP32, Precision, to_device
from .distributed import World, all_reduce_sum
from .ledger import LedgerJournal
from .losses import simcc_loss
from .per_sample import LossFn, batch_size, per_sample_gradients, slice_batch, trainable_names
from .projection import SubspaceProjector, flatten, public_gradients, unflatten

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


SAMPLING, NOISE = 0, 1  # independent random streams of a DP run's secret seed


def stream_seed(*words: int) -> int:
    """A 63-bit seed for the random stream named by ``words`` (e.g. ``(secret, NOISE, step)``)."""
    return int(np.random.SeedSequence([int(w) for w in words]).generate_state(1, dtype=np.uint64)[0] >> 1)


def poisson_sample(num_people: int, sample_rate: float, secret: int, step: int) -> list[int]:
    """The people in step ``step``: each independently with probability q, drawn from the secret seed.

    Who was sampled must stay hidden for the subsampling amplification to hold.
    """
    gen = torch.Generator().manual_seed(stream_seed(secret, SAMPLING, step))
    return torch.nonzero(torch.rand(num_people, generator=gen) < sample_rate).flatten().tolist()


class PublicSubspace:
    """PDP-SGD's projection: the top-k subspace of the public set's per-sample gradients, refit when due.

    Refit at the first step a run (or a resumed run) takes, then every
    ``refresh_every`` steps, or by default at each of ``epoch_starts``.
    Fitting reads public data only and projecting the noisy gradient is
    post-processing: neither costs privacy (the public set is checked
    disjoint from the private one before training).
    """

    def __init__(self, public: Dataset, k: int, *, refresh_every: int | None, epoch_starts: set[int],
                 physical_batch_size: int, precision: Precision = FP32, device: torch.device = torch.device("cpu")):
        self.public, self.k = public, k
        self.refresh_every, self.epoch_starts = refresh_every, epoch_starts
        self.physical_batch_size, self.precision, self.device = physical_batch_size, precision, device
        self.projector: SubspaceProjector | None = None

    def _due(self, step: int) -> bool:
        return step % self.refresh_every == 0 if self.refresh_every else step in self.epoch_starts

    def refresh_if_due(self, model: nn.Module, step: int) -> None:
        if self.projector is not None and not self._due(step):
            return
        loader = (to_device(b, self.device) for b in DataLoader(self.public, batch_size=self.physical_batch_size))
        grads = public_gradients(model, loader, physical_batch_size=self.physical_batch_size, precision=self.precision)
        self.projector = SubspaceProjector(self.k).fit(grads)

    def project(self, grads: dict[str, torch.Tensor], names: list[str]) -> dict[str, torch.Tensor]:
        return unflatten(self.projector.project(flatten(grads, names)), grads, names)


class DPStep:
    """One DP-SGD / PDP-SGD step: ``dp_step(batch, step)`` journals, clips, noises, projects and updates.

    ``batch`` is this rank's share of the step's Poisson sample (None when
    nobody was drawn: the noise is added all the same). The noise of step
    ``step`` comes from the secret seed's NOISE stream, identical on every
    rank, so it is added once. ``journal`` (rank 0 only) gets the step's line
    before the update, so a run killed at any point still counts every step;
    ``subspace`` makes the step PDP-SGD's.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *, noise_multiplier: float,
                 clipping_norm: float, sample_rate: float, expected_batch_size: float, physical_batch_size: int,
                 secret: int, journal: LedgerJournal | None = None, world: World = World(),
                 subspace: PublicSubspace | None = None, prefix_units: int = 0, precision: Precision = FP32):
        self.model, self.optimizer = model, optimizer
        self.noise_multiplier, self.clipping_norm = noise_multiplier, clipping_norm
        self.sample_rate, self.expected_batch_size = sample_rate, expected_batch_size
        self.physical_batch_size, self.prefix_units, self.precision = physical_batch_size, prefix_units, precision
        self.secret, self.journal, self.world, self.subspace = secret, journal, world, subspace
        self.names = trainable_names(model)
        self.params = dict(model.named_parameters())

    def __call__(self, batch: dict[str, torch.Tensor] | None, step: int) -> None:
        if self.journal is not None:  # journaled before the update: a kill after it still counts the step
            self.journal.append(self.noise_multiplier, self.sample_rate, self.journal.last_step + 1)
        if self.subspace is not None:
            self.subspace.refresh_if_due(self.model, step)  # public data only: no privacy cost
        noisy = self.noisy_gradient(batch, step)
        if self.subspace is not None:
            noisy = self.subspace.project(noisy, self.names)  # post-processing of the noisy gradient
        for name in self.names:  # every trainable parameter's gradient is replaced: nothing to zero first
            self.params[name].grad = noisy[name]
        self.optimizer.step()

    def noisy_gradient(self, batch: dict[str, torch.Tensor] | None, step: int) -> dict[str, torch.Tensor]:
        """(sum over ranks of the clipped per-sample gradients + N(0, (sigma C)^2 I)) / (q N)."""
        if batch is None:
            summed = {n: torch.zeros_like(self.params[n]) for n in self.names}
        else:
            summed, _ = clip_and_sum(self.model, batch, clipping_norm=self.clipping_norm,
                                     physical_batch_size=self.physical_batch_size, prefix_units=self.prefix_units,
                                     precision=self.precision)
        summed = all_reduce_sum(summed, self.world)  # every rank's share: each example counts once
        gen = torch.Generator().manual_seed(stream_seed(self.secret, NOISE, step))
        return add_noise(summed, noise_multiplier=self.noise_multiplier, clipping_norm=self.clipping_norm,
                         expected_batch_size=self.expected_batch_size, generator=gen)
