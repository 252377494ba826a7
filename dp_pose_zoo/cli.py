"""``dp-pose``: one command, a subcommand per job.

Heavy imports (torch, timm) happen inside the subcommands that need them, so
``dp-pose --help`` and the runtime commands stay torch-free and quick.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
from functools import partial

from . import __version__
from .commands import audit, card, demo, export, infer, privacy, recover, zoo
from .errors import DatasetError, DPPoseZooError, UsageError

logger = logging.getLogger(__name__)

EPILOG_TRAIN = """examples:
  dp-pose train --recipe training/recipes/demo.yaml --out runs/demo
  dp-pose train --recipe R.yaml --method dp-sgd --epsilon 0.2 --delta 1e-5 --clip 0.01 --epochs 25
  dp-pose train --recipe R.yaml --method pdp-sgd --epsilon 1 --clip 0.1 --projection-dim 50 --public-size 100
  dp-pose train --recipe R.yaml --method dp-sgd --epsilon 8 --nproc 2     # 2 processes (DDP, gloo on CPU)
  dp-pose train --recipe R.yaml --strategy head --lr 0.002 --seed 1 --out runs/head-s1   # a variant of a recipe
  dp-pose train --resume runs/demo                                          # continue after a stop or a kill
  dp-pose train --recipe training/recipes/lsp_public_pretrain.yaml --precision bf16 --device cpu
  dp-pose train --recipe my_ward.yaml --attest-init-unseen "its init, a Hub model, saw LSP and COCO only"
"""
EPILOG_EVAL = """examples:
  dp-pose eval runs/full --data synthpose:private-test          # a checkpoint: on torch ([train] extra)
  dp-pose eval runs/full --data mpii:/data/mpii --json
  dp-pose eval runs/full --data coco:../shared/data/coco-mini/annotations/person_keypoints_val2017.json
  dp-pose eval default --data mpii:/data/mpii/annotations/mpii_test.json   # an ONNX model: torch-free
  dp-pose eval OWNER/REPO --precision int8 --data synthpose:private-test   # a Hub release's INT8 export
  dp-pose eval runs/full/onnx/model.onnx --data synthpose:private-test
  dp-pose eval default --data mpii:/data/mpii/annotations/mpii_test.json --flip-test   # + mirrored crops

MODEL is any model reference: 'default', OWNER/REPO[@rev], a checkpoint or export folder, or a
model file. A checkpoint (model.safetensors + config.json) runs on torch, as training evaluates it;
anything else, and --precision int8, runs its ONNX on the torch-free runtime with the same crops
and decoding.

The MPII table (Head ... Ankle, Mean, Mean@0.1), then PCKh@0.5 and @0.1 over the
12 limb joints (no head top, upper neck, pelvis or thorax). People without a head
box (COCO people with unlabelled face keypoints or shoulders) are left out, with a warning.
"""
EPILOG_SYNTH = """examples:
  dp-pose synth --out data/synth-private --n 500 --domain private --seed 7
  dp-pose eval runs/full --data mpii:data/synth-private/annotations/mpii_train.json
"""


_RECIPE_OVERRIDES = {  # CLI flag dest -> recipe key
    "epochs": "epochs", "seed": "seed", "lr": "lr", "strategy": "strategy", "ema_decay": "ema_decay",
    "method": "method", "epsilon": "epsilon",
    "noise_multiplier": "noise_multiplier", "delta": "delta", "clip": "clipping_norm",
    "accountant": "accountant", "batch_size": "batch_size", "physical_batch_size": "physical_batch_size",
    "projection_dim": "projection_dim", "public_size": "public_size", "public_data": "public_data",
    "refresh_every": "refresh_every", "attest_init_unseen": "init_unseen_attestation", "device": "device",
    "precision": "precision", "num_workers": "num_workers",
}


def _cmd_train(args) -> int:
    if args.nproc > 1:
        return _launch_distributed(args)
    from .training.config import CLEAR, load_recipe
    from .training.trainer import train

    logging.getLogger("dp_pose_zoo").setLevel(logging.INFO)  # calibration and privacy spent are for the user
    if args.stop_after_epochs is not None and args.stop_after_epochs < 1:
        raise UsageError(f"--stop-after-epochs must be at least 1; got {args.stop_after_epochs}")
    if args.resume:
        # How to run (device, precision, loader processes) may change on resume, e.g. on another machine; what
        # to run may not.
        how = {key: getattr(args, key) for key in ("device", "precision", "num_workers") if getattr(args, key) is not None}
        out = train(None, args.resume, resume=True, progress_bar=not args.quiet,
                    stop_after_epochs=args.stop_after_epochs, execution=how)
    else:
        if not args.recipe:
            raise UsageError("train needs --recipe R.yaml (or --resume DIR)")
        overrides = {key: getattr(args, dest) for dest, key in _RECIPE_OVERRIDES.items()}
        # --epsilon replaces a recipe's fixed noise multiplier, and --noise-multiplier its target epsilon.
        if args.epsilon is not None and args.noise_multiplier is None:
            overrides["noise_multiplier"] = CLEAR
        if args.noise_multiplier is not None and args.epsilon is None:
            overrides["epsilon"] = CLEAR
        recipe = load_recipe(args.recipe, **overrides)
        out = train(recipe, args.out or f"runs/{recipe.name}", progress_bar=not args.quiet,
                    stop_after_epochs=args.stop_after_epochs)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"checkpoint: {out}")
    return 0


def _launch_distributed(args) -> int:
    """Re-run this train command under torchrun with ``--nproc`` processes."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
           "-m", "dp_pose_zoo", *torchrun_args(args.argv)]
    return subprocess.call(cmd)


