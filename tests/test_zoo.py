"""The zoo registry and from_pretrained, without a Hub: embedded default, local folders, the cache layout.

Hub traffic is in tests/test_hub.py (subprocesses against a local server);
here the cache is always passed explicitly, so ~/.cache is never read.
"""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from hub_server import fake_cache, make_release  # noqa: E402

from dp_pose_zoo import zoo  # noqa: E402
from dp_pose_zoo.errors import (CardError, CheckpointError, DefaultModelMissingError, IntegrityError,  # noqa: E402
                                UnknownModelError)
from dp_pose_zoo.hub import stamped_card  # noqa: E402
from dp_pose_zoo.runtime.pretrained import from_pretrained  # noqa: E402


@pytest.fixture
def default(tmp_path, monkeypatch):
    """A fake embedded default (bare export folder) found through DP_POSE_ZOO_DEFAULT_DIR."""
    folder = make_release(tmp_path / "default", name="default-demo", epsilon=4.0, layout="export")
    monkeypatch.setenv(zoo.DEFAULT_DIR_ENV, str(folder))
    return folder


def test_default_dir_comes_from_the_env_var(default):
    assert zoo.default_dir() == default


def test_missing_default_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.DEFAULT_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(DefaultModelMissingError, match="embedded default model is missing"):
        zoo.default_dir()
    with pytest.raises(FileNotFoundError):
        from_pretrained("default")


def test_packaged_default_location_is_inside_the_package():
    assert zoo.PACKAGED_DEFAULT.parent.parent == Path(zoo.__file__).parent
    assert zoo.PACKAGED_DEFAULT.name == "default"


def test_embedded_default_entry_reads_its_card(default):
    entry = zoo.embedded_default()
    assert entry.name == "default" and entry.where == ("embedded",)
    assert entry.card.privacy.epsilon == 4.0 and entry.card.privacy.clipping_norm == 0.1
    assert entry.size == (default / "model.onnx").stat().st_size
    d = entry.to_dict()
    assert d["epsilon"] == 4.0 and d["delta"] == 1e-5 and d["pckh"] == 42.5 and d["card_name"] == "default-demo"


def test_from_pretrained_default_attaches_the_card(default):
    est = from_pretrained("default")
    assert est.card.privacy.epsilon == 4.0 and est.card.privacy.method == "dp-sgd"
    (person,) = est(np.zeros((60, 40, 3), np.uint8))
    assert person.keypoints.shape == (16, 2)


def test_from_pretrained_local_checkpoint_folder_and_onnx_file(tmp_path):
    ckpt = make_release(tmp_path / "ckpt", epsilon=0.5)
    assert from_pretrained(ckpt).card.privacy.epsilon == 0.5
    assert from_pretrained(str(ckpt / "onnx" / "model.onnx")).card.privacy.delta == 1e-5


def test_from_pretrained_non_private(tmp_path):
    ckpt = make_release(tmp_path / "np", method="non-private", epsilon=math.inf, delta=None, clipping_norm=None)
    est = from_pretrained(ckpt)
    assert math.isinf(est.card.privacy.epsilon) and est.card.privacy.method == "non-private"


def test_from_pretrained_refuses_onnx_of_other_weights(tmp_path):
    ckpt = make_release(tmp_path / "a", epsilon=1.0)
    other = make_release(tmp_path / "b", name="other", epsilon=1.0)
    shutil.copy(other / "onnx" / "model.onnx", ckpt / "onnx" / "model.onnx")
    with pytest.raises(IntegrityError, match="exported from weights"):
        from_pretrained(ckpt)


def test_from_pretrained_refuses_onnx_whose_privacy_differs_from_the_card(tmp_path):
    ckpt = make_release(tmp_path / "a", epsilon=1.0)
    (ckpt / "README.md").write_text((ckpt / "README.md").read_text().replace("epsilon: 1.0", "epsilon: 0.1"))
    with pytest.raises(IntegrityError, match="the card dp-sgd epsilon 0.1"):
        from_pretrained(ckpt)


def test_from_pretrained_checks_the_files_map_of_a_local_release(tmp_path):
    ckpt = make_release(tmp_path / "a")
    (ckpt / "README.md").write_text(stamped_card(ckpt).text)
    from_pretrained(ckpt)
    data = bytearray((ckpt / "onnx" / "model.onnx").read_bytes())
    data[-20] ^= 0xFF
    (ckpt / "onnx" / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="does not match the sha256"):
        from_pretrained(ckpt)


