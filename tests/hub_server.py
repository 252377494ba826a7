"""A tiny in-memory Hugging Face Hub on 127.0.0.1, for tests that run the real client.

It implements exactly the endpoints huggingface_hub 2.4.0 calls for
``hf_hub_download``, ``snapshot_download``, ``list_models``, ``create_repo``
and ``upload_folder`` (see ``/work/shared/notes/hub-local-server.md``):
Content-Length on every response, 404s with ``X-Error-Code``, every upload
answered as "regular" so the bytes travel base64 in the commit (no Xet, no
LFS). Standard library only; one thread per request.

``HubServer.tamper`` swaps a file's bytes for others of the same length while
keeping the advertised ETag and size: what a poisoned mirror or a flipped bit
looks like to a client that does not check content.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    sha: str
    files: dict[str, bytes]
    etags: dict[str, str]  # what the server advertises; kept when a file is tampered with


@dataclass
class Repo:
    repo_id: str
    commits: list[Commit] = field(default_factory=list)

    @property
    def head(self) -> Commit | None:
        return self.commits[-1] if self.commits else None

    def find(self, revision: str) -> Commit | None:
        if revision == "main":
            return self.head
        return next((c for c in self.commits if c.sha == revision), None)

    def tags(self) -> list[str]:
        """Tags as the Hub derives them: the card's ``tags`` plus its ``library_name``."""
        head = self.head
        text = head.files.get("README.md", b"").decode("utf-8", "replace") if head else ""
        match = re.match(r"^---\n(.*?)\n---", text, re.S)
        try:
            data = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError:
            data = {}
        data = data if isinstance(data, dict) else {}
        tags = list(data.get("tags") or [])
        if data.get("library_name"):
            tags.append(data["library_name"])
        return tags


class HubServer:
    """``with HubServer() as hub: os.environ["HF_ENDPOINT"] = hub.url``; repos live in ``hub.repos``."""

    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, for assertions
        self._lock = threading.Lock()
        self._counter = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "HubServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- repo content, for tests -------------------------------------------------------------
    def create(self, repo_id: str) -> Repo:
        with self._lock:
            return self.repos.setdefault(repo_id, Repo(repo_id))

    def commit(self, repo_id: str, files: dict[str, bytes], *, deletions: tuple[str, ...] = ()) -> str:
        """A new commit on main holding the previous files updated with ``files``; its sha."""
        repo = self.create(repo_id)
        with self._lock:
            self._counter += 1
            previous = repo.head
            merged = dict(previous.files) if previous else {}
            merged.update(files)
            for path in deletions:
                merged.pop(path, None)
            sha = hashlib.sha1(f"{repo_id}:{self._counter}".encode()).hexdigest()
            repo.commits.append(Commit(sha, merged, {p: git_sha1(b) for p, b in merged.items()}))
            return sha

    def tamper(self, repo_id: str, path: str) -> None:
        """Flip bytes in the middle of ``path`` at head; size and ETag stay as advertised."""
        commit = self.repos[repo_id].head
        data = bytearray(commit.files[path])
        mid = len(data) // 2
        data[mid:mid + 8] = bytes(b ^ 0xFF for b in data[mid:mid + 8])
        commit.files[path] = bytes(data)


