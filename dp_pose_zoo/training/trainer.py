"""The training loop: non-private, DP-SGD or PDP-SGD, step by step, resumable.

``train`` reads as the run's story: prepare (or resume) the run, run its
steps, evaluate and save at epoch ends. The run is a sequence of global steps;
which people a step uses is a pure function of (seed, step), so a run resumed
from any checkpoint continues exactly.

DP runs follow DESIGN.md's privacy rules: Poisson sampling with the rate the
accountant is told; per-sample clipping; Gaussian noise once per step; the
projection (PDP-SGD) as post-processing with a public set checked disjoint;
an initial model checked never to have seen the private people (provenance.py);
and a journal line per step written *before* the step's update, so a run
killed at any point, then resumed, still counts every step it took. The step
itself is ``dp_step.DPStep``.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import logging
import math
import secrets
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, default_collate
from tqdm import tqdm

from ..card import PrivacyBlock, render_card
from ..checkpoint_config import JOURNAL
from ..codec import SimCCCodec
from ..datasets import PoseDataset, load_dataset
from ..datasets.mixture import epoch_size, load_mixture, repeats
from ..datasets.base import image_fingerprints
from ..errors import CheckpointError, PrivacyError, RecipeError
from . import accounting
from .checkpoint import (load_model, load_training_state, load_weights, read_config, save_checkpoint,
                         verified_weights)
from .config import Recipe
from .data import CachedPrefixDataset, SimCCDataset, worker_init
from .device import FP32, Precision, select, to_device
from .distributed import World, broadcast_float, broadcast_int, init_from_env
from .dp_step import DPStep, PublicSubspace, poisson_sample, stream_seed
from .ema import WeightEMA
from .evaluate import evaluate
from .ledger import LedgerJournal, check_record
from .losses import simcc_loss
from .model import TinyViTSimCC
from .provenance import (attestation_note, base_model_data, check_disjoint, check_init_unseen, init_folder,
                         init_record)

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Schedule:
    """How many steps a run takes, where its epochs end, and (DP) the Poisson rate q.

    A DP epoch is 1/q expected steps; epoch e ends at step ceil(e / q), the
    same count ``dp-pose privacy --epochs`` plans with (``accounting.steps_for``).
    A non-private epoch visits every person once, or, for a weighted mixture,
    each source's people ``weight`` times (``parts``: ``(count, weight)`` per
    source, in record order).
    """

    num_people: int
    epoch_ends: tuple[int, ...]
    sample_rate: float | None = None
    parts: tuple[tuple[int, float], ...] = ()

    @classmethod
    def of(cls, recipe: Recipe, data: PoseDataset | int) -> "Schedule":
        num_people = data if isinstance(data, int) else len(data)
        if num_people < 1:
            raise RecipeError(f"training data {recipe.train_data} holds no people")
        epochs = range(1, recipe.epochs + 1)
        if recipe.private:
            q = Fraction(min(recipe.batch_size, num_people), num_people)
            return cls(num_people, tuple(accounting.steps_for(epochs=e, sample_rate=q) for e in epochs), float(q))
        parts = () if isinstance(data, int) else tuple((count, weight) for _, count, weight in data.parts)
        size = num_people if isinstance(data, int) else epoch_size(data)
        if size < 1:
            raise RecipeError(f"training data {recipe.train_data}: its weights give an epoch of no people")
        per_epoch = math.ceil(size / recipe.batch_size)
        return cls(num_people, tuple(e * per_epoch for e in epochs), parts=parts)

    @property
    def total_steps(self) -> int:
        return self.epoch_ends[-1]

    def epoch_of(self, step: int) -> int:
        """The (0-based) epoch that step ``step`` (0-based) belongs to."""
        return bisect.bisect_right(self.epoch_ends, step)

    def epoch_start(self, epoch: int) -> int:
        return self.epoch_ends[epoch - 1] if epoch > 0 else 0


@functools.lru_cache(maxsize=2)
def epoch_order(schedule: Schedule, seed: int, epoch: int) -> torch.Tensor:
    """A non-private epoch's people in order: every person once (or, in a weighted mixture, each source
    ``floor(weight)`` times plus a random ``frac(weight)`` share of it), shuffled by ``(seed, epoch)``."""
    gen = torch.Generator().manual_seed(stream_seed(seed, epoch))
    pool, start = [], 0
    for count, weight in schedule.parts or ((schedule.num_people, 1.0),):
        people = torch.arange(start, start + count)
        whole, extra = repeats(count, weight)
        pool += [people] * whole
        if extra:
            pool.append(people[torch.randperm(count, generator=gen)[:extra]])
        start += count
    pool = torch.cat(pool)
    return pool[torch.randperm(len(pool), generator=gen)]


def step_indices(recipe: Recipe, schedule: Schedule, step: int, secret: int | None) -> list[int]:
    """The people step ``step`` trains on.

    Non-private: the epoch's shuffled order (``epoch_order``), cut into batches.
    DP: each person independently with probability q, from the run's secret
    seed (``dp_step.poisson_sample``).
    """
    if schedule.sample_rate is not None:
        return poisson_sample(schedule.num_people, schedule.sample_rate, secret, step)
    epoch = schedule.epoch_of(step)
    within = step - schedule.epoch_start(epoch)
    order = epoch_order(schedule, recipe.seed, epoch)
    return order[within * recipe.batch_size:(within + 1) * recipe.batch_size].tolist()


def _collate(samples: list[dict]) -> dict | None:
    return default_collate(samples) if samples else None  # Poisson sampling can draw nobody


def _lr_lambda(warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return factor


def _gradient_step(model: TinyViTSimCC, batch: dict, optimizer: torch.optim.Optimizer, prefix_units: int = 0,
                   precision: Precision = FP32, scaler: torch.amp.GradScaler | None = None) -> float:
    """One non-private step (the forward pass under ``precision``'s autocast, the loss in fp32); the mean loss."""
    with precision.autocast():
        simcc_x, simcc_y = model(batch["image"], prefix_units)
    loss = simcc_loss(simcc_x.float(), simcc_y.float(), batch["target_x"], batch["target_y"], batch["weight"]).mean()
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:  # fp16: scale the loss so small gradients survive float16
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return float(loss.detach())


EXECUTION_KEYS = ("device", "precision", "num_workers")  # how a run executes, not what it computes


@dataclass
class _Run:
    """A run's state: what its steps update and its checkpoints write (``_prepare_run`` builds it)."""

    out_dir: Path
    recipe: Recipe
    schedule: Schedule
    world: World
    device: torch.device
    precision: Precision
    model: TinyViTSimCC
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    train_set: Dataset
    val_set: PoseDataset | None  # rank 0 validates
    public: PoseDataset | None  # PDP-SGD's public set, found disjoint from the private one
    prefix_units: int = 0  # frozen prefix units whose features the train set caches
    progress: dict = field(default_factory=lambda: {"epoch": 0, "step": 0, "samples": 0})
    metrics: dict = field(default_factory=lambda: {"history": []})
    dp_step: DPStep | None = None  # DP runs only
    ema: WeightEMA | None = None
    init: dict | None = None  # the initial model: path, weights_sha256, train_data (config.json's provenance)

    @property
    def secret(self) -> int | None:
        """The DP run's secret seed of sampling and noise (None for a non-private run)."""
        return self.dp_step.secret if self.dp_step is not None else None


def train(recipe: Recipe | None, out_dir: str | Path, *, resume: bool = False, progress_bar: bool = True,
          stop_after_epochs: int | None = None, execution: dict | None = None) -> Path:
    """Train ``recipe`` into the checkpoint directory ``out_dir``; continue it with ``resume``.

    ``stop_after_epochs`` ends this run early (after that many epochs, with a
    checkpoint) without changing the recipe's schedule: ``resume`` picks it up.
    ``execution`` overrides a resumed recipe's ``EXECUTION_KEYS`` (a run moved
    to a machine without bf16 or a GPU). Under torchrun every rank calls this;
    rank 0 alone writes.
    """
    out_dir = Path(out_dir)
    world = init_from_env()
    recipe = _recipe_to_run(recipe, out_dir, resume=resume, execution=execution, world=world)
    device, precision = select(recipe.device, recipe.precision, private=recipe.private)  # before any data or step
    torch.manual_seed(recipe.seed)
    run = _prepare_run(recipe, out_dir, world, device, precision, resume=resume)
    end_step = run.schedule.total_steps
    if stop_after_epochs is not None:
        end_step = run.schedule.epoch_ends[min(recipe.epochs, run.progress["epoch"] + stop_after_epochs) - 1]
    _run_steps(run, end_step, progress_bar=progress_bar)
    return out_dir


def _recipe_to_run(recipe: Recipe | None, out_dir: Path, *, resume: bool, execution: dict | None,
                   world: World) -> Recipe:
    """``recipe``, or on ``resume`` the checkpoint's own with ``execution``'s overrides."""
    unknown = sorted(set(execution or {}) - set(EXECUTION_KEYS))
    if unknown:
        raise RecipeError(f"only {EXECUTION_KEYS} can change on resume; got {unknown}")
    if resume:
        recipe = Recipe.from_dict({**read_config(out_dir)["recipe"], **(execution or {})})
    elif (out_dir / "config.json").exists():
        raise CheckpointError(f"{out_dir} already holds a checkpoint; pass --resume to continue it or pick another --out")
    if world.size > 1 and not recipe.private:
        raise RecipeError("multi-process training is for DP runs (method dp-sgd or pdp-sgd)")
    return recipe


def _prepare_run(recipe: Recipe, out_dir: Path, world: World, device: torch.device, precision: Precision, *,
                 resume: bool) -> _Run:
    """Data, model, optimizer and (DP) privacy of a new run, or of a resumed one as its checkpoint left it."""
    codec = SimCCCodec(recipe.model.input_size, recipe.model.split_ratio)
    private = load_mixture(recipe.train_sources)
    train_set = SimCCDataset(private, codec, augment=recipe.augment, seed=recipe.seed, views=recipe.augment_multiplicity)
    val_set = load_dataset(recipe.val_data) if recipe.val_data and world.is_main else None
    schedule = Schedule.of(recipe, private)
    # Read once from the initial model (a resumed run keeps its own record: the folder may be gone by then).
    init_dir = init_folder(recipe.init) if recipe.init and not resume else None
    model, config, state = _resume_state(recipe, out_dir) if resume else (_new_model(recipe, init_dir), None, None)
    init = config.get("init") if config is not None else init_record(recipe, init_dir)
    public, init = _check_sources(recipe, private, init, new=not resume)
    prefix_units = _place_model(model, recipe, device, precision)
    if prefix_units:  # the frozen prefix's features, computed once, stand in for the images
        # With augment_multiplicity K: the plain crop and K - 1 augmentations of each person, drawn once.
        augmented = (SimCCDataset(private, codec, augment=recipe.augment, seed=recipe.seed,
                                  views=recipe.augment_multiplicity - 1) if recipe.augment_multiplicity > 1 else None)
        train_set = CachedPrefixDataset(SimCCDataset(private, codec, seed=recipe.seed), model, prefix_units,
                                        augmented=augmented)
        log.info("cached %d frozen prefix unit(s) for %d people, %d view(s) each", prefix_units, len(train_set),
                 recipe.augment_multiplicity)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=recipe.lr,
                                  weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(min(recipe.warmup_steps, schedule.total_steps), schedule.total_steps))
    run = _Run(out_dir, recipe, schedule, world, device, precision, model, optimizer, scheduler, train_set, val_set,
               public, prefix_units, init=init)
    if config is not None:
        run.progress, run.metrics = config["progress"], {"history": [], **config["metrics"]}
    if recipe.private:
        run.dp_step = _privacy_setup(run, codec, config, state)
    run.ema = WeightEMA(model, recipe.ema_decay) if recipe.ema_decay else None
    if state is not None:
        _restore_training_state(run, state)
    return run


