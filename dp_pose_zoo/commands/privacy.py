"""``dp-pose privacy``: plan a DP run's privacy before paying for its training.

Either the epsilon a given noise multiplier spends, or the noise multiplier a
given epsilon needs. Displayed numbers are rounded in the user's favour only
where that is safe: epsilon is rounded UP, the noise multiplier UP (more noise
never spends more than shown).
"""

from __future__ import annotations

import argparse
import json
import math
from fractions import Fraction

from ..card import format_epsilon
from ..errors import PrivacyError

EPILOG = """examples:
  dp-pose privacy --sample-rate 0.01 --noise-multiplier 1.1 --steps 2500 --delta 1e-5
  dp-pose privacy --epsilon 8 --delta 1e-5 --sample-rate 0.01 --epochs 25
  dp-pose privacy --epsilon 2 --delta 1e-5 --dataset-size 20000 --batch-size 256 --epochs 30 --accountant rdp
  dp-pose privacy --noise-multiplier 0.9 --delta 1e-5 --dataset-size 20000 --batch-size 256 --steps 3000 --json

Epsilon is an upper bound (PRV: the accountant's upper error bound; RDP: best
order). It is shown rounded UP to 4 significant digits; --json has full floats.
Accountants: prv-rel (default) is PRV with an error of 0.3 % of epsilon; prv is
PRV with the fixed error 0.01 that checkpoints before it used (5 % of epsilon
0.2); rdp is for parity with the paper.
"""

DISPLAY_DIGITS = 4
#: training.accounting.ACCOUNTANTS, default first, spelled out here: this module must not import torch.
ACCOUNTANT_CHOICES = ("prv-rel", "prv", "rdp")