def _handler_for(hub: HubServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet: pytest shows failures, not access logs
            pass

        # -- plumbing ---------------------------------------------------------------------
        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                  *, head: bool = False) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head and body:
                self.wfile.write(body)

        def _json(self, status: int, obj, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

        def _error(self, code: str, message: str, *, head: bool = False, commit: str | None = None) -> None:
            headers = {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"}
            if commit:
                headers["X-Repo-Commit"] = commit
            self._send(404, b"" if head else json.dumps({"error": message}).encode(), headers, head=head)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _route(self):
            parts = urlsplit(self.path)
            segments = [unquote(s) for s in parts.path.split("/")[1:]]
            return segments, parse_qs(parts.query)

        # -- verbs ---------------------------------------------------------------------------
        def do_HEAD(self) -> None:
            self._get(head=True)

        def do_GET(self) -> None:
            self._get(head=False)

        def _get(self, *, head: bool) -> None:
            hub.requests.append((self.command, self.path))
            seg, query = self._route()
            if len(seg) >= 5 and seg[2] == "resolve":
                return self._resolve(f"{seg[0]}/{seg[1]}", seg[3], "/".join(seg[4:]), head=head)
            if seg[:2] == ["api", "models"] and len(seg) == 2:
                return self._search(query)
            if seg[:2] == ["api", "models"] and len(seg) >= 4:
                repo = hub.repos.get(f"{seg[2]}/{seg[3]}")
                if repo is None or repo.head is None:
                    return self._error("RepoNotFound", "Repository not found", head=head)
                if len(seg) == 4:
                    return self._info(repo, repo.head)
                if seg[4] == "revision" and len(seg) >= 6:
                    commit = repo.find("/".join(seg[5:]))
                    return self._info(repo, commit) if commit else self._error("RevisionNotFound", "Invalid rev id")
                if seg[4] == "tree" and len(seg) >= 6:
                    commit = repo.find(seg[5])
                    if commit is None:
                        return self._error("RevisionNotFound", "Invalid rev id")
                    return self._tree(commit, "/".join(seg[6:]))
            self._error("EntryNotFound" if seg[:1] != ["api"] else "RepoNotFound", "Not found", head=head)

        def do_POST(self) -> None:
            hub.requests.append((self.command, self.path))
            seg, _ = self._route()
            body = self._body()
            if seg == ["api", "repos", "create"]:
                payload = json.loads(body)
                repo_id = f"{payload.get('organization') or 'user'}/{payload['name']}"
                url = f"{hub.url}/{repo_id}"
                if repo_id in hub.repos:
                    return self._json(409, {"error": "You already created this model repo", "url": url})
                hub.create(repo_id)
                return self._json(200, {"url": url, "name": repo_id})
            if seg == ["api", "validate-yaml"]:
                return self._validate_yaml(json.loads(body).get("content", ""))
            if seg[:2] == ["api", "models"] and len(seg) >= 6 and seg[4] == "preupload":
                files = json.loads(body)["files"]
                return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                  for f in files]})
            if seg[:2] == ["api", "models"] and len(seg) >= 6 and seg[4] == "commit":
                return self._commit(f"{seg[2]}/{seg[3]}", body)
            self._error("RepoNotFound", "Not found")

        # -- endpoints -----------------------------------------------------------------------
        def _resolve(self, repo_id: str, revision: str, path: str, *, head: bool) -> None:
            repo = hub.repos.get(repo_id)
            if repo is None or repo.head is None:
                return self._error("RepoNotFound", "Repository not found", head=head)
            commit = repo.find(revision)
            if commit is None:
                return self._error("RevisionNotFound", "Invalid rev id", head=head)
            if path not in commit.files:
                return self._error("EntryNotFound", "Entry not found", head=head, commit=commit.sha)
            data = commit.files[path]
            self._send(200, data, {"X-Repo-Commit": commit.sha, "ETag": f'"{commit.etags[path]}"',
                                   "Content-Type": "application/octet-stream"}, head=head)

        def _info(self, repo: Repo, commit: Commit) -> None:
            self._json(200, {"id": repo.repo_id, "modelId": repo.repo_id, "sha": commit.sha, "private": False,
                             "tags": repo.tags(), "siblings": [{"rfilename": p} for p in sorted(commit.files)]})

        def _tree(self, commit: Commit, prefix: str) -> None:
            entries, dirs = [], set()
            for path in sorted(commit.files):
                if prefix and not path.startswith(prefix.rstrip("/") + "/"):
                    continue
                parts = path.split("/")
                for i in range(1, len(parts)):
                    dirs.add("/".join(parts[:i]))
                entries.append({"type": "file", "path": path, "size": len(commit.files[path]),
                                "oid": commit.etags[path]})
            entries += [{"type": "directory", "path": d, "oid": git_sha1(d.encode())} for d in sorted(dirs)]
            self._json(200, entries)

        def _search(self, query: dict[str, list[str]]) -> None:
            filters = query.get("filter", [])
            search = (query.get("search") or [""])[0]
            author = (query.get("author") or [""])[0]
            limit = int((query.get("limit") or ["1000"])[0])
            found = []
            for repo in list(hub.repos.values()):
                tags = repo.tags()
                if repo.head is None or not all(f in tags for f in filters):
                    continue
                if search and search.lower() not in repo.repo_id.lower():
                    continue
                if author and not repo.repo_id.startswith(author + "/"):
                    continue
                found.append({"id": repo.repo_id, "modelId": repo.repo_id, "tags": tags, "sha": repo.head.sha})
            self._json(200, found[:limit])

        def _validate_yaml(self, content: str) -> None:
            match = re.match(r"^---\n(.*?)\n---", content, re.S)
            try:
                yaml.safe_load(match.group(1)) if match else None
            except yaml.YAMLError as e:
                return self._json(400, {"errors": [{"message": str(e).splitlines()[0]}], "warnings": []})
            self._json(200, {"errors": [], "warnings": []})

        def _commit(self, repo_id: str, body: bytes) -> None:
            if repo_id not in hub.repos:
                return self._error("RepoNotFound", "Repository not found")
            files: dict[str, bytes] = {}
            deletions: list[str] = []
            for line in body.splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                if item["key"] == "file":
                    files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] == "deletedFile":
                    deletions.append(item["value"]["path"])
                elif item["key"] != "header":  # lfsFile etc.: never asked for (everything is "regular")
                    return self._json(400, {"error": f"unsupported commit operation {item['key']}"})
            sha = hub.commit(repo_id, files, deletions=tuple(deletions))
            self._json(200, {"commitOid": sha, "commitUrl": f"{hub.url}/{repo_id}/commit/{sha}"})

    return Handler


