"""The training loop: non-private, DP-SGD or PDP-SGD, step by step, resumable.

Kept small on purpose (nanoGPT): one function owns the loop. The run is a
sequence of global steps; which people a step uses is a pure function of
(seed, step), so a run resumed from any checkpoint continues exactly.

DP runs follow DESIGN.md's privacy rules: Poisson sampling with the rate the
accountant is told; per-sample clipping; Gaussian noise once per step; the
projection (PDP-SGD) as post-processing with a public set checked disjoint;
and a journal line per step written *before* the step's update, so a run
killed at any point, then resumed, still counts every step it took.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import logging
import math
import secrets
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch
from torch.utils.data import DataLoader, default_collate
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
from .distributed import broadcast_float, broadcast_int, init_from_env
from .dp_step import DPStep, PublicSubspace, poisson_sample, stream_seed
from .ema import WeightEMA
from .evaluate import evaluate
from .ledger import LedgerJournal, check_record
from .losses import simcc_loss
from .model import TinyViTSimCC

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


def _load_public(recipe: Recipe, private: PoseDataset) -> PoseDataset:
    public = load_dataset(recipe.public_data)
    if len(public) < recipe.public_size:
        raise PrivacyError(f"public data {recipe.public_data} has {len(public)} people; public_size asks for "
                           f"{recipe.public_size}")
    public.records = public.records[:recipe.public_size]
    overlap = public.image_ids() & private.image_ids()
    if overlap:
        raise PrivacyError(f"public data {recipe.public_data} shares {len(overlap)} image(s) with the private "
                           f"training data (e.g. {sorted(overlap)[0]}); the public set must be disjoint")
    # By content too: a renamed or re-encoded copy of a private photo has another id but the same pixels.
    public_images = image_fingerprints(public)
    private_images = image_fingerprints(private)
    shared = sorted(public_images.keys() & private_images.keys())
    if shared:
        example_public, example_private = public_images[shared[0]].image, private_images[shared[0]].image
        raise PrivacyError(f"public data {recipe.public_data} shares {len(shared)} image(s) with the private training "
                           f"data by content (e.g. public {example_public} = private {example_private}); "
                           "the public set must be disjoint")
    return public


def _noise_multiplier(recipe: Recipe, schedule: Schedule) -> float:
    accounting.check_delta(recipe.delta, schedule.num_people)
    if recipe.noise_multiplier is not None:
        return float(recipe.noise_multiplier)
    sigma = accounting.noise_for(epsilon=recipe.epsilon, delta=recipe.delta, sample_rate=schedule.sample_rate,
                                 steps=schedule.total_steps, accountant=recipe.accountant)
    log.info("calibrated noise multiplier %.6g for epsilon %s at delta %g over %d steps (q=%.6g, %s accountant)",
             sigma, recipe.epsilon, recipe.delta, schedule.total_steps, schedule.sample_rate, recipe.accountant)
    return sigma


def _privacy_record(recipe: Recipe, schedule: Schedule, sigma: float, journal: LedgerJournal) -> dict:
    ledger = journal.ledger()
    return {"noise_multiplier": sigma, "sample_rate": schedule.sample_rate, "planned_steps": schedule.total_steps,
            "target_epsilon": recipe.epsilon, "delta": recipe.delta, "accountant": recipe.accountant,
            "clipping_norm": recipe.clipping_norm, "epsilon": ledger.epsilon(recipe.delta),
            "ledger_steps": ledger.steps, "ledger": ledger.state_dict(), "journal": journal.mark()}


def _card(recipe: Recipe, progress: dict, metrics: dict, privacy: dict | None, public: PoseDataset | None):
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
    pckh = metrics.get("val_pckh")
    warning = ("**Not private:** this run used a fixed `noise_seed` (tests only); its sampling and noise can be "
               "recomputed from the recipe." if recipe.private and recipe.noise_seed is not None else "")
    return lambda digest: render_card(
        name=recipe.name, privacy=block, weights_sha256=digest, train_data=recipe.train_data,
        pckh=pckh, eval_data=recipe.val_data, base_model=recipe.init, description=warning)


EXECUTION_KEYS = ("device", "precision", "num_workers")  # how a run executes, not what it computes


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
    unknown = sorted(set(execution or {}) - set(EXECUTION_KEYS))
    if unknown:
        raise RecipeError(f"only {EXECUTION_KEYS} can change on resume; got {unknown}")
    if resume:
        recipe = Recipe.from_dict({**read_config(out_dir)["recipe"], **(execution or {})})
    elif (out_dir / "config.json").exists():
        raise CheckpointError(f"{out_dir} already holds a checkpoint; pass --resume to continue it or pick another --out")
    if world.size > 1 and not recipe.private:
        raise RecipeError("multi-process training is for DP runs (method dp-sgd or pdp-sgd)")
    device, precision = select(recipe.device, recipe.precision, private=recipe.private)  # before any data or step
    torch.manual_seed(recipe.seed)

    codec = SimCCCodec(recipe.model.input_size, recipe.model.split_ratio)
    private = load_mixture(recipe.train_sources)
    train_set = SimCCDataset(private, codec, augment=recipe.augment, seed=recipe.seed, views=recipe.augment_multiplicity)
    val_set = load_dataset(recipe.val_data) if recipe.val_data and world.is_main else None
    schedule = Schedule.of(recipe, private)
    public = _load_public(recipe, private) if recipe.method == "pdp-sgd" else None

    if resume:
        model, config = load_model(out_dir)
        progress, metrics = config["progress"], {"history": [], **config["metrics"]}
        if recipe.private:  # every rank, before any step: a journal that does not back the ledger ends the run
            check_record(out_dir / JOURNAL, config["privacy"], progress_step=progress["step"])
        state = load_training_state(out_dir)
    else:
        model = TinyViTSimCC(recipe.model)
        if recipe.init:  # weights checked against the sha256 the init checkpoint's config.json records
            load_weights(model, verified_weights(recipe.init))
        progress, metrics, config, state = {"epoch": 0, "step": 0, "samples": 0}, {"history": []}, {}, None
    model.set_strategy(recipe.strategy)
    model.to(device)
    if precision.dtype is not None:
        # Mixed precision takes the explicit attention path: per-sample gradients through the fused kernel fail
        # under vmap (its float32 bias mask meets bf16 queries), and on CPU it also trains faster (benchmarks.md).
        model.set_fused_attention(False)
    prefix_units = 0
    if recipe.cache_frozen:
        prefix_units = model.frozen_prefix()
        if not prefix_units:
            raise RecipeError(f"strategy {recipe.strategy} freezes nothing at the input end: nothing to cache")
        train_set = CachedPrefixDataset(SimCCDataset(private, codec, seed=recipe.seed), model, prefix_units)
        log.info("cached %d frozen prefix unit(s) for %d people", prefix_units, len(train_set))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=recipe.lr,
                                  weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(min(recipe.warmup_steps, schedule.total_steps), schedule.total_steps))

    sigma = secret = journal = dp_step = None
    if recipe.private:
        if resume:
            sigma = config["privacy"]["noise_multiplier"]
        else:  # calibrated on rank 0 alone: the accountant's float maths can differ with thread counts
            sigma = _noise_multiplier(recipe, schedule) if world.is_main else 0.0
        sigma = broadcast_float(sigma, world)
        if state is not None:
            secret = int(state["secret_seed"])
        else:
            secret = recipe.noise_seed if recipe.noise_seed is not None else secrets.randbits(62)
        if recipe.noise_seed is not None and world.is_main:
            log.warning("noise_seed is fixed: anyone who reads this recipe can recompute the sampling and the "
                        "noise, so this run is not private; use it for tests only")
        secret = broadcast_int(secret, world)
        if world.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            journal = LedgerJournal(out_dir / JOURNAL, accountant=recipe.accountant, delta=recipe.delta)
        subspace = None
        if public is not None:
            subspace = PublicSubspace(SimCCDataset(public, codec), recipe.projection_dim,
                                      refresh_every=recipe.refresh_every, epoch_starts={0, *schedule.epoch_ends},
                                      physical_batch_size=recipe.physical_batch_size, precision=precision,
                                      device=device)
        dp_step = DPStep(model, optimizer, noise_multiplier=sigma, clipping_norm=recipe.clipping_norm,
                         sample_rate=schedule.sample_rate,
                         expected_batch_size=schedule.sample_rate * schedule.num_people,
                         physical_batch_size=recipe.physical_batch_size, secret=secret, journal=journal,
                         world=world, subspace=subspace, prefix_units=prefix_units, precision=precision)
    ema = WeightEMA(model, recipe.ema_decay) if recipe.ema_decay else None
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None:  # model.safetensors holds the average; the trained weights are in the state
            ema.load_state_dict(state["ema"])
            _load_trained(model, state["trained_weights"])

    end_step = schedule.total_steps
    if stop_after_epochs is not None:
        end_step = schedule.epoch_ends[min(recipe.epochs, progress["epoch"] + stop_after_epochs) - 1]
    start_step = progress["step"]

    def keys(step: int) -> list[tuple[int, int]]:
        epoch = schedule.epoch_of(step)
        return [(epoch, i) for i in step_indices(recipe, schedule, step, secret)[world.rank::world.size]]

    loader = DataLoader(train_set, batch_sampler=[keys(s) for s in range(start_step, end_step)],
                        num_workers=recipe.num_workers, collate_fn=_collate, worker_init_fn=worker_init,
                        pin_memory=device.type == "cuda")
    scaler = torch.amp.GradScaler(device.type) if precision.name == "fp16" else None
    bar = tqdm(total=end_step - start_step, desc=recipe.name, unit="step", disable=not (progress_bar and world.is_main))
    started, run_seen, seen, loss_sum, loss_count = time.perf_counter(), 0, 0, 0.0, 0
    log.info("training %s (%s, %s): %d people, %d steps in %d epochs", recipe.name, recipe.method,
             recipe.strategy, schedule.num_people, schedule.total_steps, recipe.epochs)
    for step, batch in zip(range(start_step, end_step), loader):
        batch = to_device(batch, device)
        epoch = schedule.epoch_of(step)
        model.train()
        n = 0 if batch is None else len(batch["index"])
        if dp_step is not None:
            dp_step(batch, step)
        else:
            loss = _gradient_step(model, batch, optimizer, prefix_units, precision, scaler)
            loss_sum, loss_count = loss_sum + loss * n, loss_count + n
        scheduler.step()
        if ema is not None:
            ema.update(model)
        seen, run_seen = seen + n, run_seen + n
        bar.update(1)
        # Loss is shown for non-private runs only: a private run's loss is itself a statistic of private data.
        shown = {"loss": f"{loss:.4f}"} if dp_step is None else {}
        bar.set_postfix(epoch=f"{epoch + 1}/{recipe.epochs}", **shown,
                        samples_s=f"{run_seen / (time.perf_counter() - started):.1f}")
        done = step + 1
        at_epoch_end = done in schedule.epoch_ends
        periodic = recipe.checkpoint_every is not None and done % recipe.checkpoint_every == 0
        if world.is_main and (at_epoch_end or periodic or done == end_step):
            progress = {"epoch": schedule.epoch_of(step + 1), "step": done, "samples": progress["samples"] + seen}
            seen = 0
            if at_epoch_end:
                entry = {"epoch": progress["epoch"]}
                if loss_count:
                    entry["loss"] = loss_sum / loss_count
                    loss_sum, loss_count = 0.0, 0
                if val_set is not None:
                    with ema.applied(model) if ema is not None else contextlib.nullcontext():
                        metrics["val_pckh"] = evaluate(model, val_set)
                    entry["val_pckh_mean"] = metrics["val_pckh"]["Mean"]
                    entry["val_limbs"] = metrics["val_pckh"]["Limbs"]
                metrics["history"].append(entry)
                log.info("epoch %d: %s", progress["epoch"], entry)
            _save(out_dir, model, recipe, schedule, progress, metrics, optimizer, scheduler, sigma, secret,
                  journal, public, ema=ema)
    bar.close()
    return out_dir


def _load_trained(model: TinyViTSimCC, weights: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)


def _save(out_dir, model, recipe, schedule, progress, metrics, optimizer, scheduler, sigma, secret, journal,
          public, *, ema: WeightEMA | None = None) -> None:
    privacy = None
    if journal is not None:
        privacy = _privacy_record(recipe, schedule, sigma, journal)
        log.info("privacy spent after step %d: epsilon %.6g (delta %g, %d noisy steps)", progress["step"],
                 privacy["epsilon"], recipe.delta, privacy["ledger_steps"])
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    if secret is not None:
        state["secret_seed"] = torch.tensor(secret, dtype=torch.int64)  # never in config.json or the card
    with ema.applied(model) if ema is not None else contextlib.nullcontext() as trained:
        if ema is not None:  # the release is the average; resuming needs the trained weights too
            state.update(ema=ema.state_dict(), trained_weights=trained)
        save_checkpoint(out_dir, model, recipe=recipe.to_dict(), progress=progress, metrics=metrics,
                        privacy=privacy, training_state=state, card=_card(recipe, progress, metrics, privacy, public),
                        keep=(JOURNAL,))
