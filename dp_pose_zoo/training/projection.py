"""PDP-SGD's public gradient subspace (paper eq. 5 and 8).

The basis is the exact top-k eigenvectors of the second-moment matrix
``M = (1/m) sum_i g_i g_i^T = G^T G / m`` of ``m`` PER-SAMPLE public gradients
(``G``: m x p; the reference code used one gradient per batch, so its basis had
rank <= 4). ``p`` is millions and ``m`` about a hundred, so ``M`` (p x p) is
never formed: the non-zero eigenpairs of ``G^T G`` come from the m x m Gram
matrix ``K = G G^T``. If ``K u = mu u`` then ``v = G^T u / sqrt(mu)`` is a unit
eigenvector of ``G^T G`` with eigenvalue ``mu``, and of ``M`` with ``mu / m``.

Memory: ``G`` is m x p floats (the caller's, float32: 100 x 5.6M x 4 B = 2.2 GB
for the ``full`` strategy at 256x192, much less for ``finetune``), ``V`` is
p x k floats (stored float32). The float64 work is the m x m Gram matrix and
column blocks of ``G`` (``_BLOCK`` columns at a time), never a float64 copy of
``G`` or ``V``.

Projection is post-processing of the noisy gradient, so it costs no privacy,
provided the public set is disjoint from the private one (the trainer checks).
"""

from __future__ import annotations

import logging
from typing import Iterable

import torch
from torch import nn

from ..errors import PrivacyError, RecipeError
from .device import FP32, Precision
from .per_sample import batch_size, per_sample_gradients, slice_batch, trainable_names

log = logging.getLogger(__name__)

#: Columns of G processed at a time in float64 (bounds the float64 temporaries to m x _BLOCK).
_BLOCK = 1 << 18


def flatten(grads: dict[str, torch.Tensor], names: list[str], *, batched: bool = False) -> torch.Tensor:
    """Concatenate gradients in the order of ``names``: (p,), or (n, p) with ``batched``.

    ``batched`` says whether each tensor carries a leading sample dimension
    (per-sample gradients); it cannot be guessed from the shapes.
    """
    if batched:
        return torch.cat([grads[n].reshape(grads[n].shape[0], -1) for n in names], dim=1)
    return torch.cat([grads[n].reshape(-1) for n in names])


def unflatten(vector: torch.Tensor, like: dict[str, torch.Tensor], names: list[str]) -> dict[str, torch.Tensor]:
    """Inverse of ``flatten``: a (p,) vector (or (n, p) rows) back to tensors shaped like ``like``."""
    sizes = [like[n].numel() for n in names]
    total = sum(sizes)
    if vector.shape[-1] != total or vector.dim() not in (1, 2):
        raise ValueError(f"expected a ({total},) or (n, {total}) tensor; got shape {tuple(vector.shape)}")
    lead = tuple(vector.shape[:-1])
    pieces = torch.split(vector, sizes, dim=-1)
    return {n: piece.reshape(*lead, *like[n].shape) for n, piece in zip(names, pieces)}


def _gram(public_grads: torch.Tensor) -> torch.Tensor:
    """K = G G^T in float64, accumulated over column blocks of G."""
    m, p = public_grads.shape
    gram = torch.zeros(m, m, dtype=torch.float64, device=public_grads.device)
    for start in range(0, p, _BLOCK):
        block = public_grads[:, start:start + _BLOCK].to(torch.float64)
        gram += block @ block.T
    return gram


