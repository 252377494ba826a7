import pytest
import torch
from torch import nn

from dp_pose_zoo.errors import RecipeError
from dp_pose_zoo.training.losses import simcc_loss
from dp_pose_zoo.training.model import ModelConfig, TinyViTSimCC


@pytest.fixture(scope="module")
def model(small_model_config):
    torch.manual_seed(0)
    return TinyViTSimCC(small_model_config)


def test_output_shapes_at_paper_resolution():
    m = TinyViTSimCC(ModelConfig())
    assert m.config.bins == (384, 512)
    sx, sy = m(torch.randn(2, 3, 256, 192))
    assert sx.shape == (2, 16, 384) and sy.shape == (2, 16, 512)
    assert m.forward_features(torch.randn(1, 3, 256, 192)).shape == (1, 320, 8, 6)
    # timm's TinyViT-5M backbone (5.07M parameters without its classifier).
    backbone = sum(p.numel() for p in m.backbone.parameters())
    assert 5.0e6 < backbone < 5.2e6


@pytest.mark.parametrize("norm", ["frozen-bn", "group-norm"])
def test_samples_never_mix_in_train_mode(small_model_config, norm):
    torch.manual_seed(0)
    m = TinyViTSimCC(ModelConfig(input_size=small_model_config.input_size, norm=norm))
    m.set_strategy("full")
    m.train()
    # Give BatchNorm non-trivial statistics so a batch-statistics BN would differ clearly.
    for bn in (x for x in m.modules() if isinstance(x, nn.BatchNorm2d)):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    x = torch.randn(4, 3, 128, 96)
    batch_x, batch_y = m(x)
    for i in range(4):
        one_x, one_y = m(x[i:i + 1])
        torch.testing.assert_close(batch_x[i:i + 1], one_x, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(batch_y[i:i + 1], one_y, rtol=1e-4, atol=1e-4)
    assert all(not b.training for b in m.modules() if isinstance(b, nn.BatchNorm2d))


def test_batchnorm_uses_running_statistics_from_construction(small_model_config):
    fresh = TinyViTSimCC(small_model_config)
    assert fresh.training
    assert all(not b.training for b in fresh.modules() if isinstance(b, nn.BatchNorm2d))


def test_running_statistics_stay_fixed_while_training(model):
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    model(torch.randn(3, 3, 128, 96) * 5 + 2)
    after = model.state_dict()
    assert before and all(torch.equal(v, after[k]) for k, v in before.items())


def test_group_norm_replaces_every_batchnorm(small_model_config):
    m = TinyViTSimCC(ModelConfig(input_size=small_model_config.input_size, norm="group-norm"))
    assert not any(isinstance(x, nn.BatchNorm2d) for x in m.modules())
    assert sum(isinstance(x, nn.GroupNorm) for x in m.modules()) == 27


def test_finetune_strategy_trains_stage4_head_and_layernorms(model):
    trainable = set(model.set_strategy("finetune"))
    layer_norms = {f"{n}.{p}" for n, mod in model.named_modules() if isinstance(mod, nn.LayerNorm)
                   for p, _ in mod.named_parameters()}
    for name, _ in model.named_parameters():
        expected = name.startswith(("backbone.stages.3.", "head.")) or name in layer_norms
        assert (name in trainable) == expected, name
    # Stages 1-3 keep their LayerNorms trainable but nothing else.
    assert any(n.startswith("backbone.stages.1.") for n in trainable)
    assert not any(n.startswith(("backbone.patch_embed.", "backbone.stages.0.")) for n in trainable)
    assert "backbone.stages.3.blocks.0.attn.attention_biases" in trainable
    assert "backbone.stages.2.blocks.0.attn.attention_biases" not in trainable
    assert len(set(model.set_strategy("full"))) == len(list(model.parameters()))


def test_finetune_freezes_groupnorm_like_the_batchnorm_it_replaces(small_model_config):
    m = TinyViTSimCC(ModelConfig(input_size=small_model_config.input_size, norm="group-norm"))
    trainable = set(m.set_strategy("finetune"))
    group_norms = [n for n, mod in m.named_modules() if isinstance(mod, nn.GroupNorm)]
    assert all((f"{n}.weight" in trainable) == n.startswith("backbone.stages.3.") for n in group_norms)
    assert m.frozen_prefix() == 3


def test_bad_config_is_refused():
    with pytest.raises(RecipeError, match="multiples of 32"):
        ModelConfig(input_size=(250, 192))
    with pytest.raises(RecipeError, match="norm"):
        ModelConfig(norm="batch")
    with pytest.raises(RecipeError, match="strategy"):
        TinyViTSimCC(ModelConfig(input_size=(64, 64))).set_strategy("half")


def test_loss_is_per_sample_zero_at_target_and_masked():
    torch.manual_seed(0)
    tx, ty = torch.rand(3, 16, 20), torch.rand(3, 16, 30)
    w = torch.ones(3, 16)
    at_target = simcc_loss(tx, ty, tx, ty, w)
    assert at_target.shape == (3,)
    torch.testing.assert_close(at_target, torch.zeros(3), atol=1e-6, rtol=0)
    off = simcc_loss(tx.roll(5, -1), ty, tx, ty, w)
    assert (off > 0.01).all()
    # A masked joint's error does not count; each sample is independent of the others.
    tx2 = tx.clone()
    tx2[1, 3] = tx2[1, 3].roll(7)
    w2 = w.clone()
    w2[1, 3] = 0
    torch.testing.assert_close(simcc_loss(tx2, ty, tx, ty, w2), torch.zeros(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(simcc_loss(tx.roll(5, -1)[:1], ty[:1], tx[:1], ty[:1], w[:1]), off[:1])


def test_frozen_prefix_matches_strategy_and_resumes_exactly(model):
    model.set_strategy("finetune")
    assert model.frozen_prefix() == 3  # patch embed, stage 1, stage 2's downsampling
    model.set_strategy("head")
    assert model.frozen_prefix() == 6  # the whole backbone: only the head's input is cached
    model.set_strategy("full")
    assert model.frozen_prefix() == 0
    model.eval()
    x = torch.randn(2, 3, 128, 96)
    whole = model(x)
    torch.testing.assert_close(model.forward_prefix(x, 6), model.forward_features(x))  # timm's own forward
    for units in range(1, 7):
        features = model.forward_prefix(x, units)
        for a, b in zip(model(features, prefix_units=units), whole):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
