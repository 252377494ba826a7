"""Peak memory of one DP-SGD step against the logical batch size, at a fixed physical chunk.

    python benchmarks/dp_memory.py [--input 128x96] [--physical 16] [--batches 64,256,1024]

Each logical batch runs in its own process (peak RSS is per process); the
model and the crops are built first, so the difference between "after
setup" and "peak" is what the step itself costs.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

CHILD = r"""
import json, resource, sys, torch
from dp_pose_zoo.codec import SimCCCodec
from dp_pose_zoo.datasets import load_dataset
from dp_pose_zoo.training.data import SimCCDataset
from dp_pose_zoo.training.dp_step import clip_and_sum
from dp_pose_zoo.training.model import ModelConfig, TinyViTSimCC
logical, physical, h, w, strategy = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
torch.manual_seed(0)
model = TinyViTSimCC(ModelConfig(input_size=(h, w))); model.set_strategy(strategy); model.train()
data = SimCCDataset(load_dataset(f"synthpose:private-train:{physical}"), SimCCCodec((h, w)))
chunk = torch.utils.data.default_collate([data[i] for i in range(physical)])
# The logical batch repeats one chunk's crops: same compute and memory as distinct people.
batch = {k: v.repeat((logical // physical,) + (1,) * (v.dim() - 1)) for k, v in chunk.items()}
setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
summed, norms = clip_and_sum(model, batch, clipping_norm=1.0, physical_batch_size=physical)
assert norms.numel() == logical
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
batch_mb = sum(v.numel() * v.element_size() for v in batch.values()) / 2**20
print(json.dumps({"setup_mb": setup / 1024, "peak_mb": peak / 1024, "batch_tensors_mb": batch_mb}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", default="128x96")
    p.add_argument("--physical", type=int, default=16)
    p.add_argument("--batches", default="64,256,1024")
    p.add_argument("--strategy", default="finetune")
    args = p.parse_args()
    h, w = args.input.split("x")
    print(f"# input {args.input}, strategy {args.strategy}, physical chunk {args.physical}")
    print(f"{'logical':>8} {'after setup MB':>15} {'peak MB':>9} {'step cost MB':>13} {'input tensors MB':>17}")
    costs = []
    for logical in (int(b) for b in args.batches.split(",")):
        out = subprocess.run([sys.executable, "-c", CHILD, str(logical), str(args.physical), h, w, args.strategy],
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        cost = r["peak_mb"] - r["setup_mb"]
        costs.append(cost)
        print(f"{logical:>8} {r['setup_mb']:>15.0f} {r['peak_mb']:>9.0f} {cost:>13.0f} {r['batch_tensors_mb']:>17.0f}")
    print(f"step cost ratio largest/smallest logical batch: {costs[-1] / max(costs[0], 1):.2f}x")


if __name__ == "__main__":
    main()