def add_parser(subparsers) -> None:
    """Register ``privacy`` on the ``dp-pose`` subparsers."""
    p = subparsers.add_parser(
        "privacy", help="epsilon for a noise multiplier, or the noise multiplier for an epsilon",
        description="Plan a DP-SGD run: compute epsilon from the noise multiplier, or calibrate the noise "
                    "multiplier for a target epsilon (Poisson sampling, add/remove-one-person adjacency).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_argument_group("what to compute (exactly one)")
    what.add_argument("--noise-multiplier", type=float, metavar="SIGMA", help="print the epsilon it spends")
    what.add_argument("--epsilon", type=float, metavar="EPS", help="print the noise multiplier it needs")
    p.add_argument("--delta", type=float, required=True, help="target delta (must be < 1/N)")
    rate = p.add_argument_group("sampling (--sample-rate, or --dataset-size with --batch-size)")
    rate.add_argument("--sample-rate", type=float, metavar="Q", help="Poisson sampling rate q")
    rate.add_argument("--dataset-size", type=int, metavar="N",
                      help="private people N (q = B / N; also checks delta < 1/N)")
    rate.add_argument("--batch-size", type=int, metavar="B", help="expected batch size B")
    length = p.add_argument_group("length (one of)")
    length.add_argument("--steps", type=int, metavar="T", help="number of noisy steps")
    length.add_argument("--epochs", type=float, metavar="E", help="epochs; steps = ceil(E / q)")
    p.add_argument("--accountant", choices=ACCOUNTANT_CHOICES, default=ACCOUNTANT_CHOICES[0],
                   help="default: %(default)s")
    p.add_argument("--json", action="store_true", help="print one JSON object with full-precision floats")
    p.set_defaults(func=run)


def run(args) -> int:
    """Compute and print; every bad input is a PrivacyError (exit 2 through the CLI)."""
    from ..training import accounting

    if (args.noise_multiplier is None) == (args.epsilon is None):
        raise PrivacyError("give exactly one of --noise-multiplier (to get epsilon) or --epsilon (to get the noise)")
    q_exact, sample_rate = _sample_rate(args)
    steps = _steps(args, q_exact)
    accounting.check_delta_range(args.delta)
    if args.dataset_size is not None:
        accounting.check_delta(args.delta, args.dataset_size)
    common = dict(sample_rate=sample_rate, steps=steps, delta=args.delta, accountant=args.accountant)
    if args.epsilon is not None:
        sigma = accounting.noise_for(epsilon=args.epsilon, **common)
    else:
        sigma = args.noise_multiplier
    epsilon = accounting.epsilon_for(noise_multiplier=sigma, **common)
    result = {
        "mode": "noise" if args.epsilon is not None else "epsilon",
        "accountant": args.accountant,
        "sample_rate": sample_rate,
        "steps": steps,
        "delta": args.delta,
        "noise_multiplier": sigma,
        "epsilon": epsilon,
    }
    if args.epsilon is not None:
        result["target_epsilon"] = args.epsilon
    for key in ("dataset_size", "batch_size", "epochs"):
        if getattr(args, key) is not None:
            result[key] = getattr(args, key)
    print(json.dumps(result) if args.json else _human(result))
    return 0


def _sample_rate(args) -> tuple[Fraction, float]:
    """q exactly (for the epochs-to-steps conversion) and as the float the accountant gets."""
    if args.batch_size is not None or (args.dataset_size is not None and args.sample_rate is None):
        if args.sample_rate is not None:
            raise PrivacyError("give either --sample-rate or --dataset-size with --batch-size, not both")
        if args.dataset_size is None or args.batch_size is None:
            raise PrivacyError("--dataset-size and --batch-size go together (q = B / N)")
        if args.dataset_size < 1 or not 1 <= args.batch_size <= args.dataset_size:
            raise PrivacyError(
                f"--batch-size {args.batch_size} with --dataset-size {args.dataset_size} is invalid; "
                "allowed: 1 <= B <= N"
            )
        return Fraction(args.batch_size, args.dataset_size), args.batch_size / args.dataset_size
    if args.sample_rate is None:
        raise PrivacyError("give --sample-rate Q, or --dataset-size N with --batch-size B")
    from ..training.accounting import check_sample_rate

    check_sample_rate(args.sample_rate)
    return Fraction(repr(args.sample_rate)), args.sample_rate


def _steps(args, q: Fraction) -> int:
    """--steps, or ceil(E / q) computed exactly (3 epochs at q = 0.1 is 30 steps, not 31)."""
    if (args.steps is None) == (args.epochs is None):
        raise PrivacyError("give exactly one of --steps or --epochs")
    if args.steps is not None:
        from ..training.accounting import check_steps

        check_steps(args.steps)
        return args.steps
    if not math.isfinite(args.epochs) or args.epochs <= 0:
        raise PrivacyError(f"--epochs {args.epochs!r} is invalid; allowed: epochs > 0")
    from ..training.accounting import steps_for

    return steps_for(epochs=Fraction(repr(args.epochs)), sample_rate=q)


def ceil_sig(x: float, digits: int = DISPLAY_DIGITS) -> str:
    """``x`` rounded UP to ``digits`` significant digits, as text (never shows less than ``x``)."""
    return format_epsilon(x, digits)


def _human(r: dict) -> str:
    rows = [("accountant", r["accountant"])]
    if "dataset_size" in r:
        rows.append(("sample rate", f"{r['sample_rate']!r} ({r['batch_size']} / {r['dataset_size']})"))
    else:
        rows.append(("sample rate", repr(r["sample_rate"])))
    steps = f"{r['steps']}" + (f" ({r['epochs']:g} epochs)" if "epochs" in r else "")
    rows += [("steps", steps), ("delta", repr(r["delta"]))]
    if r["mode"] == "noise":
        rows += [("target epsilon", repr(r["target_epsilon"])),
                 ("noise multiplier", f"{ceil_sig(r['noise_multiplier'])}  (rounded up)")]
    else:
        rows.append(("noise multiplier", repr(r["noise_multiplier"])))
    rows.append(("epsilon", f"{ceil_sig(r['epsilon'])}  (upper bound, rounded up)"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
