"""Pull, push and search through the real huggingface_hub client against a local Hub on 127.0.0.1.

The client runs in subprocesses (it reads HF_ENDPOINT / HF_HOME / HF_HUB_OFFLINE
at import) with HF_HOME in a tmp dir; the server runs in this process, so the
tests can seed, tamper with and inspect its repos. Nothing of huggingface_hub
is mocked.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from hub_server import Commit, HubServer, hub_env, make_release, release_files, run_python  # noqa: E402

PULL = """
import json, sys
from dp_pose_zoo.hub import pull
from dp_pose_zoo.errors import DPPoseZooError
try:
    p = pull(sys.argv[1])
except DPPoseZooError as e:
    print(json.dumps({"error": type(e).__name__, "message": str(e)})); sys.exit(0)
print(json.dumps({"path": str(p.path), "commit": p.commit, "epsilon": repr(p.card.privacy.epsilon),
                  "delta": p.card.privacy.delta, "C": p.card.privacy.clipping_norm, "method": p.card.privacy.method}))
"""


@pytest.fixture
def hub():
    with HubServer() as server:
        yield server


def pull(ref: str, env: dict) -> dict:
    result = run_python(PULL.replace("sys.argv[1]", repr(ref)), env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def cache_repo(env: dict, repo_id: str) -> Path:
    return Path(env["HF_HOME"]) / "hub" / f"models--{repo_id.replace('/', '--')}"


def blobs(env: dict, repo_id: str) -> dict[str, bytes]:
    folder = cache_repo(env, repo_id) / "blobs"
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.is_dir() else {}


def seed(hub: HubServer, repo_id: str, folder: Path) -> str:
    return hub.commit(repo_id, release_files(folder))


def test_pull_downloads_into_the_hub_cache_and_verifies(hub, tmp_path):
    seed(hub, "alice/tiny-dp", make_release(tmp_path / "rel", epsilon=1.5))
    env = hub_env(tmp_path, hub)
    out = pull("alice/tiny-dp", env)
    assert out["epsilon"] == "1.5" and out["delta"] == 1e-5 and out["C"] == 0.1 and out["method"] == "dp-sgd"
    snapshot = Path(out["path"])
    assert snapshot.parent.parent == cache_repo(env, "alice/tiny-dp")  # the normal Hub cache, under HF_HOME
    assert sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()) == \
        ["README.md", "config.json", "model.safetensors", "onnx/model.onnx"]
    assert not (Path.home() / ".cache" / "huggingface" / "hub" / "models--alice--tiny-dp").exists()


def test_pull_a_revision(hub, tmp_path):
    first = seed(hub, "alice/tiny-dp", make_release(tmp_path / "v1", epsilon=1.0))
    seed(hub, "alice/tiny-dp", make_release(tmp_path / "v2", name="v2", epsilon=3.0))
    env = hub_env(tmp_path, hub)
    assert pull("alice/tiny-dp", env)["epsilon"] == "3.0"
    out = pull(f"alice/tiny-dp@{first}", env)
    assert out["epsilon"] == "1.0" and out["commit"] == first


@pytest.mark.parametrize("path", ["model.safetensors", "onnx/model.onnx"])
def test_tampered_file_is_refused_and_not_left_usable(hub, tmp_path, path):
    seed(hub, "alice/tiny-dp", make_release(tmp_path / "rel"))
    good = hub.repos["alice/tiny-dp"].head.files[path]
    hub.tamper("alice/tiny-dp", path)
    env = hub_env(tmp_path, hub)
    out = pull("alice/tiny-dp", env)
    assert out["error"] == "IntegrityError" and path in out["message"] and "deleted from the Hub cache" in out["message"]
    assert not (cache_repo(env, "alice/tiny-dp") / "snapshots").exists() or \
        not any((cache_repo(env, "alice/tiny-dp") / "snapshots").iterdir())
    tampered = hub.repos["alice/tiny-dp"].head.files[path]
    assert tampered not in blobs(env, "alice/tiny-dp").values()  # the poisoned blob is gone too
    # neither offline use nor the Python API can pick up what was refused
    offline = pull("alice/tiny-dp", hub_env(tmp_path, hub, HF_HUB_OFFLINE="1"))
    assert offline["error"] == "HubError" and "not in the Hub cache" in offline["message"]
    # once the server serves the right bytes again, a retry downloads and verifies them afresh
    hub.repos["alice/tiny-dp"].head.files[path] = good
    assert pull("alice/tiny-dp", env)["epsilon"] == "1.0"


def test_missing_card_is_refused(hub, tmp_path):
    files = release_files(make_release(tmp_path / "rel"))
    del files["README.md"]
    hub.commit("alice/no-card", files)
    out = pull("alice/no-card", hub_env(tmp_path, hub))
    assert out["error"] == "CardError" and "no model card" in out["message"]


def test_malformed_card_is_refused(hub, tmp_path):
    files = release_files(make_release(tmp_path / "rel"))
    files["README.md"] = b"---\nlicense: [oops\n---\n# broken\n"
    hub.commit("alice/bad-card", files)
    env = hub_env(tmp_path, hub)
    out = pull("alice/bad-card", env)
    assert out["error"] == "CardError" and "malformed" in out["message"]
    assert files["README.md"] not in blobs(env, "alice/bad-card").values()


@pytest.mark.parametrize("key", ["epsilon", "delta", "clipping_norm"])
def test_dp_card_without_epsilon_delta_or_c_is_refused(hub, tmp_path, key):
    files = release_files(make_release(tmp_path / "rel"))
    card = files["README.md"].decode()
    files["README.md"] = "".join(line for line in card.splitlines(keepends=True)
                                 if not line.startswith(f"  {key}:")).encode()
    hub.commit("alice/no-" + key.replace("_", "-"), files)
    out = pull("alice/no-" + key.replace("_", "-"), hub_env(tmp_path, hub))
    assert out["error"] == "CardError" and key in out["message"]


def test_non_private_card_is_accepted(hub, tmp_path):
    seed(hub, "alice/baseline", make_release(tmp_path / "rel", method="non-private", epsilon=math.inf, delta=None,
                                             clipping_norm=None))
    out = pull("alice/baseline", hub_env(tmp_path, hub))
    assert out["method"] == "non-private" and out["epsilon"] == "inf" and out["delta"] is None


@pytest.mark.parametrize("layout", ["checkpoint", "export"])
def test_a_card_that_disagrees_with_its_files_is_refused(hub, tmp_path, layout):
    """Every hash matches the card, but the card claims epsilon 0.1 where config.json and the ONNX say 1.0."""
    files = release_files(make_release(tmp_path / "rel", epsilon=1.0, layout=layout))
    files["README.md"] = files["README.md"].replace(b"epsilon: 1.0", b"epsilon: 0.1")
    hub.commit("alice/relabelled", files)
    env = hub_env(tmp_path, hub)
    out = pull("alice/relabelled", env)
    assert out["error"] in ("CardError", "IntegrityError") and "epsilon 0.1" in out["message"]
    assert "deleted from the Hub cache" in out["message"]
    assert files["README.md"] not in blobs(env, "alice/relabelled").values()


def test_unhashed_weights_are_refused(hub, tmp_path):
    files = release_files(make_release(tmp_path / "rel"))
    files["model.int8.onnx"] = files["onnx/model.onnx"]  # shipped but not in the card's files map
    hub.commit("alice/extra", files)
    out = pull("alice/extra", hub_env(tmp_path, hub))
    assert out["error"] == "IntegrityError" and "not covered by the card's hashes" in out["message"]


def test_unknown_repo_and_revision(hub, tmp_path):
    env = hub_env(tmp_path, hub)
    assert pull("alice/nothing", env)["error"] == "UnknownModelError"
    seed(hub, "alice/tiny-dp", make_release(tmp_path / "rel"))
    assert pull("alice/tiny-dp@" + "0" * 40, env)["error"] in ("UnknownModelError", "HubError")


@pytest.mark.parametrize("ref", ["alice/b..c", "alice--x/y", "alice/y.git"])
def test_repo_ids_the_hub_refuses_are_one_clear_error(hub, tmp_path, ref):
    out = pull(ref, hub_env(tmp_path, hub))  # huggingface_hub raised its HFValidationError through
    assert out["error"] == "UnknownModelError" and ref in out["message"]
    assert hub.requests == []


@pytest.mark.parametrize("revision", ["../../../../tmp/x", "v1/../../x", "/etc", "a..b", ".hidden", "x y", "v1/"])
def test_revisions_that_are_no_branch_tag_or_commit_are_refused(hub, tmp_path, revision):
    out = pull(f"alice/good@{revision}", hub_env(tmp_path, hub, HF_HUB_OFFLINE="1"))
    assert out["error"] == "UnknownModelError" and "revision" in out["message"]
    assert not (Path(tmp_path) / "hf-home").exists()  # nothing was read or written


def test_legitimate_revision_names_are_accepted(hub, tmp_path):
    from dp_pose_zoo.hub import check_revision

    for name in ("main", "v1.0", "refs/pr/1", "release-2025_01", "a" * 40, "refs/convert/parquet"):
        assert check_revision(name) == name


def victim_folder(tmp_path: Path) -> Path:
    """A folder outside the Hub cache shaped like a cached repo: what the traversal would delete."""
    victim = tmp_path / "victim" / "snapshots" / "victim"
    victim.mkdir(parents=True)
    (victim / "keep.txt").write_text("mine")
    return victim


# From the snapshots folder (HF_HOME/hub/models--alice--good/snapshots) up four levels is tmp_path.
ESCAPE = "../../../../victim/snapshots/victim"


def test_an_offline_revision_cannot_reach_out_of_the_cache(hub, tmp_path):
    seed(hub, "alice/good", make_release(tmp_path / "rel"))
    env = hub_env(tmp_path, hub)
    assert "error" not in pull("alice/good", env)
    victim = victim_folder(tmp_path)
    (Path(env["HF_HOME"]) / "evil").write_text(ESCAPE)  # refs/../../../evil is HF_HOME/evil
    out = pull("alice/good@../../../evil", hub_env(tmp_path, hub, HF_HUB_OFFLINE="1"))
    assert out["error"] == "UnknownModelError" and "revision" in out["message"]
    assert (victim / "keep.txt").read_text() == "mine"


def test_a_cached_ref_naming_no_commit_is_refused_without_reading_or_deleting(hub, tmp_path):
    seed(hub, "alice/good", make_release(tmp_path / "rel"))
    env = hub_env(tmp_path, hub)
    assert "error" not in pull("alice/good", env)
    victim = victim_folder(tmp_path)
    (cache_repo(env, "alice/good") / "refs" / "main").write_text(ESCAPE)
    out = pull("alice/good", hub_env(tmp_path, hub, HF_HUB_OFFLINE="1"))
    assert out["error"] == "HubError" and "40 hex" in out["message"]
    assert (victim / "keep.txt").read_text() == "mine"


def test_a_server_sent_commit_that_is_no_hash_is_refused_before_any_path_is_built(hub, tmp_path):
    seed(hub, "alice/good", make_release(tmp_path / "rel"))
    env = hub_env(tmp_path, hub)
    assert "error" not in pull("alice/good", env)
    victim = victim_folder(tmp_path)
    hub.repos["alice/good"].commits.append(Commit(ESCAPE, {}, {}))  # a hostile endpoint: that sha, an empty tree
    out = pull("alice/good", env)
    assert out["error"] == "HubError" and "40 hex" in out["message"]
    assert (victim / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in victim.parent.parent.rglob("*")) == ["keep.txt", "snapshots", "victim"]


def test_offline_reuses_the_cache_without_a_request(hub, tmp_path):
    seed(hub, "alice/tiny-dp", make_release(tmp_path / "rel", epsilon=2.5))
    env = hub_env(tmp_path, hub)
    online = pull("alice/tiny-dp", env)
    before = len(hub.requests)
    offline_env = hub_env(tmp_path, hub, HF_HUB_OFFLINE="1")
    code = ("from dp_pose_zoo.runtime.pretrained import from_pretrained; import numpy as np; "
            "est = from_pretrained('alice/tiny-dp'); est(np.zeros((40, 30, 3), np.uint8)); "
            "print(est.card.privacy.epsilon, est.path)")
    result = run_python(code, offline_env)
    assert result.returncode == 0, result.stderr
    epsilon, path = result.stdout.split()
    assert epsilon == "2.5" and path.startswith(online["path"])
    assert pull("alice/tiny-dp", offline_env)["path"] == online["path"]
    assert len(hub.requests) == before  # HF_HUB_OFFLINE=1: zero requests


def test_offline_without_cache_is_one_clear_error(hub, tmp_path):
    seed(hub, "alice/tiny-dp", make_release(tmp_path / "rel"))
    out = pull("alice/tiny-dp", hub_env(tmp_path, hub, HF_HUB_OFFLINE="1"))
    assert out["error"] == "HubError" and "HF_HUB_OFFLINE" in out["message"]
    assert hub.requests == []


def test_push_then_pull_round_trip_never_uploads_secrets(hub, tmp_path):
    rel = make_release(tmp_path / "rel", epsilon=0.7)
    env = hub_env(tmp_path, hub)
    result = run_python(f"from dp_pose_zoo.hub import push; print(push({str(rel)!r}, 'alice/pushed'))", env)
    assert result.returncode == 0, result.stderr
    commit = result.stdout.strip()
    repo = hub.repos["alice/pushed"]
    assert repo.head.sha == commit
    assert sorted(repo.head.files) == ["README.md", "config.json", "model.safetensors", "onnx/model.onnx"]
    assert not any(b"SECRET-SEED" in data for data in repo.head.files.values())
    card = repo.head.files["README.md"].decode()
    assert "files:" in card and "onnx/model.onnx:" in card and "- dp-pose-zoo" in card
    assert repo.head.files["model.safetensors"] == (rel / "model.safetensors").read_bytes()
    out = pull("alice/pushed", env)
    assert out["epsilon"] == "0.7" and out["commit"] == commit
    # the checkpoint folder itself is left as it was
    assert "files:" not in (rel / "README.md").read_text() and (rel / "training_state.pt").exists()


def test_push_refuses_weights_that_contradict_the_card(hub, tmp_path):
    rel = make_release(tmp_path / "rel")
    (rel / "model.safetensors").write_bytes(b"retrained after the card was written")
    result = run_python(f"from dp_pose_zoo.hub import push; push({str(rel)!r}, 'alice/pushed')",
                        hub_env(tmp_path, hub))
    assert result.returncode != 0 and "IntegrityError" in result.stderr
    assert "alice/pushed" not in hub.repos


def test_hub_search_lists_our_tagged_repos_from_their_cards(hub, tmp_path):
    seed(hub, "alice/eps1", make_release(tmp_path / "a", epsilon=1.0))
    seed(hub, "bob/pdp", make_release(tmp_path / "b", method="pdp-sgd", epsilon=2.0))
    hub.commit("carol/bert", {"README.md": b"---\nlicense: mit\ntags: [nlp]\n---\n# bert\n"})
    code = ("import json; from dp_pose_zoo.zoo import hub_entries; "
            "print(json.dumps([e.to_dict() for e in hub_entries()]))")
    result = run_python(code, hub_env(tmp_path, hub))
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {"alice/eps1", "bob/pdp"}
    assert rows["bob/pdp"]["method"] == "pdp-sgd" and rows["bob/pdp"]["epsilon"] == 2.0
    assert rows["alice/eps1"]["where"] == ["hub"] and rows["alice/eps1"]["size"] > 0
    assert any(path.startswith("/api/models?") and "filter=dp-pose-zoo" in path for _, path in hub.requests)
