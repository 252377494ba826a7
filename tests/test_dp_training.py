"""DP-SGD / PDP-SGD runs end to end: sampling, refusals, cards, resume after SIGKILL, 2-process DDP."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from dp_pose_zoo.card import card_from_text, parse_card
from dp_pose_zoo.errors import CheckpointError, PrivacyError
from dp_pose_zoo.training import accounting
from dp_pose_zoo.training.checkpoint import load_training_state
from dp_pose_zoo.training.config import Recipe
from dp_pose_zoo.training.trainer import JOURNAL, Schedule, step_indices, train

pytestmark = pytest.mark.slow


def dp_recipe(**overrides) -> dict:
    base = dict(name="dp", train_data="synthpose:private-train:60", val_data=None, strategy="finetune",
                method="dp-sgd", epsilon=2.0, delta=1e-5, clipping_norm=0.5, epochs=2, batch_size=10, lr=1e-3,
                warmup_steps=1, seed=0, physical_batch_size=8, public_size=12, projection_dim=4,
                model={"input_size": [64, 64]})
    base.update(overrides)
    return base


def journal_lines(run_dir) -> int:
    return sum(1 for line in (run_dir / JOURNAL).read_text().splitlines()[1:] if line.strip())


def test_poisson_sampling_is_independent_with_rate_q():
    recipe = Recipe.from_dict(dp_recipe(train_data="synthpose:private-train:500", batch_size=50))
    schedule = Schedule.of(recipe, 500)
    assert schedule.sample_rate == pytest.approx(0.1) and schedule.epoch_ends[0] == 10
    steps = [step_indices(recipe, schedule, s, secret=1234) for s in range(400)]
    sizes = np.array([len(s) for s in steps])
    # Binomial(500, 0.1): mean 50, sd 6.7; 400 steps -> the mean's sd is 0.34.
    assert abs(sizes.mean() - 50) < 4 * 6.7 / 20
    assert 5.0 < sizes.std() < 8.5  # the batch size varies, as Poisson sampling requires
    counts = np.bincount(np.concatenate(steps), minlength=500)
    # Each person in ~Binomial(400, 0.1) steps: mean 40, sd 6; no one is favoured.
    assert abs(counts.mean() - 40) < 1 and counts.min() > 40 - 5 * 6 and counts.max() < 40 + 5 * 6
    assert step_indices(recipe, schedule, 7, secret=1234) == steps[7]
    assert step_indices(recipe, schedule, 7, secret=4321) != steps[7]


def test_training_spends_exactly_the_steps_the_privacy_plan_counts(capsys):
    from dp_pose_zoo.cli import main

    recipe = Recipe.from_dict(dp_recipe(train_data="synthpose:private-train:1500", batch_size=64, epochs=3))
    schedule = Schedule.of(recipe, 1500)
    assert main(["privacy", "--noise-multiplier", "1", "--delta", "1e-5", "--dataset-size", "1500",
                 "--batch-size", "64", "--epochs", "3", "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)["steps"]
    # 3 / (64/1500) = 70.3 -> 71 steps; epochs end at ceil(e / q): 24, 47, 71.
    assert schedule.total_steps == planned == 71 and schedule.epoch_ends == (24, 47, 71)
    assert [schedule.epoch_of(s) for s in (0, 23, 24, 46, 47, 70)] == [0, 0, 1, 1, 2, 2]


def test_non_private_epochs_cover_everyone_once():
    recipe = Recipe.from_dict(dict(name="np", train_data="synthpose:private-train:50", batch_size=8))
    schedule = Schedule.of(recipe, 50)
    epoch = sum((step_indices(recipe, schedule, s, None) for s in range(schedule.epoch_ends[0])), [])
    assert sorted(epoch) == list(range(50))


def test_public_set_overlapping_the_private_one_is_refused(tmp_path):
    recipe = Recipe.from_dict(dp_recipe(method="pdp-sgd", public_data="synthpose:private-train:80"))
    with pytest.raises(PrivacyError, match="shares 12 image"):
        train(recipe, tmp_path / "r", progress_bar=False)
    assert not (tmp_path / "r").exists()


def test_delta_must_be_below_one_over_n(tmp_path):
    with pytest.raises(PrivacyError, match="60"):
        train(Recipe.from_dict(dp_recipe(delta=0.02)), tmp_path / "r", progress_bar=False)


@pytest.mark.parametrize("method", ["dp-sgd", "pdp-sgd"])
def test_dp_runs_write_cards_with_the_spent_budget(tmp_path, method):
    out = train(Recipe.from_dict(dp_recipe(method=method)), tmp_path / method, progress_bar=False)
    config = json.loads((out / "config.json").read_text())
    privacy = parse_card((out / "README.md").read_text()).data.to_dict()["privacy"]
    ledger = config["privacy"]["ledger"]
    steps = 2 * 6  # 2 epochs of 1/q = 60/10 steps
    assert privacy["steps"] == steps == journal_lines(out) == sum(e[2] for e in ledger["history"])
    sigma, q = privacy["noise_multiplier"], privacy["sample_rate"]
    assert q == pytest.approx(10 / 60)
    # The card's epsilon is the accountant's on the ledger: recomputed independently of the trainer.
    expected = accounting.epsilon_for(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=1e-5)
    assert privacy["epsilon"] == pytest.approx(expected, rel=1e-9)
    assert 0.95 * 2.0 <= privacy["epsilon"] <= 2.0  # calibrated to the target, never above it
    assert privacy["clipping_norm"] == 0.5 and privacy["delta"] == 1e-5 and privacy["method"] == method
    assert privacy["privacy_unit"] == "one annotated person instance"
    if method == "pdp-sgd":
        assert privacy["projection_dim"] == 4
        assert privacy["public_data"] == {"name": "synthpose:private-holdout", "size": 12, "disjoint": True}
    # The secret seed behind sampling and noise stays out of everything that gets published.
    secret = str(int(load_training_state(out)["secret_seed"]))
    assert secret not in (out / "config.json").read_text() and secret not in (out / "README.md").read_text()


def _write_recipe(path, **overrides):
    path.write_text(yaml.safe_dump(dp_recipe(**overrides)))
    return path


def test_resume_after_sigkill_keeps_every_step_on_the_ledger(tmp_path):
    recipe = _write_recipe(tmp_path / "r.yaml", epochs=6, checkpoint_every=2)
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "dp_pose_zoo", "train", "--recipe", str(recipe), "--out", str(out),
                             "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (out / "config.json").exists() and (out / JOURNAL).exists() and journal_lines(out) >= 7:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    spent_before = journal_lines(out)
    checkpointed = json.loads((out / "config.json").read_text())["progress"]["step"]
    assert checkpointed <= spent_before  # steps after the last checkpoint are on the journal all the same

    train(None, out, resume=True, progress_bar=False)
    config = json.loads((out / "config.json").read_text())
    total = 6 * 6
    assert config["progress"]["step"] == total
    redone = total - checkpointed
    steps = config["privacy"]["ledger_steps"]
    assert steps == journal_lines(out) == spent_before + redone >= total
    sigma, q = config["privacy"]["noise_multiplier"], config["privacy"]["sample_rate"]
    # The final epsilon is that of an uninterrupted run of the same number of steps.
    uninterrupted = accounting.epsilon_for(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=1e-5)
    assert config["privacy"]["epsilon"] == pytest.approx(uninterrupted, rel=1e-9)
    assert config["privacy"]["epsilon"] >= accounting.epsilon_for(noise_multiplier=sigma, sample_rate=q, steps=total,
                                                                  delta=1e-5)


def _rank_noisy_gradient(rank, world_size, init_file, out_dir):
    """One DP step's gradient on ``rank`` of a gloo group: this rank's share, all-reduced, noised."""
    import torch.distributed as dist

    from dp_pose_zoo.training.distributed import World, all_reduce_sum

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    noisy = _noisy_gradient(World(rank, world_size))
    torch.save(noisy, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def _noisy_gradient(world):
    from dp_pose_zoo.codec import SimCCCodec
    from dp_pose_zoo.datasets import load_dataset
    from dp_pose_zoo.training.data import SimCCDataset
    from dp_pose_zoo.training.distributed import all_reduce_sum
    from dp_pose_zoo.training.dp_step import add_noise, clip_and_sum
    from dp_pose_zoo.training.model import ModelConfig, TinyViTSimCC
    from torch.utils.data import default_collate

    torch.manual_seed(0)
    model = TinyViTSimCC(ModelConfig(input_size=(64, 64)))
    model.set_strategy("finetune")
    model.train()
    data = SimCCDataset(load_dataset("synthpose:private-train:7"), SimCCCodec((64, 64)))
    batch = default_collate([data[i] for i in range(7)[world.rank::world.size]])
    summed, _ = clip_and_sum(model, batch, clipping_norm=0.5, physical_batch_size=2)
    summed = all_reduce_sum(summed, world)
    return add_noise(summed, noise_multiplier=1.3, clipping_norm=0.5, expected_batch_size=7.0,
                     generator=torch.Generator().manual_seed(5))


def test_two_ranks_count_each_example_once_and_add_noise_once(tmp_path):
    from dp_pose_zoo.training.distributed import World

    torch.multiprocessing.spawn(_rank_noisy_gradient, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    single = _noisy_gradient(World())
    noise_scale = 1.3 * 0.5 / 7.0
    for name, value in single.items():
        assert torch.equal(ranks[0][name], ranks[1][name])  # every rank applies the same update
        # Agreement to float rounding: a second copy of the noise (or of an example) would be off by ~noise_scale.
        torch.testing.assert_close(ranks[0][name], value, rtol=0, atol=1e-5 * noise_scale, msg=name)


def test_torchrun_two_processes_train_like_one(tmp_path):
    overrides = dict(epochs=1, noise_seed=99, method="pdp-sgd")
    single = train(Recipe.from_dict(dp_recipe(**overrides)), tmp_path / "one", progress_bar=False)
    recipe = _write_recipe(tmp_path / "r.yaml", **overrides)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             "-m", "dp_pose_zoo.training", "--recipe", str(recipe), "--out", str(tmp_path / "two"),
                             "-q"], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    a, b = load_file(str(single / "model.safetensors")), load_file(str(tmp_path / "two" / "model.safetensors"))
    from dp_pose_zoo.training.model import TinyViTSimCC

    torch.manual_seed(0)
    init = TinyViTSimCC(Recipe.from_dict(dp_recipe(**overrides)).model).state_dict()
    moved = max((a[k] - init[k]).abs().max().item() for k in a)
    differ = max((a[k] - b[k]).abs().max().item() for k in a)
    # Six AdamW steps move weights by ~6 lr; float-order differences (amplified by Adam where a
    # gradient is near zero) stay a small fraction of that. Double noise or double-counted
    # examples would move them by a whole step.
    assert moved > 3e-3
    assert differ < 0.1 * moved, (differ, moved)
    one = json.loads((single / "config.json").read_text())["privacy"]
    two = json.loads((tmp_path / "two" / "config.json").read_text())["privacy"]
    # Same steps and rate; sigma calibrated in another process may differ in its last digit.
    assert [e[1:] for e in one["ledger"]["history"]] == [e[1:] for e in two["ledger"]["history"]]
    assert two["noise_multiplier"] == pytest.approx(one["noise_multiplier"], rel=1e-12)
    assert two["epsilon"] == pytest.approx(one["epsilon"], rel=1e-9)


@pytest.mark.parametrize("strategy", ["finetune", "head"])  # 3 of the backbone's 6 units cached; all 6
def test_cached_frozen_prefix_trains_like_the_full_forward(tmp_path, strategy):
    no_aug = {"flip": 0.0, "scale": 0.0, "rotation": 0.0}
    common = dict(epochs=1, noise_seed=5, augment=no_aug, strategy=strategy)
    plain = train(Recipe.from_dict(dp_recipe(**common)), tmp_path / "plain", progress_bar=False)
    cached = train(Recipe.from_dict(dp_recipe(cache_frozen=True, **common)), tmp_path / "cached", progress_bar=False)
    a, b = load_file(str(plain / "model.safetensors")), load_file(str(cached / "model.safetensors"))
    moved = max((a[k] - b[k]).abs().max().item() for k in a)
    assert moved < 1e-4, moved
    with pytest.raises(Exception, match="cache_frozen needs augmentation off"):
        Recipe.from_dict(dp_recipe(cache_frozen=True))
    with pytest.raises(Exception, match="nothing to cache"):
        train(Recipe.from_dict(dp_recipe(cache_frozen=True, **common | {"strategy": "full"})), tmp_path / "f",
              progress_bar=False)


def test_cached_views_are_the_plain_crop_then_fixed_augmentations_through_the_prefix():
    from dp_pose_zoo.codec import SimCCCodec
    from dp_pose_zoo.datasets import load_dataset
    from dp_pose_zoo.training.data import AugmentConfig, CachedPrefixDataset, SimCCDataset
    from dp_pose_zoo.training.model import ModelConfig, TinyViTSimCC

    torch.manual_seed(0)
    model = TinyViTSimCC(ModelConfig(input_size=(64, 64)))
    model.set_strategy("head")
    units = model.frozen_prefix()
    people, codec = load_dataset("synthpose:private-train:5"), SimCCCodec((64, 64), 2.0)
    plain = SimCCDataset(people, codec, seed=3)
    augmented = SimCCDataset(people, codec, augment=AugmentConfig(), seed=3, views=2)
    cached = CachedPrefixDataset(plain, model, units, augmented=augmented, batch_size=4)  # batches cross people
    item = cached[(7, 4)]  # any epoch: the views are drawn once
    images = torch.stack([plain[4]["image"], *augmented[4]["image"]])
    with torch.no_grad():
        expected = model.forward_prefix(images, units)
    assert item["image"].shape == (3, *expected.shape[1:]) and item["target_x"].shape[0] == 3
    torch.testing.assert_close(item["image"], expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(item["target_x"], torch.stack([plain[4]["target_x"], *augmented[4]["target_x"]]))
    assert not torch.equal(item["image"][1], item["image"][2])  # the augmented views differ
    with pytest.raises(ValueError, match="augmentation on"):
        CachedPrefixDataset(plain, model, units, augmented=SimCCDataset(people, codec, views=2))


def test_a_dp_run_on_cached_views_trains_and_needs_more_than_one_view(tmp_path, monkeypatch):
    from dp_pose_zoo.training import trainer

    cached = []

    class Spy(trainer.CachedPrefixDataset):  # what the trainer really caches
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            cached.append(tuple(self.features.shape[:2]))

    monkeypatch.setattr(trainer, "CachedPrefixDataset", Spy)
    recipe = Recipe.from_dict(dp_recipe(cache_frozen=True, augment_multiplicity=3, strategy="head", epochs=1,
                                        noise_seed=1))
    out = train(recipe, tmp_path / "views", progress_bar=False)
    assert cached == [(60, 3)]  # every person of synthpose:private-train:60 as 3 views
    config = json.loads((out / "config.json").read_text())
    assert config["recipe"]["augment_multiplicity"] == 3 and config["privacy"]["epsilon"] <= 2.0
    with pytest.raises(Exception, match="or cache fixed views with augment_multiplicity > 1"):
        Recipe.from_dict(dp_recipe(cache_frozen=True, strategy="head"))


@pytest.fixture(scope="module")
def stopped_dp_run(tmp_path_factory):
    """A DP run checkpointed at step 2 with one more step journaled: what a kill after the checkpoint leaves."""
    from dp_pose_zoo.training.ledger import LedgerJournal

    out = tmp_path_factory.mktemp("stopped") / "run"
    recipe = dp_recipe(train_data="synthpose:private-train:20", epsilon=None, noise_multiplier=1.0, epochs=2)
    train(Recipe.from_dict(recipe), out, progress_bar=False, stop_after_epochs=1)
    journal = LedgerJournal(out / JOURNAL, accountant=accounting.DEFAULT_ACCOUNTANT, delta=1e-5)  # the recipe's
    journal.append(1.0, 0.5, 2)  # the step the kill interrupted
    return out


def _lines(path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


TAMPERS = {
    "deleted": lambda p: p.unlink(),
    "emptied": lambda p: p.write_text(""),
    "header only": lambda p: p.write_text(_lines(p)[0]),
    "last lines dropped": lambda p: p.write_text("".join(_lines(p)[:-2])),
    "sigma edited to 50": lambda p: p.write_text(p.read_text().replace('"noise_multiplier": 1.0',
                                                                       '"noise_multiplier": 50.0', 1)),
}


@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_resume_and_card_check_refuse_a_journal_that_lost_or_changed_steps(stopped_dp_run, tmp_path, capsys, tamper):
    import shutil

    from dp_pose_zoo.cli import main

    run = shutil.copytree(stopped_dp_run, tmp_path / "run")
    TAMPERS[tamper](run / JOURNAL)
    before = (run / "config.json").read_text()
    with pytest.raises(PrivacyError, match=JOURNAL):
        train(None, run, resume=True, progress_bar=False)
    assert (run / "config.json").read_text() == before  # nothing trained, nothing re-written
    assert main(["card", str(run), "--check"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and JOURNAL in err


def test_card_check_verifies_the_journal_and_recomputes_epsilon(stopped_dp_run, tmp_path, capsys):
    import shutil

    from dp_pose_zoo.cli import main

    assert main(["card", str(stopped_dp_run), "--check"]) == 0
    assert "journal verified over 2 steps" in capsys.readouterr().out
    # An epsilon lowered in both the card and config.json agrees with config.json, not with the ledger.
    run = shutil.copytree(stopped_dp_run, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    spent = config["privacy"]["epsilon"]
    config["privacy"]["epsilon"] = spent / 2
    (run / "config.json").write_text(json.dumps(config))
    card = (run / "README.md").read_text()
    assert f"epsilon: {spent}\n" in card
    (run / "README.md").write_text(card.replace(f"epsilon: {spent}\n", f"epsilon: {spent / 2}\n"))
    assert main(["card", str(run), "--check"]) == 2
    assert "disagrees with its ledger: epsilon" in capsys.readouterr().err


def _private_images_renamed(tmp_path, *, reencode: bool) -> str:
    """An MPII JSON without image_id whose photos are the private set's, pixel for pixel, under other names."""
    import cv2

    from dp_pose_zoo.datasets.synthpose import SPLIT_SEEDS, write_split

    out = write_split(tmp_path / "copy", domain="private", n=12, seed=SPLIT_SEEDS["private-train"])
    annotations = out / "annotations" / "mpii_train.json"
    records = json.loads(annotations.read_text())
    for i, record in enumerate(records):
        del record["image_id"]
        old, new = out / "images" / record["image"], out / "images" / f"photo_{i:03d}.png"
        if reencode:  # other bytes, the same pixels
            cv2.imwrite(str(new), cv2.imread(str(old)), [cv2.IMWRITE_PNG_COMPRESSION, 9])
            old.unlink()
        else:
            old.rename(new)
        record["image"] = new.name
    annotations.write_text(json.dumps(records))
    return f"mpii:{annotations}"


