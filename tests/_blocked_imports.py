"""Code to put first in a child process's ``python -c`` so that importing chosen packages fails.

A meta-path finder raises ModuleNotFoundError for them, as on an edge box with only the base
install (huggingface_hub's check_imports idea). Shared by the torch-free tests of the runtime
(tests/test_torch_free.py) and of the app (tests/test_app_cli.py, tests/test_app_browser.py).
"""

from __future__ import annotations

import textwrap

# What the runtime and the app must do without: the training and export stack.
TRAINING_STACK = ("torch", "torchvision", "timm", "opacus", "onnx", "safetensors")

_PRELUDE = textwrap.dedent("""
    import sys

    BLOCKED = {blocked!r}

    class _NoHeavyDeps:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: torch-free test)", name=name)
            return None

    sys.meta_path.insert(0, _NoHeavyDeps())
""")


def blocking_prelude(blocked: tuple[str, ...]) -> str:
    """The prelude; the child then has ``BLOCKED`` (the tuple) to check ``sys.modules`` against."""
    return _PRELUDE.format(blocked=tuple(blocked))