def _resume_state(recipe: Recipe, out_dir: Path) -> tuple[TinyViTSimCC, dict, dict]:
    """The checkpoint's model, config.json and training state."""
    model, config = load_model(out_dir)
    if recipe.private:  # every rank, before any step: a journal that does not back the ledger ends the run
        check_record(out_dir / JOURNAL, config["privacy"], progress_step=config["progress"]["step"])
    return model, config, load_training_state(out_dir)


def _new_model(recipe: Recipe, init_dir: Path | None) -> TinyViTSimCC:
    model = TinyViTSimCC(recipe.model)
    if init_dir is not None:  # weights checked against the sha256 the init checkpoint's config.json records
        load_weights(model, verified_weights(init_dir))
    return model


def _place_model(model: TinyViTSimCC, recipe: Recipe, device: torch.device, precision: Precision) -> int:
    """Freeze the recipe's strategy, move the model to ``device``; the frozen prefix units to cache (0: none)."""
    model.set_strategy(recipe.strategy)
    model.to(device)
    if precision.dtype is not None:
        # Mixed precision takes the explicit attention path: per-sample gradients through the fused kernel fail
        # under vmap (its float32 bias mask meets bf16 queries), and on CPU it also trains faster (benchmarks.md).
        model.set_fused_attention(False)
    if not recipe.cache_frozen:
        return 0
    prefix_units = model.frozen_prefix()
    if not prefix_units:
        raise RecipeError(f"strategy {recipe.strategy} freezes nothing at the input end: nothing to cache")
    return prefix_units


