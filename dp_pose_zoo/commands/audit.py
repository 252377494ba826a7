"""``dp-pose audit``: membership inference against a model, beside its card's epsilon.

The model is any reference (``dp_pose_zoo.runtime.reference``): a checkpoint is
attacked through its torch weights, an ONNX-only release (the embedded default,
a Hub release, an export) through the very file that ships, with the claim of
the card it was verified against.

If an attack's empirical lower bound exceeds the epsilon the model claims,
the claim is wrong (a bug in training or accounting): the command says so and
exits 3, so a script or CI job cannot miss it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..card import format_epsilon, format_epsilon_lower_bound
from ..errors import DPPoseZooError

EPILOG = """examples:
  dp-pose audit runs/paper_grid/finetune-dp-sgd-eps1-C0.1 \\
      --members synthpose:private-train:500 --non-members synthpose:private-test:500
  dp-pose audit runs/my-model --members data/train --non-members data/heldout --reference runs/public-pretrain
  dp-pose audit runs/my-model --members mpii:data/mpii --non-members coco:data/coco --json
  dp-pose audit runs/paper_grid/finetune-* --members synthpose:private-train:500 \\
      --non-members synthpose:private-test:500 --json          # one JSON line per checkpoint
  dp-pose audit default --members mpii:../shared/data/mpii-subset/annotations/mpii_train.json \\
      --non-members mpii:../shared/data/mpii-subset/annotations/mpii_test.json \\
      --reference runs/lsp_public_pretrain_ep16              # the released ONNX model itself

--members are people the model was trained on, --non-members people from the same
distribution it never saw (a data spec, or a directory written by `dp-pose synth` or in
mmpose's MPII layout). --reference defaults to a checkpoint's init (its public pretraining)
when that directory exists: the calibrated attack needs a model that never saw the members
(any model reference with the same input size).
The epsilon bounds hold with the given confidence (default 95%).
"""

SPEC_KINDS = ("synthpose:", "mpii:", "coco:")


class AuditError(DPPoseZooError, ValueError):
    pass


def add_parser(subparsers) -> None:
    """Register ``audit`` on the ``dp-pose`` subparsers."""
    p = subparsers.add_parser(
        "audit", help="membership-inference audit: attack AUC and an empirical epsilon lower bound",
        description="Attack a model with membership inference (loss threshold, and loss calibrated "
                    "against a reference model) and turn the attack's TPR/FPR into a lower bound on epsilon.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoints", nargs="+", metavar="MODEL",
                   help="models: 'default', OWNER/REPO[@rev], a checkpoint folder or an ONNX model with its card; "
                        "several share the crops and references")
    p.add_argument("--members", required=True, help="people in the training data (spec or directory)")
    p.add_argument("--non-members", required=True, help="people from the same distribution, never trained on")
    p.add_argument("--reference", help="a model that never saw the members; 'none' to skip "
                                       "(default: a checkpoint's init, if present)")
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


@dataclass
class _Target:
    """What an attack needs of a model: its forward pass, its input geometry and the privacy it claims."""

    forward: Callable
    geometry: tuple  # (input_size, split_ratio): models that share it share the crops
    method: str
    epsilon: float
    delta: float | None
    init: str | None  # the public model it started from, when its config records one


def _load_target(reference: str, command: str) -> _Target:
    """A checkpoint's torch model, else the reference's ONNX model with the claim of the card it was verified
    against (the embedded default, a Hub release, an export): the file that ships is the one attacked."""
    from ..runtime.reference import resolve_reference
    from ..training.audit import onnx_forward, torch_forward

    ref = resolve_reference(reference)
    if ref.has_weights or not ref.has_onnx:
        from ..training.checkpoint import load_model

        model, config = load_model(ref.checkpoint(command=command))
        privacy, recipe = config.get("privacy") or {}, config.get("recipe") or {}
        return _Target(torch_forward(model), (tuple(model.config.input_size), model.config.split_ratio),
                       recipe.get("method", "?"), privacy.get("epsilon", math.inf), privacy.get("delta"),
                       recipe.get("init"))
    from ..runtime.onnx_model import OnnxModel

    path, card = ref.onnx()
    model = OnnxModel(path)
    return _Target(onnx_forward(model), (tuple(model.input_size), model.split_ratio), card.privacy.method,
                   card.privacy.epsilon, card.privacy.delta, None)


def _reference(args, target: _Target) -> str | None:
    """--reference, else the model's init when its weights are on disk; None for 'none' or no init."""
    if args.reference and args.reference.lower() == "none":
        return None
    if args.reference:
        return args.reference
    from ..release import WEIGHTS

    init = target.init
    return init if init and (Path(init) / WEIGHTS).exists() else None


def run(args) -> int:
    from ..datasets import load_dataset
    from ..training.audit import MIN_PEOPLE, AuditData, attack, batch_losses, check_disjoint, crop_batches

    if not 0.5 <= args.confidence < 1:
        raise AuditError(f"--confidence must be in [0.5, 1); got {args.confidence}")
    if args.batch_size < 1:
        raise AuditError(f"--batch-size must be at least 1; got {args.batch_size}")
    targets = {model: _load_target(model, "audit") for model in args.checkpoints}  # before the data
    references: dict[str, _Target] = {}
    if args.reference and args.reference.lower() != "none":
        references[args.reference] = _load_target(args.reference, "an audit's reference")
    members, non_members = load_dataset(data_spec(args.members)), load_dataset(data_spec(args.non_members))
    if min(len(members), len(non_members)) < MIN_PEOPLE:
        raise AuditError(f"an audit needs at least {MIN_PEOPLE} members and {MIN_PEOPLE} non-members; got "
                         f"{len(members)} and {len(non_members)}")
    try:
        check_disjoint(members, non_members)
    except ValueError as e:
        raise AuditError(str(e)) from None
    # Several models share the crops (per input geometry) and each reference's losses.
    crops: dict[tuple, tuple[list, list]] = {}
    reference_losses: dict[str, tuple] = {}
    status = 0
    for name, target in targets.items():
        if target.geometry not in crops:
            crops[target.geometry] = tuple(crop_batches(people, *target.geometry, batch_size=args.batch_size)
                                           for people in (members, non_members))
        data = AuditData(*crops[target.geometry])
        reference = _reference(args, target)
        if reference is not None:
            if reference not in references:
                references[reference] = _load_target(reference, "an audit's reference")
            if references[reference].geometry != target.geometry:
                raise AuditError(f"the reference {reference} takes {references[reference].geometry[0]} crops, the "
                                 f"model {name} {target.geometry[0]}: the calibrated attack needs the same crops")
            if reference not in reference_losses:  # its geometry is the model's: the same crops
                forward = references[reference].forward
                reference_losses[reference] = (batch_losses(forward, data.members),
                                               batch_losses(forward, data.non_members))
            data.reference_losses = reference_losses[reference]
        delta = target.delta or 1e-5
        results = attack(target.forward, data, delta=delta, confidence=args.confidence)
        status = max(status, _report(args, name, target, delta, results, reference,
                                     (len(members), len(non_members))))
    return status


def _report(args, checkpoint, target: _Target, delta, results, reference_dir, people) -> int:
    """Print one model's audit; 3 if an attack's bound beats the card's epsilon."""
    from ..runtime.metadata import json_safe

    claimed, method = target.epsilon, target.method
    violated = [r for r in results if r.epsilon_lower_bound > claimed]
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
