"""The privacy ledger: what a DP run has spent, kept in every checkpoint.

:class:`PrivacyLedger` is the compact history (Opacus accountant style: one
``(noise_multiplier, sample_rate, steps)`` entry per phase) that a checkpoint
stores and a resumed run continues. :class:`LedgerJournal` is its crash-proof
companion: one fsync'ed JSON line per step, written before the step's noisy
update is applied, so no step that touched private data is ever forgotten.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PrivacyError
from . import accounting

LEDGER_VERSION = 1
JOURNAL_VERSION = 1
JOURNAL_KIND = "dp-pose-zoo privacy journal"


def _validate_entry(entry: object, where: str) -> tuple[float, float, int]:
    """One history entry as ``(sigma, q, steps)``, or a PrivacyError saying what is wrong."""
    if not isinstance(entry, (list, tuple)) or len(entry) != 3:
        raise PrivacyError(f"{where}: entry {entry!r} is malformed; expected [noise_multiplier, sample_rate, steps]")
    sigma, q, steps = entry
    try:
        accounting.check_noise_multiplier(sigma)
        accounting.check_sample_rate(q)
        accounting.check_steps(steps)
    except PrivacyError as e:
        raise PrivacyError(f"{where}: {e}") from None
    return float(sigma), float(q), int(steps)


@dataclass
class PrivacyLedger:
    """Serialisable privacy history of one run; consecutive equal (sigma, q) phases are merged."""

    accountant: str
    delta: float
    history: list[tuple[float, float, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        accounting.check_accountant(self.accountant)
        accounting.check_delta_range(self.delta)
        entries, self.history = list(self.history), []
        for i, entry in enumerate(entries):
            self.record(*_validate_entry(entry, f"ledger history[{i}]"))

    def record(self, noise_multiplier: float, sample_rate: float, steps: int = 1) -> None:
        """Add ``steps`` steps taken with this (sigma, q), merging with the last phase if equal."""
        sigma, q, steps = _validate_entry((noise_multiplier, sample_rate, steps), "ledger.record")
        if self.history and self.history[-1][:2] == (sigma, q):
            self.history[-1] = (sigma, q, self.history[-1][2] + steps)
        else:
            self.history.append((sigma, q, steps))

    @property
    def steps(self) -> int:
        """Total number of noisy steps recorded."""
        return sum(t for _, _, t in self.history)

    def epsilon(self, delta: float | None = None) -> float:
        """Epsilon spent over the whole history (0.0 if empty), at ``delta`` or the ledger's delta."""
        return accounting.epsilon_for_history(
            self.history, delta=self.delta if delta is None else delta, accountant=self.accountant
        )

    def state_dict(self) -> dict:
        """A JSON-serialisable snapshot (floats survive a JSON round trip exactly)."""
        return {
            "version": LEDGER_VERSION,
            "accountant": self.accountant,
            "delta": self.delta,
            "history": [[sigma, q, steps] for sigma, q, steps in self.history],
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> "PrivacyLedger":
        """Rebuild a ledger, refusing anything that is not exactly what :meth:`state_dict` writes."""
        if not isinstance(state, dict):
            raise PrivacyError(f"ledger state must be a dict, got {type(state).__name__}")
        missing = [k for k in ("version", "accountant", "delta", "history") if k not in state]
        if missing:
            raise PrivacyError(f"ledger state lacks {', '.join(missing)}")
        if state["version"] != LEDGER_VERSION:
            raise PrivacyError(f"ledger state version {state['version']!r} is unsupported; expected {LEDGER_VERSION}")
        if state["accountant"] not in accounting.ACCOUNTANTS:
            raise PrivacyError(
                f"ledger accountant {state['accountant']!r} is unknown; allowed: {', '.join(accounting.ACCOUNTANTS)}"
            )
        if not isinstance(state["history"], list):
            raise PrivacyError(f"ledger history must be a list, got {type(state['history']).__name__}")
        history = [_validate_entry(e, f"ledger history[{i}]") for i, e in enumerate(state["history"])]
        return cls(accountant=state["accountant"], delta=state["delta"], history=history)


# ---------------------------------------------------------------- journal

_FIELD_RE = {
    # A field counts only when its terminator follows, so a number cut short
    # by a torn write is never read as a smaller (or larger) value.
    "sample_rate": re.compile(r'"sample_rate":\s*([0-9.eE+-]+)\s*[,}]'),
    "noise_multiplier": re.compile(r'"noise_multiplier":\s*([0-9.eE+-]+)\s*[,}]'),
}


class LedgerJournal:
    """Append-only journal: one JSON line per step, written and fsync'ed BEFORE the step's noisy update is applied, so a SIGKILL never loses a step that touched private data.

    Layout: a header line ``{"kind", "version", "accountant", "delta"}``, then
    one ``{"step", "noise_multiplier", "sample_rate"}`` line per step, with
    global step indices 0, 1, 2, ... in order.

    A torn line (a write cut short by a crash) is counted as a step taken,
    since its line was being written before that step's update could happen.
    Its parameters are those of its fragment when they are complete there;
    a missing one takes the most expensive value recorded so far in the
    journal (the smallest sigma, the largest q); a torn first step with no
    readable parameters cannot be accounted and is refused. The next append
    terminates the torn fragment first, so a journal may hold torn lines
    before its end; each counts as one step.

    A journal has a single writer (the training process): the last step is
    cached at open time, not re-read at each append.
    """

    def __init__(self, path: str | os.PathLike, *, accountant: str, delta: float):
        accounting.check_accountant(accountant)
        accounting.check_delta_range(delta)
        self.path = Path(path)
        self.accountant = accountant
        self.delta = float(delta)
        if not self.path.exists() or self.path.stat().st_size == 0:
            self._create()
        ledger, last_step, ends_clean = self._replay()
        self._last_step = last_step
        self._ends_clean = ends_clean

    # -- writing

    def _header(self) -> dict:
        return {"kind": JOURNAL_KIND, "version": JOURNAL_VERSION, "accountant": self.accountant, "delta": self.delta}

    def _create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write(json.dumps(self._header()) + "\n")
        # fsync the directory too, so the new file's entry survives a crash
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _write(self, text: str) -> None:
        """One O_APPEND write of ``text``, then fsync: durable before we return."""
        data = text.encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            os.close(fd)

    def append(self, noise_multiplier: float, sample_rate: float, step: int) -> None:
        """Journal global step ``step``; call it before applying that step's noisy update.

        ``step`` must be the last journalled step + 1: a resumed run continues
        the count, it never restarts it nor skips ahead.
        """
        sigma, q, _ = _validate_entry((noise_multiplier, sample_rate, 1), "journal.append")
        if isinstance(step, bool) or not isinstance(step, int) or step != self._last_step + 1:
            raise PrivacyError(
                f"journal step {step!r} refused: the next step must be {self._last_step + 1} "
                "(a resumed run continues the count, never restarts or skips it)"
            )
        line = json.dumps({"step": step, "sample_rate": q, "noise_multiplier": sigma}) + "\n"
        self._write(line if self._ends_clean else "\n" + line)
        self._last_step = step
        self._ends_clean = True

    # -- reading

    @property
    def last_step(self) -> int:
        """Index of the last journalled step (torn ones included); -1 when none."""
        return self._last_step

    def ledger(self) -> PrivacyLedger:
        """Replay the journal into a :class:`PrivacyLedger` (torn lines counted as steps)."""
        return self._replay()[0]

    def _replay(self) -> tuple[PrivacyLedger, int, bool]:
        raw = self.path.read_bytes()
        ends_clean = raw.endswith(b"\n")
        lines = raw.decode("utf-8", errors="replace").split("\n")
        if ends_clean:
            lines = lines[:-1]
        if not lines:
            raise PrivacyError(f"{self.path}: journal is empty (no header)")
        self._check_header(lines[0], complete=len(lines) > 1 or ends_clean)
        ledger = PrivacyLedger(accountant=self.accountant, delta=self.delta)
        worst: tuple[float, float] | None = None  # (smallest sigma, largest q) seen
        for lineno, text in enumerate(lines[1:], start=2):
            expected = ledger.steps
            sigma, q = self._parse_step(text, lineno, expected, worst)
            worst = (sigma, q) if worst is None else (min(worst[0], sigma), max(worst[1], q))
            ledger.record(sigma, q, 1)
        return ledger, ledger.steps - 1, ends_clean

    def _check_header(self, text: str, *, complete: bool) -> None:
        try:
            header = json.loads(text)
        except json.JSONDecodeError:
            header = None
        if not complete or not isinstance(header, dict) or header.get("kind") != JOURNAL_KIND:
            raise PrivacyError(f"{self.path}: journal header is missing or damaged")
        if header.get("version") != JOURNAL_VERSION:
            raise PrivacyError(f"{self.path}: journal version {header.get('version')!r} is unsupported")
        if header.get("accountant") != self.accountant or header.get("delta") != self.delta:
            raise PrivacyError(
                f"{self.path}: journal was started with accountant={header.get('accountant')!r}, "
                f"delta={header.get('delta')!r}; refusing to continue it with accountant={self.accountant!r}, "
                f"delta={self.delta!r}"
            )

    def _parse_step(self, text: str, lineno: int, expected: int,
                    worst: tuple[float, float] | None) -> tuple[float, float]:
        try:
            entry = json.loads(text)
        except json.JSONDecodeError:
            return self._torn_step(text, lineno, worst)
        if not isinstance(entry, dict) or set(entry) != {"step", "sample_rate", "noise_multiplier"}:
            raise PrivacyError(f"{self.path}:{lineno}: journal line is malformed: {text[:80]!r}")
        if entry["step"] != expected:
            raise PrivacyError(f"{self.path}:{lineno}: journal step {entry['step']!r} where {expected} was expected")
        sigma, q, _ = _validate_entry((entry["noise_multiplier"], entry["sample_rate"], 1), f"{self.path}:{lineno}")
        return sigma, q

    def _torn_step(self, text: str, lineno: int, worst: tuple[float, float] | None) -> tuple[float, float]:
        """Conservative parameters for a torn line: its own complete fields, else the worst seen."""
        found = {}
        for name, pattern in _FIELD_RE.items():
            match = pattern.search(text)
            if match:
                try:
                    found[name] = float(match.group(1))
                except ValueError:
                    pass
        sigma = found.get("noise_multiplier", worst[0] if worst else None)
        q = found.get("sample_rate", worst[1] if worst else None)
        if sigma is None or q is None or not math.isfinite(sigma) or not math.isfinite(q):
            raise PrivacyError(
                f"{self.path}:{lineno}: torn journal line {text[:80]!r} has no readable parameters and no "
                "earlier step to bound it; the privacy cost of this run cannot be accounted"
            )
        _validate_entry((sigma, q, 1), f"{self.path}:{lineno} (torn line)")
        return sigma, q
