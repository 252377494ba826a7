"""``dp-pose zoo list|pull|push`` and ``dp-pose card``: output, filters, one-line errors with exit code 2.

Hub-touching commands run in subprocesses against tests/hub_server.py (the
client reads HF_* at import); ``card`` needs no Hub and runs in-process.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from hub_server import HubServer, hub_env, make_release, release_files, run_cli  # noqa: E402

from dp_pose_zoo import cli  # noqa: E402
from dp_pose_zoo.commands import card as card_cmd  # noqa: E402
from dp_pose_zoo.commands import zoo as zoo_cmd  # noqa: E402


@pytest.fixture
def hub():
    with HubServer() as server:
        yield server


@pytest.fixture
def main(monkeypatch):
    """``cli.main`` with zoo and card registered (a no-op once cli.py wires them)."""
    build = cli.build_parser

    def build_parser():
        parser = build()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for module, name in ((zoo_cmd, "zoo"), (card_cmd, "card")):
            if name not in sub.choices:
                module.add_parser(sub)
        return parser

    monkeypatch.setattr(cli, "build_parser", build_parser)
    return cli.main


def one_error_line(stderr: str, command: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"dp-pose {command}: error: ")
    return lines[0]


# -- zoo list ----------------------------------------------------------------------------------
def test_list_on_a_fresh_install_shows_the_embedded_default(tmp_path):
    default = make_release(tmp_path / "default", name="default-demo", epsilon=4.0, layout="export")
    result = run_cli(["zoo", "list"], hub_env(tmp_path, None, DP_POSE_ZOO_DEFAULT_DIR=str(default)))
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split() == ["NAME", "METHOD", "EPSILON", "DELTA", "C", "STRATEGY", "DATA", "PCKH", "SIZE", "WHERE"]
    assert row.split() == ["default", "dp-sgd", "4.000", "1e-05", "0.1", "scratch", "synthpose:private-train:16",
                           "42.50", row.split()[8], "embedded"]
    as_json = run_cli(["zoo", "list", "--json"], hub_env(tmp_path, None, DP_POSE_ZOO_DEFAULT_DIR=str(default)))
    (entry,) = json.loads(as_json.stdout)
    assert entry["epsilon"] == 4.0 and entry["delta"] == 1e-5 and entry["clipping_norm"] == 0.1
    assert entry["pckh"] == 42.5 and entry["where"] == ["embedded"]
    assert entry["size"] == (default / "model.onnx").stat().st_size


def test_list_without_a_default_warns_and_still_exits_0(tmp_path):
    result = run_cli(["zoo", "list"], hub_env(tmp_path, None))
    assert result.returncode == 0 and result.stdout.strip() == "no models found"
    assert "embedded default model is missing" in result.stderr


def test_pull_list_filters_and_offline(hub, tmp_path):
    hub.commit("alice/eps8", release_files(make_release(tmp_path / "a", epsilon=8.0)))
    hub.commit("alice/pdp1", release_files(make_release(tmp_path / "b", method="pdp-sgd", epsilon=1.0)))
    hub.commit("alice/np", release_files(make_release(tmp_path / "c", method="non-private", epsilon=math.inf,
                                                      delta=None, clipping_norm=None)))
    env = hub_env(tmp_path, hub)
    for repo in ("alice/eps8", "alice/pdp1", "alice/np"):
        result = run_cli(["zoo", "pull", repo], env)
        assert result.returncode == 0, result.stderr
        assert f"{repo}@" in result.stdout and "verified" in result.stdout
    offline = hub_env(tmp_path, hub, HF_HUB_OFFLINE="1")
    listed = lambda *args: [e["name"] for e in json.loads(run_cli(["zoo", "list", "--json", *args], offline).stdout)]  # noqa: E731
    assert listed() == ["alice/eps8", "alice/np", "alice/pdp1"]
    assert listed("--max-epsilon", "1.0") == ["alice/pdp1"]
    assert listed("--method", "pdp-sgd") == ["alice/pdp1"]
    assert listed("--method", "non-private") == ["alice/np"]
    table = run_cli(["zoo", "list"], offline).stdout
    assert "alice/np" in table and "inf" in table and "cache" in table
    again = run_cli(["zoo", "pull", "alice/pdp1", "--json"], offline)
    assert again.returncode == 0 and json.loads(again.stdout)["epsilon"] == 1.0


def test_pull_of_a_tampered_file_is_one_line_and_exit_2(hub, tmp_path):
    hub.commit("alice/tiny", release_files(make_release(tmp_path / "a")))
    hub.tamper("alice/tiny", "model.safetensors")
    result = run_cli(["zoo", "pull", "alice/tiny"], hub_env(tmp_path, hub))
    assert result.returncode == 2 and result.stdout == ""
    line = one_error_line(result.stderr, "zoo")
    assert "model.safetensors does not match the sha256" in line


def test_pull_of_a_card_that_disagrees_with_its_files_is_refused_and_never_listed(hub, tmp_path):
    files = release_files(make_release(tmp_path / "a", epsilon=1.0))
    files["README.md"] = files["README.md"].replace(b"epsilon: 1.0", b"epsilon: 0.1")  # hashes still match
    hub.commit("alice/relabelled", files)
    env = hub_env(tmp_path, hub)
    result = run_cli(["zoo", "pull", "alice/relabelled"], env)
    assert result.returncode == 2 and result.stdout == ""
    assert "epsilon 0.1" in one_error_line(result.stderr, "zoo")
    listed = run_cli(["zoo", "list", "--json", "--max-epsilon", "0.5"], hub_env(tmp_path, hub, HF_HUB_OFFLINE="1"))
    assert json.loads(listed.stdout) == []


def test_pull_of_an_unknown_repo_is_one_line_and_exit_2(hub, tmp_path):
    result = run_cli(["zoo", "pull", "alice/nothing"], hub_env(tmp_path, hub))
    assert result.returncode == 2
    assert "no such model repository" in one_error_line(result.stderr, "zoo")
    bad = run_cli(["zoo", "pull", "not-a-repo"], hub_env(tmp_path, hub))
    assert bad.returncode == 2 and "OWNER/REPO" in one_error_line(bad.stderr, "zoo")


@pytest.mark.parametrize("ref, match", [("alice/b..c", "not a valid Hub model id"),
                                        ("alice--x/y", "not a valid Hub model id"),
                                        ("alice/good@../../../../tmp/x", "is not a branch, tag or commit name")])
def test_pull_of_an_invalid_id_or_revision_is_one_line_and_exit_2(hub, tmp_path, ref, match):
    for env in (hub_env(tmp_path, hub), hub_env(tmp_path, hub, HF_HUB_OFFLINE="1")):
        result = run_cli(["zoo", "pull", ref], env)
        assert result.returncode == 2 and match in one_error_line(result.stderr, "zoo")
    assert hub.requests == []


def test_push_then_list_hub_finds_it(hub, tmp_path):
    rel = make_release(tmp_path / "rel", epsilon=0.9)
    env = hub_env(tmp_path, hub)
    result = run_cli(["zoo", "push", str(rel), "alice/pushed", "--message", "first release"], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"pushed {rel} to alice/pushed")
    assert sorted(hub.repos["alice/pushed"].head.files) == ["README.md", "config.json", "model.safetensors",
                                                            "onnx/model.onnx"]
    (entry,) = json.loads(run_cli(["zoo", "list", "--hub", "--json"], env).stdout)
    assert entry["name"] == "alice/pushed" and entry["epsilon"] == 0.9 and entry["where"] == ["hub"]


def test_push_of_a_folder_without_a_card_is_one_line_and_exit_2(hub, tmp_path):
    rel = make_release(tmp_path / "rel")
    (rel / "README.md").unlink()
    result = run_cli(["zoo", "push", str(rel), "alice/x"], hub_env(tmp_path, hub))
    assert result.returncode == 2 and "no model card" in one_error_line(result.stderr, "zoo")
    assert hub.requests == []


# -- card --------------------------------------------------------------------------------------
def test_card_prints_the_stamped_card(main, tmp_path, capsys):
    rel = make_release(tmp_path / "rel", epsilon=1.25)
    assert main(["card", str(rel)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("---\n") and "epsilon: 1.25" in out and "onnx/model.onnx:" in out
    assert "training_state.pt" not in out and "privacy_journal" not in out
    assert main(["card", str(rel), "--check"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("ok: tiny-dp (dp-sgd, epsilon 1.25000, delta 1e-05, C 0.1;") and "\n" not in line


@pytest.mark.parametrize("damage, match", [
    (lambda rel: (rel / "model.safetensors").write_bytes(b"other weights"), "does not match the card's weights"),
    (lambda rel: (rel / "config.json").write_text(json.dumps({"format_version": 1, "weights_sha256": json.loads(
        (rel / "config.json").read_text())["weights_sha256"], "recipe": {"method": "dp-sgd"},
        "privacy": {"epsilon": 9.0}})), "the ledger 9.0"),
    (lambda rel: (rel / "README.md").write_text("# typed by hand\n"), "no YAML front matter"),
])
def test_card_check_refuses_in_one_line(main, tmp_path, capsys, damage, match):
    rel = make_release(tmp_path / "rel")
    damage(rel)
    assert main(["card", str(rel), "--check"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and match in one_error_line(captured.err, "card")


def test_card_of_an_export_folder_checks_the_onnx_metadata(main, tmp_path, capsys):
    rel = make_release(tmp_path / "rel", epsilon=2.0)
    assert main(["card", str(rel / "onnx"), "--check"]) == 0
    (rel / "onnx" / "README.md").write_text((rel / "README.md").read_text().replace("epsilon: 2.0", "epsilon: 0.2"))
    assert main(["card", str(rel / "onnx"), "--check"]) == 2
    assert "the card dp-sgd epsilon 0.2" in one_error_line(capsys.readouterr().err, "card")


def test_card_of_a_real_checkpoint(main, tiny_checkpoint, capsys):
    assert main(["card", str(tiny_checkpoint), "--check"]) == 0
    assert capsys.readouterr().out.startswith("ok: tiny (")


def test_help_has_examples(main, capsys):
    for argv in (["zoo", "--help"], ["zoo", "list", "--help"], ["card", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        assert "examples:" in capsys.readouterr().out
