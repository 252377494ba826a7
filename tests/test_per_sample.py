"""Per-sample gradients through the real TinyViT-SimCC match single-image backward passes."""

import pytest
import torch

from dp_pose_zoo.errors import PrivacyError
from dp_pose_zoo.training.losses import simcc_loss
from dp_pose_zoo.training.model import TinyViTSimCC
from dp_pose_zoo.training.per_sample import per_sample_gradients, trainable_names

ATTENTION_BIAS = "backbone.stages.3.blocks.0.attn.attention_biases"
STAGE2_LAYERNORM = "backbone.stages.2.blocks.0.attn.norm.weight"


@pytest.fixture(scope="module")
def model(small_model_config):
    torch.manual_seed(0)
    return TinyViTSimCC(small_model_config)


def make_batch(config, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    bx, by = config.bins
    h, w = config.input_size
    weight = torch.ones(n, 16)
    weight[0, 3] = 0.0  # an unlabelled joint, as the dataset produces
    return {
        "image": torch.randn(n, 3, h, w, generator=g),
        "target_x": torch.rand(n, 16, bx, generator=g),
        "target_y": torch.rand(n, 16, by, generator=g),
        "weight": weight,
        "index": torch.arange(n),  # extra keys are ignored
    }


def loop_gradients(model, batch):
    """Reference: one ordinary backward pass per sample, each run alone."""
    n = batch["image"].shape[0]
    out = {name: [] for name in trainable_names(model)}
    params = dict(model.named_parameters())
    for i in range(n):
        model.zero_grad(set_to_none=True)
        pred_x, pred_y = model(batch["image"][i:i + 1])
        simcc_loss(pred_x, pred_y, batch["target_x"][i:i + 1], batch["target_y"][i:i + 1],
                   batch["weight"][i:i + 1])[0].backward()
        for name in out:
            # Unused parameters (timm's classifier-head norm) get no .grad: their gradient is 0.
            grad = params[name].grad
            out[name].append(torch.zeros_like(params[name]) if grad is None else grad.clone())
    model.zero_grad(set_to_none=True)
    return {name: torch.stack(gs) for name, gs in out.items()}


def assert_matches(actual, expected, name):
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * scale, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("strategy", ["finetune", "full"])
def test_matches_single_sample_backward(model, small_model_config, strategy):
    model.set_strategy(strategy)
    model.train()
    batch = make_batch(small_model_config, 3)
    grads = per_sample_gradients(model, batch)
    expected = loop_gradients(model, batch)
    assert sorted(grads) == trainable_names(model)
    for name, g in grads.items():
        assert g.shape == expected[name].shape
        assert_matches(g, expected[name], name)
    # The parameters Opacus' hooks would get wrong: attention biases (windows folded
    # into the batch) and LayerNorms deep in the frozen stages (finetune).
    for name in (ATTENTION_BIAS, STAGE2_LAYERNORM):
        assert name in grads
        assert (grads[name].flatten(1).norm(dim=1) > 1e-8).all(), name
        # Per sample: the three images have different gradients.
        assert not torch.allclose(grads[name][0], grads[name][1])
    if strategy == "finetune":
        assert not any(n.startswith(("backbone.patch_embed.", "backbone.stages.0.")) for n in grads)
        assert "backbone.stages.2.blocks.0.attn.attention_biases" not in grads
    else:
        assert len(grads) == len(list(model.parameters()))


def test_eval_mode_is_refused_because_of_the_attention_bias_cache(model, small_model_config):
    model.set_strategy("finetune")
    model.eval()
    batch = make_batch(small_model_config, 1)
    with torch.no_grad():
        model(batch["image"])  # fills timm's attention-bias cache
    with pytest.raises(PrivacyError, match="train"):
        per_sample_gradients(model, batch)
    # train() empties the cache and per-sample gradients work again.
    model.train()
    grads = per_sample_gradients(model, batch)
    assert grads[ATTENTION_BIAS].abs().sum() > 0


def test_empty_batch_gives_empty_gradients(model, small_model_config):
    model.set_strategy("finetune")
    model.train()
    grads = per_sample_gradients(model, make_batch(small_model_config, 1) | {
        k: v[:0] for k, v in make_batch(small_model_config, 1).items()})
    params = dict(model.named_parameters())
    assert sorted(grads) == trainable_names(model)
    assert all(g.shape == (0, *params[n].shape) for n, g in grads.items())


def test_several_views_of_a_person_give_the_mean_of_their_gradients(model, small_model_config):
    """Augmentation multiplicity: one gradient per person, the mean over its views, against a per-view loop."""
    model.set_strategy("finetune")
    model.train()
    n, views = 2, 3
    flat = make_batch(small_model_config, n * views, seed=5)
    stacked = {k: flat[k].reshape(n, views, *flat[k].shape[1:]) for k in ("image", "target_x", "target_y", "weight")}
    grads = per_sample_gradients(model, stacked)
    reference = loop_gradients(model, flat)
    for name, g in grads.items():
        assert g.shape[0] == n  # one gradient per person, not per view
        assert_matches(g, reference[name].reshape(n, views, *g.shape[1:]).mean(dim=1), name)


def test_several_cached_views_of_a_person_give_the_mean_of_their_full_forward_gradients(model, small_model_config):
    """Views held as cached frozen-prefix features (head strategy): the same mean as the images' own loop."""
    model.set_strategy("head")
    model.train()
    n, views = 2, 3
    units = model.frozen_prefix()
    flat = make_batch(small_model_config, n * views, seed=7)
    with torch.no_grad():
        features = model.forward_prefix(flat["image"], units)
    stacked = {"image": features.reshape(n, views, *features.shape[1:]),
               **{k: flat[k].reshape(n, views, *flat[k].shape[1:]) for k in ("target_x", "target_y", "weight")}}
    grads = per_sample_gradients(model, stacked, prefix_units=units)
    reference = loop_gradients(model, flat)
    assert sorted(grads) == sorted(reference) and all(name.startswith("head.") for name in grads)
    for name, g in grads.items():
        assert g.shape[0] == n
        assert_matches(g, reference[name].reshape(n, views, *g.shape[1:]).mean(dim=1), name)


def test_fewer_trainable_parameters_strategies(small_model_config):
    model = TinyViTSimCC(small_model_config)
    head = set(model.set_strategy("head"))
    assert head and all(n.startswith("head.") for n in head)
    assert head == {n for n, _ in model.named_parameters() if n.startswith("head.")}
    nbh = set(model.set_strategy("norm-bias-head"))
    assert head < nbh
    norms = {f"{m}.{p}" for m, mod in model.named_modules()
             if isinstance(mod, (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.BatchNorm2d))
             for p, _ in mod.named_parameters(recurse=False)}
    assert norms and norms <= nbh
    others = nbh - head - norms
    assert others and all(n.endswith(".bias") for n in others)
    # Every weight matrix and convolution kernel outside the head stays frozen.
    assert not any(n.endswith(".weight") and n not in norms and not n.startswith("head.") for n in nbh)
    full = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for n, p in model.named_parameters() if n in nbh) < 0.1 * full
