"""Model cards: Hub-standard YAML front matter, a ``privacy:`` block, Markdown text.

Cards are generated from a checkpoint's recipe, ledger and evaluation, never
typed by hand. They build on huggingface_hub's ``ModelCard`` so the Hub reads
them; the privacy block and the weights' sha256 travel as extra keys.

Extra front-matter keys:

- ``privacy``: the :class:`PrivacyBlock` (epsilon, delta, clipping_norm, method...).
- ``weights_sha256``: sha256 of ``model.safetensors`` (what the trainer wrote).
- ``files``: ``{path: {sha256, size}}`` for every other file a release ships
  (``onnx/model.onnx``, ``onnx/model.int8.onnx``, ``config.json``...). The
  ONNX metadata's own ``weights_sha256`` names the *source* safetensors, not the
  ``.onnx`` bytes, so it cannot catch a tampered ``.onnx``; this map can.
  ``dp-pose zoo push`` and ``dp-pose card`` stamp it from the files present.

Which cards are accepted (:func:`validate_card`): a DP card (``dp-sgd`` /
``pdp-sgd``) must state a finite epsilon > 0, 0 < delta < 1 and a clipping norm
C > 0 (PDP-SGD also a disjoint public set); a ``non-private`` card must say
epsilon ``.inf`` (delta and C are null). Non-private cards make no privacy claim,
so they are accepted and shown as ``non-private``; a DP card missing any of
epsilon, delta or C is refused.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_CEILING, Decimal
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .checks import is_real
from .errors import CardError

def epsilon_up(epsilon: float, quantum: Decimal) -> Decimal:
    """``epsilon`` rounded UP to a multiple of ``quantum``, from the decimal the float stands for.

    That decimal is ``repr``'s: the shortest one that reads back as the same float, i.e. what
    the user or the accountant wrote. The float 0.1 is 0.1000000000000000055... in binary;
    rounding that up would show 0.1001 for an epsilon of 0.1. Rounding up the decimal still never
    shows less than the true value: the result reads back as a float >= ``epsilon``.
    """
    return Decimal(repr(float(epsilon))).quantize(quantum, rounding=ROUND_CEILING)


def format_epsilon(epsilon: float, digits: int = 4) -> str:
    """``epsilon`` as text rounded UP to ``digits`` significant digits: a display never shows less than was spent."""
    if math.isinf(epsilon):
        return "inf"
    if not math.isfinite(epsilon) or epsilon == 0:
        return repr(epsilon)
    given = Decimal(repr(float(epsilon)))
    rounded = epsilon_up(epsilon, Decimal(1).scaleb(given.adjusted() - digits + 1))
    return f"{rounded:f}" if -6 <= rounded.adjusted() < 15 else f"{rounded:E}"


def format_epsilon_lower_bound(bound: float, decimals: int = 3) -> str:
    """An empirical lower bound on epsilon (``dp-pose audit``) rounded DOWN to ``decimals``: the reverse
    of :func:`format_epsilon`, so a display never shows more leakage than was measured."""
    scale = 10 ** decimals
    return f"{math.floor(bound * scale) / scale:.{decimals}f}"


PRIVACY_UNIT = "one annotated person instance"
LIBRARY_NAME = "dp-pose-zoo"
ZOO_TAG = "dp-pose-zoo"  # every card carries it, so Hub search (list_models(filter=ZOO_TAG)) finds the zoo
METHODS = ("non-private", "dp-sgd", "pdp-sgd")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class PrivacyBlock:
    """What a checkpoint's training spent; epsilon is ``inf`` for a non-private run."""

    method: str  # non-private | dp-sgd | pdp-sgd
    epsilon: float
    delta: float | None
    clipping_norm: float | None
    strategy: str
    epochs: int
    steps: int
    sample_rate: float | None = None
    noise_multiplier: float | None = None
    accountant: str | None = None
    projection_dim: int | None = None
    public_data: dict | None = None
    privacy_unit: str = PRIVACY_UNIT

    def to_dict(self) -> dict:
        return {k: v for k, v in vars(self).items()}


# The terms each kind of data set comes under; a card names them for every source it was trained on.
DATA_TERMS = {
    "lsp": "Leeds Sports Pose (Johnson and Everingham, BMVC 2010 / CVPR 2011): Flickr photos for research use; "
           "cite the papers",
    "mpii": "MPII Human Pose (Andriluka et al., CVPR 2014): annotations under the Simplified BSD license, "
            "images under the MPII site's terms",
    "coco": "COCO (Lin et al., ECCV 2014): annotations under CC BY 4.0, images under the Flickr licenses listed "
            "per image",
    "synthpose": "SynthPose: drawn by dp-pose-zoo, no real people (Apache-2.0)",
}


def data_sources(train_data: str | list) -> list[tuple[str, float]]:
    """A recipe's ``train_data`` (one spec, or ``[SPEC | {data, weight}, ...]``) as ``[(spec, weight), ...]``."""
    items = [train_data] if isinstance(train_data, str) else list(train_data)
    return [(item, 1.0) if isinstance(item, str) else (str(item["data"]), float(item.get("weight", 1.0)))
            for item in items]