@pytest.mark.parametrize("reencode", [False, True])
def test_a_public_set_holding_the_private_images_under_other_names_is_refused(tmp_path, reencode):
    public = _private_images_renamed(tmp_path, reencode=reencode)
    recipe = Recipe.from_dict(dp_recipe(method="pdp-sgd", train_data="synthpose:private-train:20", public_data=public,
                                        public_size=12, noise_multiplier=1.0, epsilon=None))
    with pytest.raises(PrivacyError, match=r"shares 12 image\(s\) .* by content .*photo_0\d\d.png.*private_"):
        train(recipe, tmp_path / "r", progress_bar=False)
    assert not (tmp_path / "r").exists()


# An initial model must not have seen the private people: its weights would carry them outside the epsilon.

TINY_GN = {"input_size": [64, 64], "norm": "group-norm"}


def _trained(tmp_path, name, train_data, init=None) -> str:
    """A one-epoch non-private checkpoint on ``train_data`` (optionally from ``init``)."""
    recipe = dict(name=name, train_data=train_data, val_data=None, strategy="scratch" if init is None else "full",
                  epochs=1, batch_size=8, seed=0, model=TINY_GN, **({"init": init} if init else {}))
    return str(train(Recipe.from_dict(recipe), tmp_path / name, progress_bar=False))


