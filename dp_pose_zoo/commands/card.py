"""``dp-pose card DIR``: print a checkpoint's release card, or check it (``--check``).

Cards are never typed by hand: the trainer writes ``README.md`` from the run's
recipe, privacy ledger and evaluation. This command checks that card against
the folder it describes -- it parses and carries a complete privacy claim, the
weights hash to its ``weights_sha256``, ``config.json`` (the ledger) agrees on
method and epsilon, and any ONNX export carries the same weights hash and
privacy -- then prints it with the ``files`` sha256 map of everything a push
would ship. ``dp-pose card DIR > model_cards/NAME.md`` is how a released card
gets into ``model_cards/``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..card import format_epsilon
from ..checkpoint_config import CONFIG, read_config_file
from ..errors import CheckpointError

EPILOG = """examples:
  dp-pose card runs/demo                          # print the card, stamped with the sha256 of every shipped file
  dp-pose card runs/demo > model_cards/demo.md    # how model_cards/ is filled (never by hand)
  dp-pose card runs/demo --check                  # validate only: one line, exit 0 (or 2 with the reason)
  dp-pose card runs/demo/onnx --check             # an export folder: card vs the ONNX metadata
"""


def add_parser(subparsers) -> None:
    """Register ``card`` on the ``dp-pose`` subparsers."""
    p = subparsers.add_parser("card", help="print or check a checkpoint's model card",
                              description="Check a checkpoint's generated model card against its files and "
                                          "print it with the sha256 of every file a release ships.",
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", metavar="DIR", help="a checkpoint or export folder holding README.md")
    p.add_argument("--check", action="store_true", help="validate only; print one summary line")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..hub import stamped_card

    folder = Path(args.dir)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a directory")
    if (folder / CONFIG).is_file():
        read_config_file(folder / CONFIG)  # the types every reader relies on, as eval and resume check them
    card = stamped_card(folder)  # parses, validates, checks the weights, config.json and ONNX exports against it
    if args.check:
        p = card.privacy
        eps = format_epsilon(p.epsilon, 6)
        print(f"ok: {card.name} ({p.method}, epsilon {eps}, delta {p.delta}, C {p.clipping_norm}; "
              f"{len(card.files)} files hashed)")
    else:
        print(card.text, end="")
    return 0
