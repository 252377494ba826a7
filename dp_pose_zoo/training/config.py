"""Recipes: small dataclasses read from YAML, strict about unknown keys."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..card import METHODS  # the card validates the same methods
from ..datasets.mixture import Source, parse_sources
from ..errors import DatasetError, RecipeError
from ..yaml_mapping import read_yaml_mapping
from .accounting import ACCOUNTANTS, DEFAULT_ACCOUNTANT
from .data import AugmentConfig
from .device import DEVICES, PRECISIONS
from .model import STRATEGIES, ModelConfig



@dataclass
class Recipe:
    """One checkpoint's training recipe (stored inside the checkpoint)."""

    name: str
    # One data spec, or several mixed: [{data: SPEC, weight: W}, ...] (see datasets.mixture).
    train_data: str | list = "synthpose:private-train"
    val_data: str | None = "synthpose:private-val"
    strategy: str = "full"
    init: str | None = None  # a checkpoint to start from (e.g. public pretraining): a folder or OWNER/REPO[@REV]
    # A DP run checks that ``init`` never saw the private people by reading the init's training data. Where that
    # data is not on this machine (a model pulled from the Hub), the run stops, unless this says why the init can
    # be trusted anyway; the card then names the unchecked data and quotes it.
    init_unseen_attestation: str | None = None
    method: str = "non-private"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    seed: int = 0  # initialisation, augmentation and (non-private) data order
    num_workers: int = 0  # processes decoding and augmenting images while the model trains
    device: str = "auto"  # auto | cpu | cuda | mps
    precision: str = "fp32"  # fp32 | bf16 | fp16: autocast of the forward pass (training.device)
    # DP-SGD / PDP-SGD. ``batch_size`` is the expected (logical) batch: Poisson
    # sampling takes each person with probability batch_size / N every step.
    epsilon: float | None = None  # target; the noise multiplier is calibrated to it
    noise_multiplier: float | None = None  # or given directly instead of epsilon
    delta: float = 1e-5
    clipping_norm: float = 1.0
    accountant: str = DEFAULT_ACCOUNTANT
    physical_batch_size: int = 16  # per-sample gradients are computed this many at a time
    checkpoint_every: int | None = None  # steps; default once per epoch
    # PDP-SGD's public subset: disjoint from train_data (checked by image id and by pixels).
    public_data: str = "synthpose:private-holdout"
    public_size: int = 100
    projection_dim: int = 50
    refresh_every: int | None = None  # steps between subspace refreshes; default once per epoch
    # Sampling and noise come from a secret seed drawn at the start of a run. A fixed
    # one makes runs repeatable (tests) but is not private if it is ever published.
    noise_seed: int | None = None
    # Compute the frozen prefix (see TinyViTSimCC.frozen_prefix) once per person; needs augmentation off, or
    # augment_multiplicity K > 1: then K fixed views (the plain crop and K - 1 augmentations) are cached.
    cache_frozen: bool = False
    # DP only: each sampled person is seen in this many augmented views whose gradients are averaged before
    # clipping (De et al. 2022); it costs that many forward/backward passes per person.
    augment_multiplicity: int = 1
    # An exponential moving average of the trained weights (decay per step; warmed up as (1+t)/(10+t)): what is
    # evaluated and saved as model.safetensors. Post-processing of the trained weights: no privacy cost.
    ema_decay: float | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = _from_dict(ModelConfig, self.model, "model")
        if isinstance(self.augment, dict):
            self.augment = _from_dict(AugmentConfig, self.augment, "augment")
        if self.strategy not in STRATEGIES:
            raise RecipeError(f"strategy must be one of {STRATEGIES}; got {self.strategy!r}")
        if self.method not in METHODS:
            raise RecipeError(f"method must be one of {METHODS}; got {self.method!r}")
        _check_numbers(self)
        if self.private and (self.epsilon is None) == (self.noise_multiplier is None):
            raise RecipeError(f"method {self.method} needs exactly one of epsilon (a target) or noise_multiplier")
        if self.device not in DEVICES:
            raise RecipeError(f"device must be one of {DEVICES}; got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise RecipeError(f"precision must be one of {PRECISIONS}; got {self.precision!r}")
        try:
            sources = parse_sources(self.train_data)
        except DatasetError as e:
            raise RecipeError(f"train_data: {e}") from None
        if self.init_unseen_attestation is not None:
            if not isinstance(self.init_unseen_attestation, str) or not self.init_unseen_attestation.strip():
                raise RecipeError("init_unseen_attestation must say, in words, why the initial model never saw the "
                                  f"private people; got {self.init_unseen_attestation!r}")
            if not self.init:
                raise RecipeError("init_unseen_attestation is about an initial model, and the recipe has no init")
        if self.augment_multiplicity > 1 and not self.private:
            raise RecipeError("augment_multiplicity averages views before DP clipping; a non-private run gets the "
                              "same from more epochs")
        if self.augment_multiplicity > 1 and not self.augment.enabled:
            raise RecipeError("augment_multiplicity needs augmentation on: its views would all be the same crop")
        if self.private and any(s.weight != 1.0 for s in sources):
            # A weight changes how often a person is sampled; the accountant assumes one rate for everyone.
            raise RecipeError("source weights are for non-private runs: DP sampling takes every person at the "
                              "same rate, which the accountant is told")
        if self.cache_frozen and self.augment.enabled and self.augment_multiplicity == 1:
            raise RecipeError("cache_frozen needs augmentation off (features are computed once per person): "
                              "set augment flip, scale and rotation to 0, or cache fixed views with "
                              "augment_multiplicity > 1")

    @property
    def private(self) -> bool:
        return self.method != "non-private"

    @property
    def train_sources(self) -> tuple[Source, ...]:
        return parse_sources(self.train_data)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "Recipe":
        return _from_dict(cls, data, "recipe")


_SEED_MAX = 2 ** 63 - 1  # seeds travel as int64 (the secret seed in training_state.pt)
# Integer fields and their smallest value; real fields and their range. Fields in _OPTIONAL may be None.
_INTEGERS = {"epochs": 1, "batch_size": 1, "warmup_steps": 0, "seed": 0, "num_workers": 0,
             "physical_batch_size": 1, "public_size": 1, "projection_dim": 1,
             "checkpoint_every": 1, "refresh_every": 1, "noise_seed": 0, "augment_multiplicity": 1}
_REALS = {"lr": "> 0", "clipping_norm": "> 0", "weight_decay": ">= 0", "epsilon": "> 0",
          "noise_multiplier": "> 0", "delta": "in (0, 1)", "ema_decay": "in (0, 1)"}
_OPTIONAL = ("checkpoint_every", "refresh_every", "noise_seed", "epsilon", "noise_multiplier", "ema_decay")


def _in_range(value: float, allowed: str) -> bool:
    return {"> 0": value > 0, ">= 0": value >= 0, "in (0, 1)": 0 < value < 1}[allowed]


def _check_numbers(recipe: Recipe) -> None:
    """Every numeric field a finite number of the right kind and range.

    Checked when the recipe is read, so a bad value (``--clip inf``,
    ``--noise-multiplier nan``) stops a run before calibration, before its
    folder exists and before a step is journaled, instead of training to NaN.
    """
    for key, low in _INTEGERS.items():
        value = getattr(recipe, key)
        if value is None and key in _OPTIONAL:
            continue
        high = _SEED_MAX if key in ("seed", "noise_seed") else math.inf
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            within = f"at most {high}, " if high < math.inf else ""
            raise RecipeError(f"{key} must be at least {low} ({within}an integer); got {value!r}")
    for key, allowed in _REALS.items():
        value = getattr(recipe, key)
        if value is None and key in _OPTIONAL:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (number and math.isfinite(value) and _in_range(value, allowed)):
            raise RecipeError(f"{key} must be a finite number {allowed}; got {value!r}")
    if recipe.accountant not in ACCOUNTANTS:
        raise RecipeError(f"accountant must be one of {ACCOUNTANTS}; got {recipe.accountant!r}")
    if not isinstance(recipe.cache_frozen, bool):
        raise RecipeError(f"cache_frozen must be true or false; got {recipe.cache_frozen!r}")


def _from_dict(cls, data, where: str):
    if not isinstance(data, dict):
        raise RecipeError(f"{where} must be a mapping; got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RecipeError(f"unknown {where} key(s) {unknown}; known: {sorted(known)}")
    try:
        return cls(**data)
    except TypeError as e:
        raise RecipeError(f"bad {where}: {e}") from None


CLEAR = object()  # an override that removes the recipe's key (back to its default)


def load_recipe(path: str | Path, **overrides) -> Recipe:
    """Read a YAML recipe; ``overrides`` that are not None replace its keys (``CLEAR`` drops one).

    A recipe may name a ``base:`` recipe file (relative to itself) whose keys it inherits and
    overrides, so recipes that differ in a key or two share the rest in one place. The
    checkpoint stores the merged recipe, so a resume never reads the base again.
    """
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe not found: {path}")
    data = _read_with_bases(path, seen=())
    data.setdefault("name", path.stem)
    for key, value in overrides.items():
        if value is CLEAR:
            data.pop(key, None)
        elif value is not None:
            data[key] = value
    return Recipe.from_dict(data)


def _read_with_bases(path: Path, seen: tuple[Path, ...]) -> dict:
    """The recipe file's mapping over its ``base:`` chain; a base's ``name`` is never inherited."""
    data = read_yaml_mapping(path, "recipe")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise RecipeError(f"recipe {path}: base must be a recipe file name; got {base!r}")
    base_path = (path.parent / base).resolve()
    if base_path in seen or base_path == path.resolve():
        raise RecipeError(f"recipe {path}: base {base} leads back to itself")
    if not base_path.is_file():
        raise RecipeError(f"recipe {path}: base recipe not found: {base_path}")
    inherited = _read_with_bases(base_path, (*seen, path.resolve()))
    inherited.pop("name", None)
    return _merge(inherited, data)


def _merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``; nested mappings (augment, model) merge key by key."""
    merged = dict(base)
    for key, value in over.items():
        both_maps = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merge(merged[key], value) if both_maps else value
    return merged
