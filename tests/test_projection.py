"""PDP-SGD's subspace against an explicit p x p eigendecomposition of M = G^T G / m."""

import logging

import pytest
import torch
from torch import nn

from dp_pose_zoo.errors import PrivacyError
from dp_pose_zoo.training.per_sample import per_sample_gradients, trainable_names
from dp_pose_zoo.training.projection import SubspaceProjector, flatten, public_gradients, unflatten

BINS = (6, 5)


class TinyPose(nn.Module):
    """A pose model small enough for many per-sample passes: image (n,3,8,8) -> SimCC logits."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, kernel_size=3, stride=2)
        self.fc = nn.Linear(18, 16 * sum(BINS))

    def forward(self, image):
        out = self.fc(torch.tanh(self.conv(image).flatten(1))).view(-1, 16, sum(BINS))
        return out[..., :BINS[0]], out[..., BINS[0]:]


def tiny_batch(n, seed):
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(n, 3, 8, 8, generator=g), "target_x": torch.rand(n, 16, BINS[0], generator=g),
            "target_y": torch.rand(n, 16, BINS[1], generator=g), "weight": torch.ones(n, 16)}


def explicit_top_k(grads, k):
    """Top-k eigenpairs of the explicit p x p second-moment matrix, in float64."""
    g = grads.double()
    moment = g.T @ g / g.shape[0]
    values, vectors = torch.linalg.eigh(moment)
    return values.flip(0)[:k], vectors.flip(1)[:, :k]


def mlp_gradients(m=30, seed=0):
    """Real per-sample gradients (one backward each) of a small MLP regression: (m, p), p = 289."""
    torch.manual_seed(seed)
    mlp = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 1))
    x, y = torch.randn(m, 8), torch.randn(m, 1)
    names = sorted(n for n, _ in mlp.named_parameters())
    params = dict(mlp.named_parameters())
    rows = []
    for i in range(m):
        mlp.zero_grad()
        ((mlp(x[i:i + 1]) - y[i:i + 1]) ** 2).sum().backward()
        rows.append(flatten({n: params[n].grad for n in names}, names))
    return torch.stack(rows)


def check_against_explicit(grads, k):
    projector = SubspaceProjector(k).fit(grads)
    values, vectors = explicit_top_k(grads, k)
    basis = projector.basis.double()
    assert basis.shape == (grads.shape[1], k)
    # (a) the same subspace (projector matrices are sign- and rotation-invariant).
    torch.testing.assert_close(basis @ basis.T, vectors @ vectors.T, rtol=0, atol=2e-6)
    # (b) the same eigenvalues, descending.
    torch.testing.assert_close(projector.eigenvalues.double(), values, rtol=1e-5, atol=1e-7 * values[0].item())
    assert (projector.eigenvalues[:-1] >= projector.eigenvalues[1:]).all()
    # (c) the same projection.
    g = torch.randn(grads.shape[1], dtype=torch.float64)
    torch.testing.assert_close(projector.project(g), vectors @ (vectors.T @ g), rtol=0, atol=1e-5 * g.norm().item())
    # (d) orthonormal columns.
    torch.testing.assert_close(basis.T @ basis, torch.eye(k, dtype=torch.float64), rtol=0, atol=1e-6)
    return projector


def test_random_gradients_match_explicit_eigendecomposition():
    torch.manual_seed(0)
    check_against_explicit(torch.randn(12, 40) * torch.linspace(3, 0.1, 40), k=5)


def test_mlp_per_sample_gradients_match_explicit_eigendecomposition():
    grads = mlp_gradients()
    assert grads.shape == (30, 289)
    check_against_explicit(grads, k=6)


def test_span_is_kept_and_orthogonal_complement_removed():
    torch.manual_seed(1)
    grads = torch.randn(8, 50)
    projector = SubspaceProjector(8).fit(grads)  # k = m: the whole span of the gradients
    inside = grads.T @ torch.randn(8)
    torch.testing.assert_close(projector.project(inside), inside, rtol=0, atol=1e-5 * inside.norm().item())
    span = torch.linalg.qr(grads.double().T).Q
    outside = torch.randn(50, dtype=torch.float64)
    outside = (outside - span @ (span.T @ outside)).float()
    assert (grads @ outside).abs().max() < 1e-5
    assert projector.project(outside).norm() < 1e-5 * outside.norm()


def test_fewer_gradients_than_k_uses_m_columns_and_warns(caplog):
    torch.manual_seed(2)
    with caplog.at_level(logging.WARNING, logger="dp_pose_zoo.training.projection"):
        projector = SubspaceProjector(5).fit(torch.randn(3, 40))
    assert projector.basis.shape == (40, 3)
    assert "rank 3 < k = 5" in caplog.text


def test_numerically_rank_deficient_gradients_drop_zero_eigenvalues(caplog):
    torch.manual_seed(3)
    grads = torch.randn(10, 3) @ torch.randn(3, 60)  # ten float32 gradients spanning three directions
    with caplog.at_level(logging.WARNING, logger="dp_pose_zoo.training.projection"):
        projector = SubspaceProjector(6).fit(grads)
    assert projector.basis.shape == (60, 3) and "rank 3" in caplog.text
    basis = projector.basis.double()
    torch.testing.assert_close(basis.T @ basis, torch.eye(3, dtype=torch.float64), rtol=0, atol=1e-6)
    check_against_explicit(grads, k=3)


def test_bad_arguments_are_refused():
    with pytest.raises(PrivacyError):
        SubspaceProjector(0)
    with pytest.raises(PrivacyError, match="zero"):
        SubspaceProjector(2).fit(torch.zeros(4, 10))
    with pytest.raises(RuntimeError, match="fit"):
        SubspaceProjector(2).project(torch.zeros(10))


def test_flatten_round_trips():
    like = {"b": torch.randn(2, 3), "a": torch.randn(4)}
    names = sorted(like)
    flat = flatten(like, names)
    assert flat.shape == (10,) and torch.equal(flat[:4], like["a"])
    back = unflatten(flat, like, names)
    assert all(torch.equal(back[n], like[n]) for n in names)
    batched = {n: torch.stack([v, 2 * v]) for n, v in like.items()}
    rows = flatten(batched, names, batched=True)
    assert rows.shape == (2, 10) and torch.equal(rows[1], 2 * flat)
    assert torch.equal(unflatten(rows, like, names)["b"], batched["b"])


def test_public_gradients_are_flat_per_sample_rows():
    torch.manual_seed(4)
    model = TinyPose().train()
    model.conv.weight.requires_grad_(False)
    batches = [tiny_batch(3, seed=5), tiny_batch(2, seed=6)]
    grads = public_gradients(model, batches, physical_batch_size=2)
    names = trainable_names(model)
    assert names == ["conv.bias", "fc.bias", "fc.weight"]
    p = sum(dict(model.named_parameters())[n].numel() for n in names)
    assert grads.shape == (5, p)
    samples = [(b, i) for b in batches for i in range(b["image"].shape[0])]
    for row, (batch, i) in zip(grads, samples):
        alone = per_sample_gradients(model, {k: v[i:i + 1] for k, v in batch.items()})
        torch.testing.assert_close(row, flatten(alone, names, batched=True)[0])