def _check_sources(recipe: Recipe, private: PoseDataset, init: dict | None,
                   new: bool) -> tuple[PoseDataset | None, dict | None]:
    """PDP-SGD's public set, found disjoint from the private people; a new DP run's initial model (``init``), found
    never to have seen them (provenance.check_init_unseen), its record noting any data taken on the recipe's
    attestation. The private pictures are fingerprinted once for both."""
    check_init = recipe.private and new and init is not None
    if recipe.method != "pdp-sgd" and not check_init:
        return None, init
    private_images = image_fingerprints(private)
    if check_init:
        init = check_init_unseen(init, private, private_images, recipe.init_unseen_attestation)
    public = _load_public(recipe, private, private_images) if recipe.method == "pdp-sgd" else None
    return public, init


def _load_public(recipe: Recipe, private: PoseDataset, private_images: dict) -> PoseDataset:
    public = load_dataset(recipe.public_data)
    if len(public) < recipe.public_size:
        raise PrivacyError(f"public data {recipe.public_data} has {len(public)} people; public_size asks for "
                           f"{recipe.public_size}")
    public.records = public.records[:recipe.public_size]
    check_disjoint(public, private, private_images, f"public data {recipe.public_data}",
                   "the public set must be disjoint")
    return public


def _privacy_setup(run: _Run, codec: SimCCCodec, config: dict | None, state: dict | None) -> DPStep:
    """The run's DP step: sigma and the secret seed (a resumed run keeps its own), rank 0's journal, and
    PDP-SGD's public subspace."""
    recipe, schedule, world = run.recipe, run.schedule, run.world
    if config is not None:
        sigma = config["privacy"]["noise_multiplier"]
    else:  # calibrated on rank 0 alone: the accountant's float maths can differ with thread counts
        sigma = _noise_multiplier(recipe, schedule) if world.is_main else 0.0
    sigma = broadcast_float(sigma, world)
    secret = broadcast_int(_secret_seed(recipe, world, state), world)
    journal = None
    if world.is_main:
        run.out_dir.mkdir(parents=True, exist_ok=True)
        journal = LedgerJournal(run.out_dir / JOURNAL, accountant=recipe.accountant, delta=recipe.delta)
    subspace = None
    if run.public is not None:
        subspace = PublicSubspace(SimCCDataset(run.public, codec), recipe.projection_dim,
                                  refresh_every=recipe.refresh_every, epoch_starts={0, *schedule.epoch_ends},
                                  physical_batch_size=recipe.physical_batch_size, precision=run.precision,
                                  device=run.device)
    return DPStep(run.model, run.optimizer, noise_multiplier=sigma, clipping_norm=recipe.clipping_norm,
                  sample_rate=schedule.sample_rate, expected_batch_size=schedule.sample_rate * schedule.num_people,
                  physical_batch_size=recipe.physical_batch_size, secret=secret, journal=journal, world=world,
                  subspace=subspace, prefix_units=run.prefix_units, precision=run.precision)


