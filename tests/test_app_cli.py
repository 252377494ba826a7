"""``dp-pose demo``: its flags and help, the missing-extra line, errors before serving, and the torch-free app.

The server itself runs in tests/test_app_browser.py; here ``launch`` is replaced
where a test only checks what the command hands it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dp_pose_zoo import cli

sys.path.insert(0, str(Path(__file__).parent))
from _blocked_imports import TRAINING_STACK, blocking_prelude  # noqa: E402


def test_demo_help_has_examples_and_loopback_default(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["demo", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "--host 0.0.0.0" in out and "default: 127.0.0.1" in out
    args = cli.build_parser().parse_args(["demo"])
    assert (args.model, args.host, args.port, args.share, args.threads) == ("default", "127.0.0.1", None, False, None)


def test_demo_is_listed_in_the_commands():
    out = subprocess.run([sys.executable, "-m", "dp_pose_zoo", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "demo" in out


@pytest.mark.parametrize("argv", [["--port", "0"], ["--port", "70000"], ["--threads", "0"], ["--port", "x"]])
def test_bad_flags_are_usage_errors(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["demo", *argv])
    assert exit_.value.code == 2 and "dp-pose demo: error: argument" in capsys.readouterr().err


def test_without_gradio_one_line_names_the_extra_and_exit_2():
    code = "import sys\nsys.modules['gradio'] = None  # as if not installed\nfrom dp_pose_zoo.cli import main\n" \
           "sys.exit(main(['demo']))\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == ['dp-pose demo: error: gradio is required for this; install it with: '
                     'pip install "dp-pose-zoo[app]"'], proc.stderr


@pytest.fixture
def launched(monkeypatch):
    """Replace the server by a recorder of what ``dp-pose demo`` asks of it."""
    pytest.importorskip("gradio")
    from dp_pose_zoo_app import ui

    calls = []
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    monkeypatch.setattr(ui, "launch", lambda **kwargs: calls.append(kwargs))
    return calls


def test_flags_reach_the_app_and_loopback_is_the_default(launched, capsys):
    assert cli.main(["demo"]) == 0
    workdir = launched[-1].pop("workdir")
    assert launched[-1] == {"model": "default", "host": "127.0.0.1", "port": None, "share": False, "threads": None}
    assert capsys.readouterr().err == ""
    assert not workdir.exists() and "GRADIO_TEMP_DIR" not in os.environ  # removed, and the env restored
    assert cli.main(["demo", "--host", "0.0.0.0", "--port", "8080", "--model", "runs/x", "--threads", "2"]) == 0
    launched[-1].pop("workdir")
    assert launched[-1] == {"model": "runs/x", "host": "0.0.0.0", "port": 8080, "share": False, "threads": 2}
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["dp-pose demo: serving on 0.0.0.0: anyone who reaches it can open the app and stream to it"]


def test_an_unknown_model_is_one_line_and_exit_2_before_serving(capsys, tmp_path):
    pytest.importorskip("gradio")
    assert cli.main(["demo", "--model", str(tmp_path / "nowhere")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dp-pose demo: error: ") and "nowhere" in lines[0]


def test_the_app_builds_and_runs_a_frame_without_torch(tmp_path):
    """The whole app layer (gradio page and core) with torch, timm, opacus, onnx unimportable."""
    pytest.importorskip("gradio")
    code = blocking_prelude(TRAINING_STACK) + textwrap.dedent("""
        import json
        import numpy as np
        from dp_pose_zoo_app import core, ui

        choices, key = core.choose(core.model_choices(cache_dir=sys.argv[1]), "default")
        loader = core.ModelLoader(choices, threads=1)
        app = ui.build_app(loader, key, out_root=sys.argv[1])
        frame = np.full((96, 64, 3), 128, np.uint8)
        out, stats = core.LiveSession()(frame, loader(key), model_key=key, people="whole frame",
                                        options=core.make_options(kpt_thr=0.0, smooth=True, anonymize="blur"))
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        print(json.dumps({"heavy": heavy, "people": stats.people, "shape": list(out.shape),
                          "blocks": type(app).__name__}))
    """)
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"heavy": [], "people": 1, "shape": [96, 64, 3], "blocks": "Blocks"}