def test_from_pretrained_needs_a_card_and_an_onnx(tmp_path):
    ckpt = make_release(tmp_path / "a", onnx=False)
    with pytest.raises(CheckpointError, match="dp-pose export"):
        from_pretrained(ckpt)
    bare = make_release(tmp_path / "b", layout="export")
    (bare / "README.md").unlink()
    with pytest.raises(CardError, match="no model card"):
        from_pretrained(bare)


def test_unknown_names_are_refused_in_one_sentence(tmp_path):
    with pytest.raises(UnknownModelError) as info:
        from_pretrained("not a model")
    assert str(info.value).startswith("'not a model' is not 'default'")
    assert isinstance(info.value, KeyError)


def test_cache_entries_come_from_cards_with_weights(tmp_path):
    fake_cache(tmp_path / "hub", "alice/tiny-dp", make_release(tmp_path / "r1", epsilon=0.8))
    # a card alone (what a Hub listing fetches) is not a cached model
    card_only = tmp_path / "hub" / "models--bob--card-only" / "snapshots" / ("d" * 40)
    card_only.mkdir(parents=True)
    shutil.copy(tmp_path / "r1" / "README.md", card_only / "README.md")
    # a repo that is not ours
    foreign = tmp_path / "hub" / "models--carol--bert" / "snapshots" / ("e" * 40)
    foreign.mkdir(parents=True)
    (foreign / "README.md").write_text("---\nlicense: mit\n---\n# bert\n")
    (foreign / "model.safetensors").write_bytes(b"x")
    (entry,) = zoo.cached_entries(cache_dir=tmp_path / "hub")
    assert entry.name == "alice/tiny-dp" and entry.where == ("cache",) and entry.revision == "c" * 40
    assert entry.card.privacy.epsilon == 0.8 and entry.size == (tmp_path / "r1" / "onnx" / "model.onnx").stat().st_size


def test_list_zoo_filters_by_privacy(tmp_path, default):
    cache = tmp_path / "hub"
    fake_cache(cache, "alice/eps8", make_release(tmp_path / "r1", epsilon=8.0))
    fake_cache(cache, "alice/pdp1", make_release(tmp_path / "r2", method="pdp-sgd", epsilon=1.0))
    fake_cache(cache, "alice/np", make_release(tmp_path / "r3", method="non-private", epsilon=math.inf, delta=None,
                                               clipping_norm=None))
    names = lambda **kw: [e.name for e in zoo.list_zoo(cache_dir=cache, **kw)]  # noqa: E731
    assert names() == ["default", "alice/eps8", "alice/np", "alice/pdp1"]
    assert names(max_epsilon=2.0) == ["alice/pdp1"]
    assert names(max_epsilon=2.0, method="dp-sgd") == []
    assert names(method="non-private") == ["alice/np"]
    assert names(method="dp-sgd") == ["default", "alice/eps8"]


def test_list_zoo_without_a_default_still_lists_the_cache(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(zoo.DEFAULT_DIR_ENV, str(tmp_path / "nowhere"))
    fake_cache(tmp_path / "hub", "alice/eps8", make_release(tmp_path / "r1", epsilon=8.0))
    assert [e.name for e in zoo.list_zoo(cache_dir=tmp_path / "hub")] == ["alice/eps8"]
    assert "embedded default model is missing" in caplog.text


def test_zoo_and_hub_modules_are_torch_free():
    import subprocess

    code = ("import sys; import dp_pose_zoo.zoo, dp_pose_zoo.hub, dp_pose_zoo.runtime.pretrained, "
            "dp_pose_zoo.commands.zoo, dp_pose_zoo.commands.card; "
            "bad = [m for m in ('torch', 'timm', 'opacus', 'onnx', 'safetensors') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_release_whose_parts_disagree_cannot_be_stamped(tmp_path):
    ckpt = make_release(tmp_path / "a")
    other = make_release(tmp_path / "b", name="other")
    shutil.copy(other / "onnx" / "model.onnx", ckpt / "onnx" / "model.onnx")
    with pytest.raises(IntegrityError, match="exported from weights"):
        stamped_card(ckpt)
