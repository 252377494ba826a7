"""``dp-pose audit``: membership inference against a checkpoint, beside its card's epsilon.

If an attack's empirical lower bound exceeds the epsilon the checkpoint claims,
the claim is wrong (a bug in training or accounting): the command says so and
exits 3, so a script or CI job cannot miss it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ..card import format_epsilon, format_epsilon_lower_bound
from ..errors import DPPoseZooError

EPILOG = """examples:
  dp-pose audit runs/paper_grid/finetune-dp-sgd-eps1-C0.1 \\
      --members synthpose:private-train:500 --non-members synthpose:private-test:500
  dp-pose audit runs/my-model --members data/train --non-members data/heldout --reference runs/public-pretrain
  dp-pose audit runs/my-model --members mpii:data/mpii --non-members coco:data/coco --json
  dp-pose audit runs/paper_grid/finetune-* --members synthpose:private-train:500 \\
      --non-members synthpose:private-test:500 --json          # one JSON line per checkpoint

--members are people the checkpoint was trained on, --non-members people from the same
distribution it never saw (a data spec, or a directory written by `dp-pose synth` or in
mmpose's MPII layout). --reference defaults to the checkpoint's init (its public pretraining)
when that directory exists: the calibrated attack needs a model that never saw the members.
The epsilon bounds hold with the given confidence (default 95%).
"""

SPEC_KINDS = ("synthpose:", "mpii:", "coco:")


class AuditError(DPPoseZooError, ValueError):
    pass


def add_parser(subparsers) -> None:
    """Register ``audit`` on the ``dp-pose`` subparsers."""
    p = subparsers.add_parser(
        "audit", help="membership-inference audit: attack AUC and an empirical epsilon lower bound",
        description="Attack a checkpoint with membership inference (loss threshold, and loss calibrated "
                    "against a reference model) and turn the attack's TPR/FPR into a lower bound on epsilon.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoints", nargs="+", metavar="MODEL",
                   help="checkpoints with weights (from dp-pose train), as folders or OWNER/REPO[@rev]; several "
                        "share the crops and references")
    p.add_argument("--members", required=True, help="people in the training data (spec or directory)")
    p.add_argument("--non-members", required=True, help="people from the same distribution, never trained on")
    p.add_argument("--reference", help="a checkpoint that never saw the members; 'none' to skip "
                                       "(default: the checkpoint's init, if present)")
    p.add_argument("--confidence", type=float, default=0.95, help="confidence of the bounds (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def data_spec(arg: str) -> str:
    """A data spec, or a directory holding one ``annotations/mpii_*.json`` (``dp-pose synth`` output)."""
    if arg.startswith(SPEC_KINDS):
        return arg
    path = Path(arg)
    if not path.is_dir():
        raise AuditError(f"{arg!r} is neither a data spec (synthpose:..., mpii:PATH, coco:PATH) nor a directory")
    found = sorted((path / "annotations").glob("mpii_*.json"))
    if len(found) != 1:
        raise AuditError(f"{path} must hold exactly one annotations/mpii_*.json (found {len(found)}); "
                         "pass mpii:FILE or coco:FILE instead")
    return f"mpii:{found[0]}"


def _reference_dir(args, config: dict) -> Path | None:
    """--reference, else the checkpoint's init when it is on disk; None for 'none' or no init."""
    if args.reference and args.reference.lower() == "none":
        return None
    if args.reference:
        return _checkpoint(args.reference, "an audit's reference")
    init = (config.get("recipe") or {}).get("init")
    return Path(init) if init and (Path(init) / "model.safetensors").exists() else None


def _checkpoint(reference: str, command: str) -> Path:
    """The checkpoint a model reference names: an attack needs the weights' losses, not an ONNX model's."""
    from ..runtime.reference import resolve_reference

    return resolve_reference(reference).checkpoint(command=command)


def run(args) -> int:
    from ..datasets import load_dataset
    from ..training.audit import MIN_PEOPLE, AuditData, attack, batch_losses, check_disjoint, crop_batches
    from ..training.checkpoint import load_model

    if not 0.5 <= args.confidence < 1:
        raise AuditError(f"--confidence must be in [0.5, 1); got {args.confidence}")
    if args.batch_size < 1:
        raise AuditError(f"--batch-size must be at least 1; got {args.batch_size}")
    folders = {checkpoint: _checkpoint(checkpoint, "audit") for checkpoint in args.checkpoints}  # before the data
    members, non_members = load_dataset(data_spec(args.members)), load_dataset(data_spec(args.non_members))
    if min(len(members), len(non_members)) < MIN_PEOPLE:
        raise AuditError(f"an audit needs at least {MIN_PEOPLE} members and {MIN_PEOPLE} non-members; got "
                         f"{len(members)} and {len(non_members)}")
    try:
        check_disjoint(members, non_members)
    except ValueError as e:
        raise AuditError(str(e)) from None
    # Several checkpoints share the crops (per input size) and each reference's losses.
    crops: dict[tuple, tuple[list, list]] = {}
    reference_losses: dict[Path, tuple] = {}
    status = 0
    for checkpoint in args.checkpoints:
        model, config = load_model(folders[checkpoint])
        key = (tuple(model.config.input_size), model.config.split_ratio)
        if key not in crops:
            crops[key] = (crop_batches(members, model, batch_size=args.batch_size),
                          crop_batches(non_members, model, batch_size=args.batch_size))
        data = AuditData(*crops[key])
        reference_dir = _reference_dir(args, config)
        if reference_dir is not None:
            if reference_dir not in reference_losses:
                reference = load_model(reference_dir)[0]
                reference_losses[reference_dir] = (batch_losses(reference, data.members),
                                                   batch_losses(reference, data.non_members))
            data.reference_losses = reference_losses[reference_dir]
        delta = (config.get("privacy") or {}).get("delta") or 1e-5
        results = attack(model, data, delta=delta, confidence=args.confidence)
        status = max(status, _report(args, checkpoint, config, delta, results, reference_dir,
                                     (len(members), len(non_members))))
    return status


def _report(args, checkpoint, config, delta, results, reference_dir, people) -> int:
    """Print one checkpoint's audit; 3 if an attack's bound beats the card's epsilon."""
    from ..runtime.metadata import json_safe

    claimed = (config.get("privacy") or {}).get("epsilon", math.inf)
    violated = [r for r in results if r.epsilon_lower_bound > claimed]
    method = (config.get("recipe") or {}).get("method", "?")
    if args.json:
        # strict JSON, as keypoints.json: a non-private model's epsilon is spelled "inf"
        print(json.dumps({"checkpoint": str(checkpoint), "method": method,
                          "card_epsilon": json_safe(claimed),
                          "delta": delta, "members": args.members, "non_members": args.non_members,
                          "people": list(people), "reference": str(reference_dir) if reference_dir else None,
                          "attacks": [r.to_dict() for r in results], "violated": bool(violated)}), flush=True)
    else:
        print(f"membership inference on {checkpoint} ({method}; card epsilon "
              f"{format_epsilon(claimed)} at delta {delta:g})")
        print(f"members: {args.members} ({people[0]}), non-members: {args.non_members} ({people[1]})"
              + (f", reference: {reference_dir}" if reference_dir else ""))
        print(f"{'attack':20s} {'AUC':>6s} {'TPR':>6s} {'FPR':>6s}  empirical epsilon >= ({args.confidence:.0%})")
        for r in results:
            print(f"{r.name:20s} {r.auc:6.3f} {r.tpr:6.3f} {r.fpr:6.3f}  "
                  f"{format_epsilon_lower_bound(r.epsilon_lower_bound)}", flush=True)
    if violated:
        print(f"dp-pose audit: {checkpoint}: the empirical lower bound exceeds the card's epsilon "
              f"{format_epsilon(claimed)}: the privacy claim is wrong; do not release this checkpoint",
              file=sys.stderr)
        return 3
    return 0