def _dp_from(init, **overrides) -> Recipe:
    return Recipe.from_dict(dp_recipe(**{"init": init, "train_data": "synthpose:private-train:20", "epochs": 1,
                                         "model": TINY_GN, **overrides}))


def test_a_dp_run_from_a_model_trained_on_its_private_people_is_refused(tmp_path):
    init = _trained(tmp_path, "seen", "synthpose:private-train:8")  # the first 8 of the 20 private people
    with pytest.raises(PrivacyError) as err:
        train(_dp_from(init), tmp_path / "r", progress_bar=False)
    message = str(err.value)
    assert f"initial model {init} was trained on synthpose:private-train:8, which shares 8 image(s)" in message
    assert "outside this run's epsilon" in message and "\n" not in message
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("reencode", [False, True])
def test_an_init_trained_on_renamed_copies_of_the_private_photos_is_refused(tmp_path, reencode):
    init = _trained(tmp_path, "copies", _private_images_renamed(tmp_path, reencode=reencode))
    with pytest.raises(PrivacyError, match=r"shares 12 image\(s\) .* by content .*photo_0\d\d.png.*private_"):
        train(_dp_from(init), tmp_path / "r", progress_bar=False)
    assert not (tmp_path / "r").exists()


def test_the_check_reaches_the_models_an_init_started_from(tmp_path):
    # private people, then public ones on top: the second model's own data is clean, its weights are not.
    first = _trained(tmp_path, "first", "synthpose:private-train:8")
    second = _trained(tmp_path, "second", "synthpose:public-train:8", init=first)
    record = json.loads((tmp_path / "second" / "config.json").read_text())["init"]
    assert record["train_data"] == "synthpose:private-train:8" and "base_data" not in record
    with pytest.raises(PrivacyError, match=rf"initial model {second} was trained on synthpose:private-train:8, "
                                           r"which shares 8 image\(s\)"):
        train(_dp_from(second), tmp_path / "r", progress_bar=False)
    # A model three deep still names both generations before it, and its card lists their data.
    third = _trained(tmp_path, "third", "synthpose:public-train:4", init=second)
    record = json.loads((tmp_path / "third" / "config.json").read_text())["init"]
    assert record["train_data"] == "synthpose:public-train:8" and record["base_data"] == ["synthpose:private-train:8"]
    assert card_from_text((tmp_path / "third" / "README.md").read_text()).base_model_data == (
        "synthpose:public-train:8 + synthpose:private-train:8")
    with pytest.raises(PrivacyError, match=r"trained on synthpose:private-train:8, which shares 8"):
        train(_dp_from(third), tmp_path / "r", progress_bar=False)