def _data_lines(train_data: str | list) -> list[str]:
    lines = []
    for spec, weight in data_sources(train_data):
        seen = "" if weight == 1.0 else f" (each person seen {weight:g} times an epoch)"
        terms = DATA_TERMS.get(spec.partition(":")[0])
        lines.append(f"  - `{spec}`{seen}" + (f": {terms}." if terms else "."))
    return lines


def render_card(*, name: str, privacy: PrivacyBlock, weights_sha256: str, train_data: str | list,
                pckh: dict[str, float] | None = None, eval_data: str | None = None,
                base_model: str | None = None, base_model_data: str | list | None = None, description: str = "",
                files: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The card's full text (front matter and Markdown); ``files`` is the optional ``{path: {sha256, size}}``.

    ``base_model_data``: the ``train_data`` the initial model learned from. A fine-tune's weights carry both
    data sets, so the card names both with their terms, and says which one the privacy guarantee covers.
    The front matter keeps them apart: ``datasets`` is this run's data (the one its epsilon is about),
    ``base_model_datasets`` the initial model's.
    """
    eval_results = None
    if pckh:
        eval_results = [
            EvalResult(task_type="keypoint-detection", dataset_type=eval_data.split(":")[0],
                       dataset_name=eval_data, metric_type="pckh", metric_name=metric,
                       metric_value=round(float(pckh[key]), 2))
            for metric, key in (("PCKh@0.5", "Mean"), ("PCKh@0.1", "Mean@0.1"))
        ]
    data = ModelCardData(
        license="apache-2.0",
        library_name=LIBRARY_NAME,
        pipeline_tag="keypoint-detection",
        tags=[ZOO_TAG, "pose-estimation", "differential-privacy", privacy.method, "tinyvit", "simcc"],
        datasets=[spec for spec, _ in data_sources(train_data)],
        base_model=base_model,
        **({"base_model_datasets": [spec for spec, _ in data_sources(base_model_data)]} if base_model_data else {}),
        model_name=name,
        eval_results=eval_results,
        privacy=privacy.to_dict(),
        weights_sha256=weights_sha256,
        **({"files": {k: dict(v) for k, v in files.items()}} if files else {}),
    )
    eps = "infinite (no privacy guarantee)" if math.isinf(privacy.epsilon) else format_epsilon(privacy.epsilon, 6)
    lines = [
        f"# {name}",
        "",
        "TinyViT-5M with a SimCC head predicting MPII's 16 joints, from dp-pose-zoo.",
        "",
        f"- Strategy `{privacy.strategy}`; {privacy.epochs} epochs, {privacy.steps} steps. Training data:",
        *_data_lines(train_data),
        f"- Privacy: method `{privacy.method}`, epsilon {eps}, delta {privacy.delta}, "
        f"clipping norm {privacy.clipping_norm}; privacy unit: {privacy.privacy_unit}.",
    ]
    if base_model and base_model_data:
        lines.append(f"- Initialised from `{base_model}`, trained on:")
        lines += _data_lines(base_model_data)
        if privacy.method != "non-private":
            lines.append("  The privacy guarantee covers the training data above, not the initial model's data.")
    elif base_model:
        lines.append(f"- Initialised from `{base_model}`.")
    if pckh:
        lines.append(f"- PCKh on `{eval_data}`: Mean {pckh['Mean']:.2f}, Mean@0.1 {pckh['Mean@0.1']:.2f}.")
    if description:
        lines += ["", description]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n"


def parse_card(text: str) -> ModelCard:
    """Parse a card's text; refuse one without front matter or a privacy block."""
    if not text.startswith("---"):
        raise CardError("model card has no YAML front matter")
    try:
        card = ModelCard(text)
    except Exception as e:  # huggingface_hub raises bare ValueErrors on bad YAML
        raise CardError(f"model card is malformed: {e}") from None
    privacy = card.data.to_dict().get("privacy")
    if not isinstance(privacy, dict) or "epsilon" not in privacy or "method" not in privacy:
        raise CardError("model card has no privacy block with epsilon and method")
    return card


@dataclass(frozen=True)
class FileHash:
    """What a shipped file must be: its sha256 and size in bytes."""

    sha256: str
    size: int


@dataclass(frozen=True)
class Card:
    """A parsed card, typed: ``card.privacy.epsilon``, ``card.pckh``, ``card.weights_sha256``.

    ``data`` is huggingface_hub's ``ModelCardData`` (extra keys kept), ``text``
    the card's full text, exactly as read. Build one with :func:`card_from_text`
    or :func:`load_card`; check it with :func:`validate_card`.
    """

    text: str
    data: ModelCardData
    privacy: PrivacyBlock
    weights_sha256: str | None
    files: dict[str, FileHash] = field(default_factory=dict)

    @property
    def name(self) -> str | None:
        return self.data.model_name

    @property
    def tags(self) -> list[str]:
        return list(self.data.tags or [])

    @property
    def train_data(self) -> str | None:
        """The data this model's own training run used: for a DP model, the data its epsilon is about."""
        return _joined(self.data.datasets)

    @property
    def base_model_data(self) -> str | None:
        """The initial model's data (a fine-tune's public pretraining), which no epsilon on this card covers."""
        return _joined(getattr(self.data, "base_model_datasets", None))

    @property
    def eval_data(self) -> str | None:
        results = self.data.eval_results or []
        return results[0].dataset_name if results else None

    @property
    def pckh(self) -> dict[str, float] | None:
        """``{"Mean": PCKh@0.5, "Mean@0.1": PCKh@0.1}`` from the model-index, as render_card took it; None if absent."""
        names = {"PCKh@0.5": "Mean", "PCKh@0.1": "Mean@0.1"}
        out = {names[r.metric_name]: float(r.metric_value) for r in (self.data.eval_results or [])
               if r.metric_name in names and isinstance(r.metric_value, (int, float))}
        return out or None

    @property
    def private(self) -> bool:
        return self.privacy.method != "non-private"

    def with_files(self, files: Mapping[str, FileHash]) -> "Card":
        """The same card with ``files`` stamped into its front matter (and the zoo tag ensured)."""
        card = ModelCard(self.text)
        card.data.files = {path: {"sha256": h.sha256, "size": h.size} for path, h in sorted(files.items())}
        tags = list(card.data.tags or [])
        if ZOO_TAG not in tags:
            card.data.tags = [ZOO_TAG, *tags]
        return card_from_text(str(card))


def _joined(datasets) -> str | None:
    return " + ".join(map(str, datasets)) if isinstance(datasets, list) and datasets else datasets or None


def card_from_text(text: str, *, source: str = "model card") -> Card:
    """A :class:`Card` from a card's text; refuses what :func:`parse_card` refuses or a malformed block."""
    try:
        model_card = parse_card(text)
    except CardError as e:
        raise CardError(f"{source}: {e}") from None
    raw = model_card.data.to_dict()
    block = raw["privacy"]
    # Every field from the card as written (None when absent): the view invents nothing.
    privacy = PrivacyBlock(**{f.name: block.get(f.name) for f in fields(PrivacyBlock)})
    files_raw = raw.get("files") or {}
    if not isinstance(files_raw, dict):
        raise CardError(f"{source}: 'files' must map paths to {{sha256, size}}")
    files = {}
    for path, entry in files_raw.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) \
                or not isinstance(entry.get("size"), int) or isinstance(entry.get("size"), bool):
            raise CardError(f"{source}: files[{path!r}] must be {{sha256: <hex>, size: <bytes>}}")
        files[str(path)] = FileHash(entry["sha256"], entry["size"])
    sha = raw.get("weights_sha256")
    return Card(text=text, data=model_card.data, privacy=privacy, weights_sha256=sha if sha is None else str(sha),
                files=files)


