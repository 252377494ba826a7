"""TinyViT-SimCC: timm's TinyViT backbone and the paper's SimCC head.

Order as in timm: head block, model, builder; the config (:class:`ModelConfig`)
lives in ``checkpoint_config`` so a config.json is checked without torch. BatchNorm never mixes
samples here: every BatchNorm stays in eval mode (running statistics frozen;
its affine weights may still train, which is per-sample), or, for training
from scratch, BatchNorm is replaced by GroupNorm. The DP engine relies on this.
"""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint_config import ModelConfig
from ..errors import RecipeError

STRATEGIES = ("finetune", "full", "scratch", "norm-bias-head", "head")


class SimCCHead(nn.Module):
    """Conv to one map per joint, upsample, flatten, one linear classifier per axis."""

    def __init__(self, in_channels: int, feature_size: tuple[int, int], num_joints: int,
                 bins: tuple[int, int], upsample: int = 4):
        super().__init__()
        self.upsample = upsample
        self.joint_conv = nn.Conv2d(in_channels, num_joints, kernel_size=1)
        flat = feature_size[0] * feature_size[1] * upsample * upsample
        self.cls_x = nn.Linear(flat, bins[0])
        self.cls_y = nn.Linear(flat, bins[1])

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.joint_conv(features)
        x = F.interpolate(x, scale_factor=self.upsample, mode="bilinear", align_corners=False)
        x = x.flatten(2)
        return self.cls_x(x), self.cls_y(x)


def _replace_batchnorm(module: nn.Module) -> None:
    """Swap every BatchNorm2d for a GroupNorm over the same channels (in place)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            channels = child.num_features
            groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)
            setattr(module, name, nn.GroupNorm(groups, channels))
        else:
            _replace_batchnorm(child)


class TinyViTSimCC(nn.Module):
    """Top-down pose model: crops ``(N, 3, H, W)`` to SimCC logits per joint."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        # drop_path off: stochastic depth would make per-sample gradients random.
        self.backbone = timm.create_model(config.backbone, pretrained=False, num_classes=0, drop_path_rate=0.0)
        # timm keeps its classifier's LayerNorm even with num_classes=0; we never run it, and an
        # unused trainable tensor would only collect DP noise.
        self.backbone.head = nn.Identity()
        if config.norm == "group-norm":
            _replace_batchnorm(self.backbone)
        h, w = config.input_size
        stride = 32
        self.head = SimCCHead(self.backbone.num_features, (h // stride, w // stride),
                              config.num_joints, config.bins, config.upsample)
        self.train()  # modules are born in training mode: put BatchNorm on its running statistics now

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)

    def forward_head(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(features)

    def forward(self, x: torch.Tensor, prefix_units: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """SimCC logits of crops, or of cached prefix features when ``prefix_units`` > 0."""
        if prefix_units:
            return self.forward_from_prefix(x, prefix_units)
        return self.forward_head(self.forward_features(x))

    def _prefix_units(self) -> tuple[nn.Module, ...]:
        """The backbone in timm's order, unrolled at stage 2 (its downsampling, then its blocks)."""
        bb = self.backbone
        return bb.patch_embed, bb.stages[0], bb.stages[1].downsample, bb.stages[1].blocks, bb.stages[2], bb.stages[3]

    def _run_unit(self, unit: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if unit is self.backbone.stages[1].blocks:  # as TinyVitStage.forward runs them: channels-last
            return unit(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return unit(x)

    def frozen_prefix(self) -> int:
        """How many leading backbone units (:meth:`_prefix_units`) hold nothing trainable.

        Their output is then a fixed function of the crop (BatchNorm keeps its
        running statistics), so it can be computed once per person and cached.
        The paper's ``finetune`` strategy freezes three (patch embed, stage 1,
        stage 2's downsampling; the LayerNorms of stages 2-3 still train); ``head``
        freezes all six, so the whole backbone's output is cached.
        """
        count = 0
        for unit in self._prefix_units():
            if any(p.requires_grad for p in unit.parameters()):
                break
            count += 1
        return count

    def forward_prefix(self, x: torch.Tensor, units: int) -> torch.Tensor:
        for unit in self._prefix_units()[:units]:
            x = self._run_unit(unit, x)
        return x

    def forward_from_prefix(self, x: torch.Tensor, units: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The rest of the network after ``units`` prefix units."""
        for unit in self._prefix_units()[units:]:
            x = self._run_unit(unit, x)
        return self.forward_head(x)

    def train(self, mode: bool = True):
        super().train(mode)
        # Batch statistics would mix samples: BatchNorm always uses its running ones.
        for m in self.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self

    def set_fused_attention(self, enabled: bool) -> None:
        """Use torch's fused attention kernel (timm's default) or the explicit softmax(QK^T + bias) V.

        Same maths; which is faster depends on the hardware: under CPU bf16 autocast
        the explicit path trains faster (benchmarks/train_throughput.py).
        """
        for m in self.modules():
            if hasattr(m, "fused_attn") and hasattr(m, "attention_biases"):
                m.fused_attn = bool(enabled)

    def set_strategy(self, strategy: str) -> list[str]:
        """Set ``requires_grad`` for a training strategy; return the trainable names.

        ``finetune`` (the paper's): stages 1-3 frozen; stage 4, the head and every
        LayerNorm train. A GroupNorm that stands in for BatchNorm stays frozen in
        stages 1-3, like the BatchNorm it replaces. ``full`` and ``scratch``:
        everything trains. Fewer parameters, for DP at small epsilon (less noise
        in total): ``norm-bias-head`` trains every normalisation layer's affine
        parameters, every bias and the SimCC head; ``head`` the head alone (a
        linear probe of the frozen backbone's features).
        """
        if strategy not in STRATEGIES:
            raise RecipeError(f"strategy must be one of {STRATEGIES}; got {strategy!r}")
        norms = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)
        layer_norm_params = {
            id(p) for m in self.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()
        } if strategy == "finetune" else set()
        norm_params = {id(p) for m in self.modules() if isinstance(m, norms) for p in m.parameters()}
        trainable = []
        for name, p in self.named_parameters():
            if strategy == "finetune":
                p.requires_grad_(name.startswith(("backbone.stages.3.", "head.")) or id(p) in layer_norm_params)
            elif strategy == "norm-bias-head":
                p.requires_grad_(name.startswith("head.") or name.endswith(".bias") or id(p) in norm_params)
            elif strategy == "head":
                p.requires_grad_(name.startswith("head."))
            else:
                p.requires_grad_(True)
            if p.requires_grad:
                trainable.append(name)
        return trainable


def build_model(config: ModelConfig | None = None) -> TinyViTSimCC:
    return TinyViTSimCC(config or ModelConfig())