def _moved_away(tmp_path) -> tuple[Path, str]:
    """A public checkpoint whose training data is not on this machine (as a Hub download's is not), and its spec."""
    init = Path(_trained(tmp_path, "elsewhere", "synthpose:public-train:8"))
    config = json.loads((init / "config.json").read_text())
    config["recipe"]["train_data"] = gone = f"mpii:{tmp_path / 'gone' / 'mpii_train.json'}"
    (init / "config.json").write_text(json.dumps(config))
    return init, gone


def test_an_init_whose_data_cannot_be_read_here_is_refused(tmp_path):
    init, _ = _moved_away(tmp_path)
    with pytest.raises(PrivacyError, match=rf"cannot check that the initial model {init} never saw the private "
                                           r"people: its training data mpii:.*gone.* is not readable here.*"
                                           r"--attest-init-unseen") as err:
        train(_dp_from(str(init)), tmp_path / "r", progress_bar=False)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "r").exists()


def test_an_attested_init_trains_and_every_card_of_the_run_quotes_the_attestation(tmp_path):
    init, gone = _moved_away(tmp_path)
    why = "pulled from the Hub; trained on LSP-extended, which holds no photo of our ward"
    recipe = _dp_from(str(init), init_unseen_attestation=why, epochs=2)
    out = train(recipe, tmp_path / "r", progress_bar=False, stop_after_epochs=1)
    record = json.loads((out / "config.json").read_text())["init"]
    assert record["unchecked_data"] == [gone] and record["attestation"] == why
    note = f"its training data `{gone}` was not readable where this model was trained"
    card = (out / "README.md").read_text()
    assert note in card and f'The trainer attested: "{why}"' in card
    # A resumed run keeps the record it started with, though the init's folder is gone by then.
    shutil.rmtree(init)
    out = train(None, out, resume=True, progress_bar=False)
    config = json.loads((out / "config.json").read_text())
    assert config["progress"]["epoch"] == 2 and config["init"] == record
    assert note in (out / "README.md").read_text()