# -- fake releases to serve ----------------------------------------------------------------------
def simcc_onnx(*, height: int, width: int, joints: int, outputs: tuple[str, str] = ("simcc_x", "simcc_y")):
    """A real, tiny SimCC-shaped ONNX model without metadata (pooled colour -> logits): runs in microseconds."""
    import numpy as np
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, height, width])
    rng = np.random.default_rng(0)
    inits = [helper.make_tensor("flat", TensorProto.INT64, [2], [0, 3])]
    nodes = [helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
             helper.make_node("Reshape", ["pooled", "flat"], ["colour"])]
    outs = []
    for axis, bins, output in zip("xy", (2 * width, 2 * height), outputs):
        outs.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", joints, bins]))
        inits += [helper.make_tensor(f"w{axis}", TensorProto.FLOAT, [3, joints * bins],
                                     rng.normal(size=3 * joints * bins).astype(np.float32)),
                  helper.make_tensor(f"s{axis}", TensorProto.INT64, [3], [0, joints, bins])]
        nodes += [helper.make_node("MatMul", ["colour", f"w{axis}"], [f"m{axis}"]),
                  helper.make_node("Reshape", [f"m{axis}", f"s{axis}"], [output])]
    return helper.make_model(helper.make_graph(nodes, "tiny", [x], outs, inits),
                             opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def tiny_onnx(path, *, privacy: dict, weights_sha256: str, height: int = 32, width: int = 24) -> None:
    """``simcc_onnx`` for our joints, with our metadata."""
    import onnx

    from dp_pose_zoo.runtime.metadata import FORMAT_VERSION, encode_metadata
    from dp_pose_zoo.skeleton import JOINT_NAMES

    model = simcc_onnx(height=height, width=width, joints=len(JOINT_NAMES))
    meta = encode_metadata({"format_version": FORMAT_VERSION, "privacy": privacy, "input_size": [height, width],
                            "split_ratio": 2.0, "joint_names": list(JOINT_NAMES),
                            "weights_sha256": weights_sha256, "precision": "fp32"})
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def make_release(folder, *, name: str = "tiny-dp", method: str = "dp-sgd", epsilon: float = 1.0,
                 delta: float | None = 1e-5, clipping_norm: float | None = 0.1, onnx: bool = True,
                 layout: str = "checkpoint", secrets: bool = True):
    """A checkpoint-shaped folder: fake safetensors bytes, config.json, a generated card, a real tiny ONNX.

    ``layout="checkpoint"`` puts the ONNX in ``onnx/`` (as ``dp-pose export``
    does); ``"export"`` is a bare folder with ``model.onnx`` + ``README.md``
    (the embedded default's shape). ``secrets`` adds training_state.pt and the
    privacy journal, which must never be uploaded.
    """
    import math
    from pathlib import Path

    from dp_pose_zoo.card import PrivacyBlock, render_card

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = bytes(range(256)) * 16 + name.encode()
    sha = hashlib.sha256(weights).hexdigest()
    public = {"name": "synthpose:public-train", "size": 100, "disjoint": True} if method == "pdp-sgd" else None
    block = PrivacyBlock(method=method, epsilon=epsilon, delta=delta, clipping_norm=clipping_norm,
                         strategy="scratch", epochs=1, steps=2, sample_rate=0.5 if method != "non-private" else None,
                         noise_multiplier=1.1 if method != "non-private" else None,
                         accountant="prv" if method != "non-private" else None,
                         projection_dim=8 if public else None, public_data=public)
    card = render_card(name=name, privacy=block, weights_sha256=sha, train_data="synthpose:private-train:16",
                       pckh={"Mean": 42.5, "Mean@0.1": 7.25}, eval_data="synthpose:private-test")
    (folder / "README.md").write_text(card)
    if layout == "checkpoint":
        (folder / "model.safetensors").write_bytes(weights)
        (folder / "config.json").write_text(json.dumps({
            "format_version": 1, "weights_sha256": sha, "recipe": {"name": name, "method": method},
            "privacy": None if math.isinf(epsilon) else {"epsilon": epsilon}}))
        if secrets:
            (folder / "training_state.pt").write_bytes(b"SECRET-SEED")
            (folder / "privacy_journal.jsonl").write_text('{"step": 1}\n')
    if onnx:
        out = folder / "onnx" if layout == "checkpoint" else folder
        out.mkdir(exist_ok=True)
        tiny_onnx(out / "model.onnx", privacy=block.to_dict(), weights_sha256=sha)
        if layout == "checkpoint":
            (out / "README.md").write_text(card)
    return folder


def fake_cache(root, repo_id: str, release, *, commit: str = "c" * 40, stamp: bool = True):
    """The Hub cache's layout (models--o--n/{refs,snapshots}) holding ``release``, as a pull leaves it:
    no training secrets, and the card stamped with the files' sha256 as ``dp-pose zoo push`` stamps it
    (``stamp=False``: the card as it is, for a release no push would accept)."""
    import shutil
    from pathlib import Path

    from dp_pose_zoo.hub import stamped_card

    storage = Path(root) / f"models--{repo_id.replace('/', '--')}"
    snapshot = storage / "snapshots" / commit
    shutil.copytree(release, snapshot, ignore=shutil.ignore_patterns("training_state.pt", "*.jsonl"))
    if stamp:
        (snapshot / "README.md").write_text(stamped_card(release).text)
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / "main").write_text(commit)
    return snapshot


