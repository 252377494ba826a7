"""Pieces the benchmarks share: the machine line, the load average, and MediaPipe run from its own venv.

MediaPipe is a benchmark-only dependency that never enters the project's
environment: a benchmark passes ``--mediapipe-python`` (the python of a venv made
with ``python3 -m venv /tmp/mpvenv && /tmp/mpvenv/bin/pip install mediapipe==0.10.14``)
and :func:`run_mediapipe` runs a script there, reading its last stdout line as JSON.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, ``"1.42, 3.15, 4.70"``."""
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` elsewhere), and the cores visible."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    name = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "")
    return f"{name or platform.processor() or platform.machine()}, {os.cpu_count()} cores visible"


def run_mediapipe(python: str | None, script: str, *args: str) -> tuple[dict | None, str]:
    """``(result, "ok")`` from ``python -c script *args`` (its last stdout line as JSON), or ``(None, why not)``."""
    if not python:
        return None, "not run (no --mediapipe-python)"
    proc = subprocess.run([python, "-c", script, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        return None, f"failed: {lines[-1] if lines else proc.returncode}"
    return json.loads(proc.stdout.strip().splitlines()[-1]), "ok"