def _noise_multiplier(recipe: Recipe, schedule: Schedule) -> float:
    accounting.check_delta(recipe.delta, schedule.num_people)
    if recipe.noise_multiplier is not None:
        return float(recipe.noise_multiplier)
    sigma = accounting.noise_for(epsilon=recipe.epsilon, delta=recipe.delta, sample_rate=schedule.sample_rate,
                                 steps=schedule.total_steps, accountant=recipe.accountant)
    log.info("calibrated noise multiplier %.6g for epsilon %s at delta %g over %d steps (q=%.6g, %s accountant)",
             sigma, recipe.epsilon, recipe.delta, schedule.total_steps, schedule.sample_rate, recipe.accountant)
    return sigma


def _secret_seed(recipe: Recipe, world: World, state: dict | None) -> int:
    """The seed of the run's sampling and noise: drawn once, then kept in the training state (never published)."""
    if state is not None:
        secret = int(state["secret_seed"])
    else:
        secret = recipe.noise_seed if recipe.noise_seed is not None else secrets.randbits(62)
    if recipe.noise_seed is not None and world.is_main:
        log.warning("noise_seed is fixed: anyone who reads this recipe can recompute the sampling and the "
                    "noise, so this run is not private; use it for tests only")
    return secret


def _restore_training_state(run: _Run, state: dict) -> None:
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    if run.ema is not None:  # model.safetensors holds the average; the trained weights are in the state
        run.ema.load_state_dict(state["ema"])
        _load_trained(run.model, state["trained_weights"])