# -- running the client in a fresh process -------------------------------------------------------
# huggingface_hub reads HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE when it is imported, so every Hub test
# runs the client in a subprocess with its own environment; ~/.cache is never touched.

# ``dp-pose`` with the zoo and card commands registered even before cli.py wires them (a no-op after).
CLI_RUNNER = """
import argparse, sys
from dp_pose_zoo import cli
from dp_pose_zoo.commands import card, zoo
_build = cli.build_parser
def build_parser():
    parser = _build()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for module, name in ((zoo, "zoo"), (card, "card")):
        if name not in sub.choices:
            module.add_parser(sub)
    return parser
cli.build_parser = build_parser
sys.exit(cli.main(sys.argv[1:]))
"""


def hub_env(tmp_path, hub: HubServer | None, **extra: str) -> dict[str, str]:
    """An environment for a client process: our server, a private HF_HOME, no telemetry, no progress bars."""
    import os
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_HOME=str(Path(tmp_path) / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1", HF_TOKEN="hf_test_token_not_secret",
               DP_POSE_ZOO_DEFAULT_DIR=str(Path(tmp_path) / "no-default"))
    if hub is not None:
        env["HF_ENDPOINT"] = hub.url
    env.update(extra)
    return env


def run_cli(argv: list[str], env: dict[str, str]):
    """``dp-pose ARGV`` in a subprocess; the CompletedProcess (text stdout/stderr)."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", CLI_RUNNER, *argv], env=env, capture_output=True, text=True,
                          timeout=120)


def run_python(code: str, env: dict[str, str]):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def release_files(folder) -> dict[str, bytes]:
    """What ``dp-pose zoo push`` would upload for ``folder``: its shipped files and the stamped card."""
    from pathlib import Path

    from dp_pose_zoo.hub import stamped_card

    card = stamped_card(folder)
    files = {p: (Path(folder) / p).read_bytes() for p in card.files}
    files["README.md"] = card.text.encode()
    return files
