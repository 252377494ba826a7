"""Model cards: Hub-standard YAML front matter, a ``privacy:`` block, Markdown text.

Cards are generated from a checkpoint's recipe, ledger and evaluation, never
typed by hand. They build on huggingface_hub's ``ModelCard`` so the Hub reads
them; the privacy block and the weights' sha256 travel as extra keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .errors import CardError

PRIVACY_UNIT = "one annotated person instance"
LIBRARY_NAME = "dp-pose-zoo"


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


def render_card(*, name: str, privacy: PrivacyBlock, weights_sha256: str, train_data: str,
                pckh: dict[str, float] | None = None, eval_data: str | None = None,
                base_model: str | None = None, description: str = "") -> str:
    """The card's full text (front matter and Markdown)."""
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
        tags=["pose-estimation", "differential-privacy", privacy.method, "tinyvit", "simcc"],
        datasets=[train_data],
        base_model=base_model,
        model_name=name,
        eval_results=eval_results,
        privacy=privacy.to_dict(),
        weights_sha256=weights_sha256,
    )
    eps = "infinite (no privacy guarantee)" if math.isinf(privacy.epsilon) else f"{privacy.epsilon}"
    lines = [
        f"# {name}",
        "",
        "TinyViT-5M with a SimCC head predicting MPII's 16 joints, from dp-pose-zoo.",
        "",
        f"- Training data: `{train_data}`; strategy `{privacy.strategy}`; {privacy.epochs} epochs, {privacy.steps} steps.",
        f"- Privacy: method `{privacy.method}`, epsilon {eps}, delta {privacy.delta}, "
        f"clipping norm {privacy.clipping_norm}; privacy unit: {privacy.privacy_unit}.",
    ]
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
