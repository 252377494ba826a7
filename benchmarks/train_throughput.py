"""Training throughput in one run: non-private vs DP-SGD vs PDP-SGD, same model, data and batch.

    python benchmarks/train_throughput.py [--input 256x192] [--batch 32] [--physical 16] [--steps 3]

Crops are prepared once (data loading is the same for every method and is
left out). After one warm-up step each, the methods take turns, one step at a
time, for ``--steps`` rounds, so a change in machine load hits all of them
alike and the ratios stay fair. PDP-SGD's subspace refresh (per-sample
gradients of the public set) is timed separately and amortised over an epoch
of ``--epoch-steps`` steps, as the trainer refreshes once per epoch by default.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from torch.utils.data import default_collate

from dp_pose_zoo.codec import SimCCCodec
from dp_pose_zoo.datasets import load_dataset
from dp_pose_zoo.training.data import SimCCDataset
from dp_pose_zoo.training.dp_step import add_noise, clip_and_sum
from dp_pose_zoo.training.model import ModelConfig, TinyViTSimCC
from dp_pose_zoo.training.per_sample import trainable_names
from dp_pose_zoo.training.projection import SubspaceProjector, flatten, public_gradients, unflatten
from dp_pose_zoo.training.trainer import _gradient_step


def batch_of(spec: str, size: tuple[int, int]) -> dict:
    data = SimCCDataset(load_dataset(spec), SimCCCodec(size))
    return default_collate([data[i] for i in range(len(data))])


def interleaved(fns: dict, steps: int) -> dict[str, float]:
    """Mean seconds per call of each function, the functions taking turns."""
    for fn in fns.values():
        fn()  # warm-up
    total = dict.fromkeys(fns, 0.0)
    for _ in range(steps):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            total[name] += time.perf_counter() - start
    return {name: t / steps for name, t in total.items()}


def run(strategy: str, args, batch: dict, public: dict) -> dict[str, float]:
    torch.manual_seed(0)
    model = TinyViTSimCC(ModelConfig(input_size=args.size))
    model.set_strategy(strategy)
    model.train()
    params = dict(model.named_parameters())
    names = trainable_names(model)
    optimizer = torch.optim.AdamW([params[n] for n in names], lr=1e-4)
    gen = torch.Generator().manual_seed(0)

    def dp_step(projector=None, inputs=batch, prefix_units=0):
        summed, _ = clip_and_sum(model, inputs, clipping_norm=1.0, physical_batch_size=args.physical,
                                 prefix_units=prefix_units)
        noisy = add_noise(summed, noise_multiplier=1.0, clipping_norm=1.0, expected_batch_size=args.batch,
                          generator=gen)
        if projector is not None:
            noisy = unflatten(projector.project(flatten(noisy, names)), noisy, names)
        for n in names:
            params[n].grad = noisy[n]
        optimizer.step()

    start = time.perf_counter()
    chunks = [{k: v[i:i + args.physical] for k, v in public.items()} for i in range(0, args.public, args.physical)]
    projector = SubspaceProjector(args.k).fit(public_gradients(model, chunks, physical_batch_size=args.physical))
    refresh = time.perf_counter() - start
    methods = {"non-private": lambda: _gradient_step(model, batch, optimizer),
               "dp-sgd": dp_step,
               "pdp-sgd (step)": lambda: dp_step(projector)}
    units = model.frozen_prefix()
    if units:  # what a recipe with cache_frozen: true runs (features computed once per person)
        with torch.no_grad():
            cached = {**batch, "image": model.forward_prefix(batch["image"], units)}
        methods["dp-sgd (cached prefix)"] = lambda: dp_step(inputs=cached, prefix_units=units)
    out = interleaved(methods, args.steps)
    out["pdp-sgd"] = out["pdp-sgd (step)"] + refresh / args.epoch_steps
    out["refresh"] = refresh
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", default="256x192")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--physical", type=int, default=16)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--public", type=int, default=100)
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--epoch-steps", type=int, default=125, help="steps per epoch (4000 people / 32)")
    p.add_argument("--strategies", default="finetune,full")
    args = p.parse_args()
    args.size = tuple(int(v) for v in args.input.split("x"))
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average at start {os.getloadavg()[0]:.2f}")
    print(f"# input {args.input}, logical batch {args.batch}, physical chunk {args.physical}, {args.steps} timed steps; "
          f"PDP: m={args.public} public, k={args.k}, refresh amortised over {args.epoch_steps} steps")
    batch = batch_of(f"synthpose:private-train:{args.batch}", args.size)
    public = batch_of(f"synthpose:private-holdout:{args.public}", args.size)
    print(f"{'strategy':<10} {'method':<22} {'samples/s':>10} {'vs non-private':>15} {'vs dp-sgd':>10}")
    for strategy in args.strategies.split(","):
        t = run(strategy, args, batch, public)
        for method in ("non-private", "dp-sgd", "pdp-sgd (step)", "pdp-sgd", "dp-sgd (cached prefix)"):
            if method not in t:
                continue
            rate = args.batch / t[method]
            print(f"{strategy:<10} {method:<22} {rate:>10.2f} {t['non-private'] / t[method]:>14.2f}x "
                  f"{t['dp-sgd'] / t[method]:>9.2f}x")
        print(f"{strategy:<10} refresh: {t['refresh']:.1f} s for {args.public} public per-sample gradients")
    print(f"# load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