def _lift(public_grads: torch.Tensor, coefficients: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """V = G^T W (p x k), computed in float64 per column block of G and stored in ``dtype``."""
    p = public_grads.shape[1]
    basis = torch.empty(p, coefficients.shape[1], dtype=dtype, device=public_grads.device)
    for start in range(0, p, _BLOCK):
        block = public_grads[:, start:start + _BLOCK].to(torch.float64)
        basis[start:start + _BLOCK] = (block.T @ coefficients).to(dtype)
    return basis


def _inverse_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """S^(-1/2) of a symmetric positive definite matrix."""
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag(values.rsqrt()) @ vectors.T


class SubspaceProjector:
    """Top-k eigen-subspace of the public per-sample gradients' second moment; projects onto it.

    ``rtol``: eigenvalues below ``rtol`` times the largest are treated as zero
    (the numerical rank). The default suits float32 gradients, whose rounding
    floor is about eps^2 = 1e-14 of the top eigenvalue; directions below it
    are rounding noise and dividing by their sqrt would wreck orthonormality.
    """

    def __init__(self, k: int, *, rtol: float = 1e-10, dtype: torch.dtype = torch.float32):
        if int(k) != k or k < 1:
            raise PrivacyError(f"projection dimension k must be a positive integer; got {k}")
        self.k = int(k)
        self.rtol = rtol
        self.dtype = dtype
        self._basis: torch.Tensor | None = None
        self._eigenvalues: torch.Tensor | None = None

    def fit(self, public_grads: torch.Tensor) -> "SubspaceProjector":
        """Fit the basis to ``public_grads`` (m, p), one per-sample public gradient a row; returns self."""
        if public_grads.dim() != 2 or public_grads.shape[0] < 1:
            raise PrivacyError(f"public gradients must be a non-empty (m, p) matrix; got {tuple(public_grads.shape)}")
        m = public_grads.shape[0]
        gram = _gram(public_grads)
        mu, vectors = torch.linalg.eigh(gram)  # ascending
        mu, vectors = mu.flip(0), vectors.flip(1)
        if not mu[0] > 0:
            raise PrivacyError("public gradients are all zero: no subspace to project onto")
        rank = int((mu > self.rtol * mu[0]).sum())
        keep = min(self.k, rank)
        if keep < self.k:
            log.warning("public gradients have numerical rank %d < k = %d (m = %d): using %d basis vectors",
                        rank, self.k, m, keep)
        mu, vectors = mu[:keep], vectors[:, :keep]
        coefficients = vectors / mu.sqrt()
        # Re-orthonormalise in Gram space: V^T V = W^T K W exactly for V = G^T W, so
        # W (W^T K W)^(-1/2) gives V^T V = I to float64 rounding, whatever eigh's error.
        coefficients = coefficients @ _inverse_sqrt(coefficients.T @ gram @ coefficients)
        self._basis = _lift(public_grads, coefficients, self.dtype)
        self._eigenvalues = (mu / m).to(self.dtype)
        return self

    def project(self, g: torch.Tensor) -> torch.Tensor:
        """V (V^T g) for g (p,) (or rows (n, p)): the component of g in the public subspace."""
        basis = self.basis
        return ((g.to(basis.dtype) @ basis) @ basis.T).to(g.dtype)

    @property
    def basis(self) -> torch.Tensor:
        """V, (p, k') with orthonormal columns, k' = min(k, numerical rank)."""
        if self._basis is None:
            raise RuntimeError("SubspaceProjector.fit() must be called first")
        return self._basis

    @property
    def eigenvalues(self) -> torch.Tensor:
        """The k' kept eigenvalues of M = G^T G / m, descending."""
        if self._eigenvalues is None:
            raise RuntimeError("SubspaceProjector.fit() must be called first")
        return self._eigenvalues


def public_gradients(model: nn.Module, batches: Iterable[dict[str, torch.Tensor]], *,
                     physical_batch_size: int, precision: Precision = FP32) -> torch.Tensor:
    """(m, p) flat per-sample gradients of the trainable parameters over ``batches``.

    Columns in sorted-name order (``trainable_names``, the order ``flatten``
    is given by the trainer). Unclipped: the public set needs no privacy.
    Memory: the m x p result plus one physical chunk's per-sample gradients
    (and, briefly, a second m x p copy while the chunks are concatenated).
    """
    if int(physical_batch_size) != physical_batch_size or physical_batch_size < 1:
        raise RecipeError(f"physical_batch_size must be a positive integer; got {physical_batch_size}")
    names = trainable_names(model)
    rows = []
    for batch in batches:
        n = batch_size(batch)
        for start in range(0, n, physical_batch_size):
            grads = per_sample_gradients(model, slice_batch(batch, start, start + physical_batch_size),
                                         autocast=precision.autocast)
            rows.append(flatten(grads, names, batched=True))
            del grads
    if not rows:
        raise PrivacyError("no public samples: the public gradient subspace needs at least one")
    return torch.cat(rows)