def _load_trained(model: TinyViTSimCC, weights: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)


def _loader(run: _Run, start_step: int, end_step: int) -> DataLoader:
    """The batches of steps ``start_step`` to ``end_step`` - 1: this rank's share of each step's people."""
    recipe, schedule, world = run.recipe, run.schedule, run.world

    def keys(step: int) -> list[tuple[int, int]]:
        epoch = schedule.epoch_of(step)
        return [(epoch, i) for i in step_indices(recipe, schedule, step, run.secret)[world.rank::world.size]]

    return DataLoader(run.train_set, batch_sampler=[keys(s) for s in range(start_step, end_step)],
                      num_workers=recipe.num_workers, collate_fn=_collate, worker_init_fn=worker_init,
                      pin_memory=run.device.type == "cuda")


def _run_steps(run: _Run, end_step: int, *, progress_bar: bool) -> None:
    """Train from the run's step to ``end_step``; rank 0 checkpoints at epoch ends, every ``checkpoint_every``
    steps and at ``end_step``, and evaluates at epoch ends."""
    recipe, schedule, model = run.recipe, run.schedule, run.model
    start_step = run.progress["step"]
    loader = _loader(run, start_step, end_step)
    scaler = torch.amp.GradScaler(run.device.type) if run.precision.name == "fp16" else None
    bar = tqdm(total=end_step - start_step, desc=recipe.name, unit="step",
               disable=not (progress_bar and run.world.is_main))
    started, run_seen, seen, loss_sum, loss_count = time.perf_counter(), 0, 0, 0.0, 0
    log.info("training %s (%s, %s): %d people, %d steps in %d epochs", recipe.name, recipe.method,
             recipe.strategy, schedule.num_people, schedule.total_steps, recipe.epochs)
    for step, batch in zip(range(start_step, end_step), loader):
        batch = to_device(batch, run.device)
        model.train()
        n = 0 if batch is None else len(batch["index"])
        if run.dp_step is not None:
            run.dp_step(batch, step)
        else:
            loss = _gradient_step(model, batch, run.optimizer, run.prefix_units, run.precision, scaler)
            loss_sum, loss_count = loss_sum + loss * n, loss_count + n
        run.scheduler.step()
        if run.ema is not None:
            run.ema.update(model)
        seen, run_seen = seen + n, run_seen + n
        bar.update(1)
        # Loss is shown for non-private runs only: a private run's loss is itself a statistic of private data.
        shown = {"loss": f"{loss:.4f}"} if run.dp_step is None else {}
        bar.set_postfix(epoch=f"{schedule.epoch_of(step) + 1}/{recipe.epochs}", **shown,
                        samples_s=f"{run_seen / (time.perf_counter() - started):.1f}")
        done = step + 1
        at_epoch_end = done in schedule.epoch_ends
        periodic = recipe.checkpoint_every is not None and done % recipe.checkpoint_every == 0
        if run.world.is_main and (at_epoch_end or periodic or done == end_step):
            run.progress = {"epoch": schedule.epoch_of(done), "step": done, "samples": run.progress["samples"] + seen}
            seen = 0
            if at_epoch_end:
                _evaluate(run, loss_sum / loss_count if loss_count else None)
                loss_sum, loss_count = 0.0, 0
            _save(run)
    bar.close()


