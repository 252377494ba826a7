"""``dp-pose card MODEL``: print a checkpoint's release card, or check it (``--check``).

Cards are never typed by hand: the trainer writes ``README.md`` from the run's
recipe, privacy ledger and evaluation. This command checks that card against
the folder it describes -- it parses and carries a complete privacy claim, the
weights hash to its ``weights_sha256``, ``config.json`` (the ledger) agrees on
method and epsilon, and any ONNX export carries the same weights hash and
privacy -- then prints it with the ``files`` sha256 map of everything a push
would ship. In a DP training folder (one that still holds the privacy journal
or the training state, which are never shipped) it also checks the journal's
hash chain against the ledger in config.json and recomputes the card's
epsilon, steps and noise from that ledger. ``dp-pose card DIR >
model_cards/NAME.md`` is how a released card gets into ``model_cards/``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..card import Card, format_epsilon
from ..checkpoint_config import ALL_KEYS, CONFIG, JOURNAL, TRAINING_STATE, check_config, read_config_file

EPILOG = """examples:
  dp-pose card runs/demo                          # print the card, stamped with the sha256 of every shipped file
  dp-pose card runs/demo > model_cards/demo.md    # how model_cards/ is filled (never by hand)
  dp-pose card runs/demo --check                  # validate only: one line, exit 0 (or 2 with the reason)
  dp-pose card runs/demo/onnx --check             # an export folder: card vs the ONNX metadata
  dp-pose card default --check                    # the embedded default
"""


def add_parser(subparsers) -> None:
    """Register ``card`` on the ``dp-pose`` subparsers."""
    p = subparsers.add_parser("card", help="print or check a checkpoint's model card",
                              description="Check a checkpoint's generated model card against its files and "
                                          "print it with the sha256 of every file a release ships.",
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", metavar="MODEL", help="a checkpoint or export folder holding README.md, or any model "
                                                "reference: 'default', OWNER/REPO[@rev], a .onnx file")
    p.add_argument("--check", action="store_true", help="validate only; print one summary line")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..release import stamped_card
    from ..runtime.reference import resolve_reference

    folder = resolve_reference(args.dir).folder  # a model file's card is its folder's
    config = read_config_file(folder / CONFIG) if (folder / CONFIG).is_file() else {}  # as eval and resume check it
    card = stamped_card(folder)  # parses, validates, checks the weights, config.json and ONNX exports against it
    journaled = _check_ledger(folder, card, config)
    if args.check:
        p = card.privacy
        eps = format_epsilon(p.epsilon, 6)
        verified = f"; journal verified over {journaled} steps" if journaled is not None else ""
        print(f"ok: {card.name} ({p.method}, epsilon {eps}, delta {p.delta}, C {p.clipping_norm}; "
              f"{len(card.files)} files hashed{verified})")
    else:
        print(card.text, end="")
    return 0


def _check_ledger(folder: Path, card: Card, config: dict) -> int | None:
    """A DP training folder: the card against its ledger, the ledger against its journal; the steps verified.

    A release ships neither the journal nor the training state: there,
    ``stamped_card`` has compared the card with config.json and there is no
    journal to read (None).
    """
    record = config.get("privacy")
    trainer_record = isinstance(record, dict) and ("ledger" in record or "journal" in record)
    in_training = any((folder / name).exists() for name in (JOURNAL, TRAINING_STATE))
    if not (card.private and trainer_record and in_training):
        return None
    from ..training.ledger import check_claim, check_record  # a training folder: the train extra is installed

    check_config(config, str(folder / CONFIG), require=ALL_KEYS)
    ledger = check_record(folder / JOURNAL, record, progress_step=config["progress"]["step"])
    check_claim(card.privacy, record, ledger)
    return ledger.steps