def torchrun_args(argv: list[str]) -> list[str]:
    """What each process's ``python -m dp_pose_zoo`` gets: this command line as given, without ``--nproc``
    (each process is one of them); a value spelled ``train`` (``--out train``) stays what it was."""
    kept, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            kept.append(a)
    return kept


def _cmd_eval(args) -> int:
    from .datasets import load_dataset
    from .metrics import format_limb_line, format_pckh_table, limb_pckh, pckh_table
    from .runtime.reference import resolve_reference

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1; got {args.batch_size}")
    ref = resolve_reference(args.checkpoint, precision=args.precision)
    runtime = "onnx" if args.precision == "int8" or (not ref.has_weights and ref.has_onnx) else "torch"
    # The model opens (and its hashes are checked) before the data set is read.
    predict = _torch_predictor(ref) if runtime == "torch" else _onnx_predictor(ref, args.precision)
    loaded = load_dataset(args.data)
    dataset = loaded.with_head_boxes()
    left_out = len(loaded) - len(dataset)
    if not len(dataset):
        raise DatasetError(f"PCKh needs head boxes: none of the {len(loaded)} people in {args.data} has one")
    if left_out:
        logger.warning("%d of %d people in %s have no head box and are left out of PCKh", left_out, len(loaded),
                       args.data)
    pred, _ = predict(dataset, batch_size=args.batch_size, progress=not args.json, flip_test=args.flip_test)
    truth = dataset.ground_truth()
    table = pckh_table(pred, *truth)
    limbs = limb_pckh(pred, *truth)
    if args.json:
        print(json.dumps({"checkpoint": str(args.checkpoint), "runtime": runtime, "precision": args.precision,
                          "flip_test": args.flip_test, "data": args.data, "people": len(dataset),
                          "people_without_head_box": left_out,
                          "pckh": {k: (None if math.isnan(v) else round(v, 4)) for k, v in {**table, **limbs}.items()}}))
    else:
        flipped = ", flip test" if args.flip_test else ""
        print(format_pckh_table(table, title=f"PCKh on {args.data} ({len(dataset)} people{flipped})"))
        print(format_limb_line(limbs))
    return 0


def _torch_predictor(ref):
    """A checkpoint's model on torch, as training evaluates it (the ``[train]`` extra)."""
    from .training.checkpoint import load_model
    from .training.evaluate import predict

    return partial(predict, load_model(ref.checkpoint(command="eval"))[0])


def _onnx_predictor(ref, precision: str):
    """An ONNX model on the torch-free runtime, verified as ``infer`` verifies it."""
    from .runtime.evaluate import predict_onnx
    from .runtime.pretrained import open_estimator

    return partial(predict_onnx, open_estimator(ref, precision=precision))