def _released_weights(run: _Run):
    """Inside this context the model holds the weights a checkpoint releases: the EMA's average if the run
    keeps one (the context yields the trained weights), else its own."""
    return run.ema.applied(run.model) if run.ema is not None else contextlib.nullcontext()


def _evaluate(run: _Run, mean_loss: float | None) -> None:
    """The epoch that just ended in the history: its mean training loss (non-private) and validation PCKh."""
    entry = {"epoch": run.progress["epoch"]}
    if mean_loss is not None:
        entry["loss"] = mean_loss
    if run.val_set is not None:
        with _released_weights(run):
            run.metrics["val_pckh"] = evaluate(run.model, run.val_set)
        entry["val_pckh_mean"] = run.metrics["val_pckh"]["Mean"]
        entry["val_limbs"] = run.metrics["val_pckh"]["Limbs"]
    run.metrics["history"].append(entry)
    log.info("epoch %d: %s", run.progress["epoch"], entry)


def _save(run: _Run) -> None:
    """A checkpoint of the run as it stands: released weights, config.json and card, privacy spent, training state."""
    privacy = None
    if run.dp_step is not None and run.dp_step.journal is not None:
        privacy = _privacy_record(run)
        log.info("privacy spent after step %d: epsilon %.6g (delta %g, %d noisy steps)", run.progress["step"],
                 privacy["epsilon"], run.recipe.delta, privacy["ledger_steps"])
    state = {"optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict()}
    if run.secret is not None:
        state["secret_seed"] = torch.tensor(run.secret, dtype=torch.int64)  # never in config.json or the card
    with _released_weights(run) as trained:
        if run.ema is not None:  # the release is the average; resuming needs the trained weights too
            state.update(ema=run.ema.state_dict(), trained_weights=trained)
        save_checkpoint(run.out_dir, run.model, recipe=run.recipe.to_dict(), progress=run.progress,
                        metrics=run.metrics, privacy=privacy, training_state=state, card=_card(run, privacy),
                        keep=(JOURNAL,), init=run.init)


def _privacy_record(run: _Run) -> dict:
    recipe, schedule, dp_step = run.recipe, run.schedule, run.dp_step
    ledger = dp_step.journal.ledger()
    return {"noise_multiplier": dp_step.noise_multiplier, "sample_rate": schedule.sample_rate,
            "planned_steps": schedule.total_steps, "target_epsilon": recipe.epsilon, "delta": recipe.delta,
            "accountant": recipe.accountant, "clipping_norm": recipe.clipping_norm,
            "epsilon": ledger.epsilon(recipe.delta), "ledger_steps": ledger.steps, "ledger": ledger.state_dict(),
            "journal": dp_step.journal.mark()}


def _card(run: _Run, privacy: dict | None):
    recipe, progress, public = run.recipe, run.progress, run.public
    if privacy is None:
        block = PrivacyBlock(method=recipe.method, epsilon=math.inf, delta=None, clipping_norm=None,
                             strategy=recipe.strategy, epochs=progress["epoch"], steps=progress["step"])
    else:
        block = PrivacyBlock(
            method=recipe.method, epsilon=privacy["epsilon"], delta=recipe.delta, clipping_norm=recipe.clipping_norm,
            strategy=recipe.strategy, epochs=progress["epoch"], steps=privacy["ledger_steps"],
            sample_rate=privacy["sample_rate"], noise_multiplier=privacy["noise_multiplier"],
            accountant=recipe.accountant, projection_dim=recipe.projection_dim if public is not None else None,
            # ``public`` exists only once _load_public found it disjoint from the private data, by id and by pixels.
            public_data={"name": recipe.public_data, "size": len(public), "disjoint": True} if public else None)
    pckh = run.metrics.get("val_pckh")
    warning = ("**Not private:** this run used a fixed `noise_seed` (tests only); its sampling and noise can be "
               "recomputed from the recipe." if recipe.private and recipe.noise_seed is not None else "")
    description = "\n\n".join(note for note in (warning, attestation_note(run.init)) if note)
    return lambda digest: render_card(
        name=recipe.name, privacy=block, weights_sha256=digest, train_data=recipe.train_data,
        pckh=pckh, eval_data=recipe.val_data, base_model=recipe.init,
        base_model_data=base_model_data(run.init), description=description)
