"""Training on real photos, in one run: fp32 vs bf16 autocast, and the data loader against the step's demand.

    python benchmarks/train_precision.py [--input 128x96] [--data lsp:../shared/data/lspet] [--steps 6] [--dp]
                                         [--threads 2]

- Training step (forward, backward, AdamW) on batches of real people prepared
  once: fp32, bf16 autocast with timm's fused attention kernel, and bf16 with the
  explicit attention path the trainer uses under mixed precision; non-private and
  (``--dp``) one DP-SGD step of per-sample gradients (physical chunk 16). The
  variants take turns step by step, so a change in machine load hits all alike.
- Loader alone: the trainer's ``SimCCDataset`` with the recipe's augmentation
  (decode, affine crop, flip, half-body, colour jitter, SimCC targets) behind a
  ``DataLoader`` with 0, 1 and 2 worker processes, batches of 32, nothing else
  running; its samples/s against the bf16 step's (the demand).

Reads ``../shared/data`` (not shipped with the repository).
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch.utils.data import DataLoader, default_collate

from dp_pose_zoo.codec import SimCCCodec
from dp_pose_zoo.datasets import load_dataset
from dp_pose_zoo.training.data import AugmentConfig, SimCCDataset, worker_init
from dp_pose_zoo.training.device import FP32, Precision
from dp_pose_zoo.training.dp_step import add_noise, clip_and_sum
from dp_pose_zoo.training.model import ModelConfig, TinyViTSimCC
from dp_pose_zoo.training.trainer import _gradient_step

from _common import cpu_model
from train_throughput import interleaved

RECIPE_AUGMENT = AugmentConfig(flip=0.5, scale=0.3, rotation=30, rotation_prob=0.6, half_body=0.3, color=0.3)


def loader_rate(data: SimCCDataset, workers: int, batches: int, batch: int) -> float:
    """Samples/s of the loader alone over ``batches`` batches (worker start-up excluded)."""
    loader = DataLoader(data, batch_size=batch, shuffle=False, num_workers=workers, worker_init_fn=worker_init,
                        sampler=[(1, i % len(data)) for i in range(batch * (batches + 2))])
    it = iter(loader)
    next(it), next(it)  # workers started, prefetch filled
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - start)


def step_rates(args, batch: dict) -> dict[str, float]:
    """Samples/s of each training-step variant, interleaved."""
    bf16 = Precision("cpu", "bf16")
    variants = {}
    for name, precision, fused in (("fp32", FP32, True), ("bf16 fused attention", bf16, True),
                                   ("bf16 explicit attention", bf16, False)):
        torch.manual_seed(0)
        model = TinyViTSimCC(ModelConfig(input_size=args.size, norm="group-norm"))
        model.set_strategy("scratch")
        model.train()
        model.set_fused_attention(fused)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        variants[f"non-private {name}"] = (lambda m=model, o=optimizer, p=precision:
                                           _gradient_step(m, batch, o, precision=p))
        if args.dp and (precision is FP32 or not fused):  # fused attention cannot run per-sample under autocast
            gen = torch.Generator().manual_seed(0)

            def dp(m=model, o=optimizer, p=precision, g=gen):
                summed, _ = clip_and_sum(m, batch, clipping_norm=1.0, physical_batch_size=16, precision=p)
                noisy = add_noise(summed, noise_multiplier=1.0, clipping_norm=1.0, expected_batch_size=32, generator=g)
                for n, param in m.named_parameters():
                    param.grad = noisy[n]
                o.step()

            variants[f"dp-sgd full {name}"] = dp
    seconds = interleaved(variants, args.steps)
    return {name: args.batch / s for name, s in seconds.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", default="128x96")
    p.add_argument("--data", default="lsp:../shared/data/lspet")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--loader-batches", type=int, default=30)
    p.add_argument("--dp", action="store_true", help="also time one DP-SGD step (full strategy)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the training step (default 2)")
    args = p.parse_args()
    args.size = tuple(int(v) for v in args.input.split("x"))
    torch.set_num_threads(args.threads)
    print(f"# {cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average at start {os.getloadavg()[0]:.2f}")
    people = load_dataset(args.data)
    data = SimCCDataset(people, SimCCCodec(args.size), augment=RECIPE_AUGMENT, seed=0)
    print(f"# {args.data}: {len(people)} people; input {args.input}, batch {args.batch}, "
          f"{args.steps} timed steps per variant")
    batch = default_collate([data[(0, i)] for i in range(args.batch)])
    rates = step_rates(args, batch)
    base = rates["non-private fp32"]
    print(f"{'training step':<34} {'samples/s':>10} {'vs fp32':>8}")
    for name, rate in rates.items():
        ref = rates["dp-sgd full fp32"] if name.startswith("dp-sgd") else base
        print(f"{name:<34} {rate:>10.2f} {rate / ref:>7.2f}x")
    demand = rates["non-private bf16 explicit attention"]
    print(f"{'loader alone (same augmentation)':<34} {'samples/s':>10} {'vs demand':>9}")
    for workers in (0, 1, 2):
        rate = loader_rate(data, workers, args.loader_batches, args.batch)
        print(f"{f'{workers} worker process(es)':<34} {rate:>10.1f} {rate / demand:>8.1f}x")
    print(f"# demand = the bf16 training step the trainer runs ({demand:.1f} samples/s); "
          f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