def _cmd_synth(args) -> int:
    from .datasets.synthpose import write_split

    out = write_split(args.out, domain=args.domain, n=args.n, seed=args.seed, split=args.split, progress=True)
    print(f"wrote {args.n} {args.domain} people to {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dp-pose", description="Differentially private 2D human-pose models.")
    parser.add_argument("--version", action="version", version=f"dp-pose-zoo {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("train", help="train a checkpoint from a recipe", epilog=EPILOG_TRAIN, formatter_class=fmt)
    p.add_argument("--recipe", help="a YAML recipe from training/recipes/")
    p.add_argument("--out", help="checkpoint directory to write (default: runs/<recipe name>)")
    p.add_argument("--resume", metavar="DIR", help="continue the checkpoint in DIR where it stopped")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs")
    p.add_argument("--stop-after-epochs", type=int, metavar="N",
                   help="stop after N epochs of this run (the schedule still spans all epochs; --resume continues)")
    p.add_argument("--seed", type=int, help="override the recipe's seed")
    p.add_argument("--batch-size", type=int, help="(expected) logical batch size")
    p.add_argument("--lr", type=float, help="override the recipe's peak learning rate")
    p.add_argument("--strategy", help="override the recipe's strategy: which parameters train "
                                      "(finetune, full, scratch, norm-bias-head, head)")
    p.add_argument("--ema-decay", type=float, help="keep an exponential moving average of the weights (e.g. 0.95)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"),
                   help="where to train (recipe default auto: cuda, else mps, else cpu)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"),
                   help="autocast of the forward pass; bf16 needs a CPU with avx512_bf16/amx or a GPU")
    p.add_argument("--num-workers", type=int, help="data loader processes (decode and augment beside training)")
    dp = p.add_argument_group("differential privacy (override the recipe)")
    dp.add_argument("--method", choices=("non-private", "dp-sgd", "pdp-sgd"))
    dp.add_argument("--epsilon", type=float, help="target epsilon; the noise multiplier is calibrated to it")
    dp.add_argument("--noise-multiplier", type=float, help="a fixed noise multiplier instead of --epsilon")
    dp.add_argument("--delta", type=float, help="target delta (default 1e-5; must be below 1/N)")
    dp.add_argument("--clip", type=float, help="per-sample clipping norm C")
    dp.add_argument("--accountant", choices=privacy.ACCOUNTANT_CHOICES,
                    help=f"privacy accountant (default {privacy.ACCOUNTANT_CHOICES[0]})")
    dp.add_argument("--physical-batch-size", type=int, help="per-sample gradients computed this many at a time")
    dp.add_argument("--projection-dim", type=int, help="PDP-SGD: dimension k of the public gradient subspace")
    dp.add_argument("--public-size", type=int, help="PDP-SGD: number of public people m")
    dp.add_argument("--public-data", help="PDP-SGD: public data spec (disjoint from the training data)")
    dp.add_argument("--refresh-every", type=int, help="PDP-SGD: steps between subspace refreshes")
    dp.add_argument("--attest-init-unseen", metavar="WHY",
                    help="the recipe's init was trained on data not on this machine, so it cannot be checked against "
                         "the private people: say why it never saw them (the card quotes it)")
    p.add_argument("--nproc", type=int, default=1, help="processes for data-parallel DP training (default 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="print a model's PCKh on a data set", epilog=EPILOG_EVAL, formatter_class=fmt)
    p.add_argument("checkpoint", metavar="MODEL",
                   help="'default', OWNER/REPO[@rev], a checkpoint or export folder, or a .onnx file")
    p.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                   help="int8 evaluates the model's INT8 ONNX (default: %(default)s; a checkpoint runs on torch)")
    p.add_argument("--data", default="synthpose:private-test",
                   help="synthpose:<domain>-<split>[:N], mpii:PATH or coco:PATH (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--flip-test", action="store_true",
                   help="also run each crop mirrored and average the two (mmpose's flip test; twice the time)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("synth", help="write a SynthPose split in MPII's JSON layout", epilog=EPILOG_SYNTH,
                       formatter_class=fmt)
    p.add_argument("--out", required=True, help="directory to create (must not exist or be empty)")
    p.add_argument("--n", type=int, required=True, help="number of people")
    p.add_argument("--domain", choices=("public", "private"), default="private")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="train", help="name in annotations/mpii_<split>.json (default: %(default)s)")
    p.set_defaults(func=_cmd_synth)

    infer.add_parser(sub)
    recover.add_parsers(sub)
    privacy.add_parser(sub)
    export.add_parser(sub)
    zoo.add_parser(sub)
    card.add_parser(sub)
    audit.add_parser(sub)
    demo.add_parser(sub)
    return parser


class _CliFormatter(logging.Formatter):
    """Log records as the CLI's own lines, ``dp-pose infer: warning: ...``, like its errors.

    Warnings are the library's to give (a Python caller sees them too); the CLI only
    formats them, so each is said once.
    """

    def __init__(self, command: str):
        super().__init__(f"dp-pose {command}: %(level)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.level = record.levelname.lower()
        return super().format(record)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv  # `train --nproc N` relaunches exactly these under torchrun
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_CliFormatter(args.command))
    ours = logging.getLogger("dp_pose_zoo")
    level, our_level = root.level, ours.level
    root.addHandler(handler)
    root.setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:
        return args.func(args)
    except DPPoseZooError as e:
        print(f"dp-pose {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dp-pose {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:  # main() may run in-process (tests, an embedding program): leave logging as it was
        root.removeHandler(handler)
        root.setLevel(level)
        ours.setLevel(our_level)  # `train` raises it to INFO for its run only


if __name__ == "__main__":
    sys.exit(main())