def test_an_attestation_does_not_excuse_data_that_can_be_read(tmp_path):
    seen = _trained(tmp_path, "seen", "synthpose:private-train:8")
    with pytest.raises(PrivacyError, match=r"trained on synthpose:private-train:8, which shares 8 image"):
        train(_dp_from(seen, init_unseen_attestation="trust me"), tmp_path / "r", progress_bar=False)
    assert not (tmp_path / "r").exists()
    # Where everything could be checked, nothing was taken on the word: no note, no unchecked data.
    clean = _trained(tmp_path, "clean", "synthpose:public-train:8")
    out = train(_dp_from(clean, init_unseen_attestation="trust me"), tmp_path / "ok", progress_bar=False)
    assert "unchecked_data" not in json.loads((out / "config.json").read_text())["init"]
    assert "trust me" not in (out / "README.md").read_text()


def test_a_dp_run_starts_from_a_hub_release_pulled_and_verified(tmp_path):
    """``init: OWNER/REPO``: the release is pulled through the real Hub client (a local server) and checked against
    its card; the frozen weights are the release's and the record names the Hub id."""
    sys.path.insert(0, str(Path(__file__).parent))
    from hub_server import HubServer, hub_env, release_files, run_python

    from dp_pose_zoo.training.model import ModelConfig, TinyViTSimCC

    public = Path(_trained(tmp_path, "public", "synthpose:public-train:8"))
    recipe = tmp_path / "dp.yaml"
    recipe.write_text(yaml.safe_dump(_dp_from("alice/pose-public").to_dict()))
    argv = ["train", "--recipe", str(recipe), "--out", str(tmp_path / "r"), "-q"]
    with HubServer() as hub:
        hub.commit("alice/pose-public", release_files(public))
        result = run_python(f"from dp_pose_zoo.cli import main; raise SystemExit(main({argv!r}))", hub_env(tmp_path, hub))
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    released = json.loads((public / "config.json").read_text())
    assert config["init"]["path"] == "alice/pose-public"
    assert config["init"]["weights_sha256"] == released["weights_sha256"]
    assert config["init"]["train_data"] == "synthpose:public-train:8"  # read from the pulled config, then checked
    assert card_from_text((tmp_path / "r" / "README.md").read_text()).data.base_model == "alice/pose-public"
    model = TinyViTSimCC(ModelConfig(**TINY_GN))
    model.set_strategy("finetune")
    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    ours, theirs = load_file(str(tmp_path / "r" / "model.safetensors")), load_file(str(public / "model.safetensors"))
    assert frozen and all(torch.equal(ours[name], theirs[name]) for name in frozen)


def test_an_init_without_weights_is_one_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match=r"init needs a checkpoint with weights to start from .*the embedded "
                                              r"default is an ONNX-only model"):
        train(_dp_from("default"), tmp_path / "r", progress_bar=False)
    assert not (tmp_path / "r").exists()


def test_a_dp_run_from_a_public_init_trains_and_records_it(tmp_path):
    init = _trained(tmp_path, "public", "synthpose:public-train:8")
    out = train(_dp_from(init), tmp_path / "r", progress_bar=False)
    config = json.loads((out / "config.json").read_text())
    assert config["init"]["train_data"] == "synthpose:public-train:8" and config["progress"]["epoch"] == 1
    assert config["privacy"]["epsilon"] <= 2.0
