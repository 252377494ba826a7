"""``dp-pose zoo list|pull|push``: the model zoo, read from model cards.

Hub access goes through huggingface_hub, so HF_ENDPOINT, HF_HOME, HF_TOKEN and
HF_HUB_OFFLINE apply; the embedded default is found as in
:func:`dp_pose_zoo.zoo.default_dir` (DP_POSE_ZOO_DEFAULT_DIR overrides it).
"""

from __future__ import annotations

import argparse
import json

from ..card import format_epsilon

EPILOG = """examples:
  dp-pose zoo list                                  # embedded default + checkpoints in the Hub cache
  dp-pose zoo list --max-epsilon 1.0 --method pdp-sgd
  dp-pose zoo list --hub --json                     # also search the Hub (tag dp-pose-zoo)
  dp-pose zoo pull someone/tinyvit-dp-eps1          # download into the Hub cache, verify sha256 vs the card
  dp-pose zoo pull someone/tinyvit-dp-eps1@v1.0
  HF_HUB_OFFLINE=1 dp-pose zoo pull someone/tinyvit-dp-eps1    # re-verify the cached copy, no network
  dp-pose zoo push runs/demo someone/tinyvit-demo   # weights, config, card, ONNX exports; never training_state.pt

Every number shown comes from a model card. A pull that fails verification
(sha256, card missing or malformed, a DP card without epsilon, delta or C, a
card that disagrees with config.json or the ONNX metadata) is deleted from the
cache.
"""

COLUMNS = ("name", "method", "epsilon", "delta", "C", "strategy", "data", "PCKh", "size", "where")


def add_parser(subparsers) -> None:
    """Register ``zoo`` on the ``dp-pose`` subparsers."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser("zoo", help="list, pull and push checkpoints of the model zoo",
                              description="The model zoo: the embedded default, the Hub cache and the Hub.",
                              epilog=EPILOG, formatter_class=fmt)
    zsub = p.add_subparsers(dest="zoo_command", required=True, metavar="ACTION")

    q = zsub.add_parser("list", help="show every known checkpoint with its privacy and PCKh",
                        epilog=EPILOG, formatter_class=fmt)
    q.add_argument("--max-epsilon", type=float, metavar="EPS", help="only models with epsilon <= EPS")
    q.add_argument("--method", choices=("non-private", "dp-sgd", "pdp-sgd"), help="only this training method")
    q.add_argument("--hub", action="store_true", help="also search the Hub for repos tagged dp-pose-zoo")
    q.add_argument("--search", help="with --hub: only repo ids containing this text")
    q.add_argument("--json", action="store_true", help="one JSON list instead of the table")
    q.set_defaults(func=run_list)

    q = zsub.add_parser("pull", help="download OWNER/REPO[@revision] into the Hub cache and verify it",
                        epilog=EPILOG, formatter_class=fmt)
    q.add_argument("repo", metavar="OWNER/REPO[@REVISION]")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=run_pull)

    q = zsub.add_parser("push", help="upload a checkpoint folder to OWNER/REPO", epilog=EPILOG, formatter_class=fmt)
    q.add_argument("dir", metavar="MODEL", help="a checkpoint or export folder with README.md (any model "
                                                "reference: 'default', OWNER/REPO[@rev], a .onnx file's folder)")
    q.add_argument("repo", metavar="OWNER/REPO")
    q.add_argument("--private", action="store_true", help="create the repository as private")
    q.add_argument("--message", help="commit message")
    q.set_defaults(func=run_push)


def run(args) -> int:
    """Dispatch to the chosen action (for callers that do not use ``args.func``)."""
    return {"list": run_list, "pull": run_pull, "push": run_push}[args.zoo_command](args)


def run_list(args) -> int:
    from ..zoo import list_zoo

    entries = list_zoo(hub=args.hub, search=args.search, max_epsilon=args.max_epsilon, method=args.method)
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], indent=2))
        return 0
    if not entries:
        print("no models found")
        return 0
    rows = [_row(e.to_dict()) for e in entries]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(COLUMNS, widths)).rstrip())
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    return 0


def run_pull(args) -> int:
    from ..hub import pull
    from ..runtime.metadata import json_safe

    pulled = pull(args.repo)
    p = pulled.card.privacy
    if args.json:
        print(json.dumps({"repo": pulled.repo_id, "revision": pulled.commit, "path": str(pulled.path),
                          "method": p.method, "epsilon": json_safe(p.epsilon), "delta": p.delta,
                          "clipping_norm": p.clipping_norm, "verified": True}))
    else:
        print(f"{pulled.repo_id}@{pulled.commit[:12]}: verified ({p.method}, epsilon {format_epsilon(p.epsilon)}, "
              f"delta {p.delta}, C {p.clipping_norm})")
        print(f"path: {pulled.path}")
    return 0


def run_push(args) -> int:
    from ..hub import push
    from ..runtime.reference import resolve_reference

    commit = push(resolve_reference(args.dir).folder, args.repo, private=args.private, message=args.message)
    print(f"pushed {args.dir} to {args.repo} (commit {commit[:12]})")
    return 0


def _row(d: dict) -> list[str]:
    def fmt(x) -> str:
        return "-" if x is None else (f"{x:g}" if isinstance(x, float) else str(x))

    size = d["size"]
    size_text = "-" if size is None else (f"{size / 1e6:.1f}MB" if size >= 1e5 else f"{size / 1e3:.1f}kB")
    pckh = "-" if d["pckh"] is None else f"{d['pckh']:.2f}"
    eps = "-" if d["epsilon"] is None else format_epsilon(float(d["epsilon"]))
    return [d["name"], d["method"], eps, fmt(d["delta"]), fmt(d["clipping_norm"]),
            fmt(d["strategy"]), fmt(d["data"]), pckh, size_text, "+".join(d["where"])]