def load_card(path: str | Path) -> Card:
    """The card at ``path`` (a README.md, or a directory holding one), parsed and validated."""
    path = Path(path)
    if path.is_dir():
        path = path / "README.md"
    if not path.is_file():
        raise CardError(f"no model card at {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CardError(f"cannot read model card {path}: {e}") from None
    return validate_card(card_from_text(text, source=str(path)), source=str(path))


def validate_card(card: Card, *, source: str = "model card") -> Card:
    """Return ``card`` if its privacy claim is complete and consistent; raise :class:`CardError` otherwise."""
    p = card.privacy
    problems = []
    if p.method not in METHODS:
        problems.append(f"privacy.method {p.method!r} is not one of {', '.join(METHODS)}")
    elif p.method == "non-private":
        if not (is_real(p.epsilon) and math.isinf(p.epsilon) and p.epsilon > 0):
            problems.append(f"a non-private card must say epsilon .inf, not {p.epsilon!r}")
    else:
        if not (is_real(p.epsilon) and math.isfinite(p.epsilon) and p.epsilon > 0):
            problems.append(f"privacy.epsilon must be a finite number > 0 for {p.method}, got {p.epsilon!r}")
        if not (is_real(p.delta) and 0 < p.delta < 1):
            problems.append(f"privacy.delta must be a number in (0, 1) for {p.method}, got {p.delta!r}")
        if not (is_real(p.clipping_norm) and math.isfinite(p.clipping_norm) and p.clipping_norm > 0):
            problems.append(f"privacy.clipping_norm (C) must be a number > 0 for {p.method}, got {p.clipping_norm!r}")
        if p.method == "pdp-sgd" and not (isinstance(p.public_data, dict) and p.public_data.get("disjoint") is True):
            problems.append("a pdp-sgd card must name its public data with disjoint: true")
    if not (isinstance(card.weights_sha256, str) and _SHA256.match(card.weights_sha256)):
        problems.append(f"weights_sha256 must be 64 lowercase hex digits, got {card.weights_sha256!r}")
    for path, h in card.files.items():
        if not _SHA256.match(h.sha256) or h.size < 0:
            problems.append(f"files[{path!r}] has a malformed sha256 or size")
        if path.startswith("/") or ".." in Path(path).parts:
            problems.append(f"files[{path!r}] is not a relative path inside the repository")
    if problems:
        raise CardError(f"{source} is invalid: " + "; ".join(problems))
    return card
