"""The privacy ledger: what a DP run has spent, kept in every checkpoint.

:class:`PrivacyLedger` is the compact history (Opacus accountant style: one
``(noise_multiplier, sample_rate, steps)`` entry per phase) that a checkpoint
stores and a resumed run continues. :class:`LedgerJournal` is its crash-proof
companion: one fsync'ed JSON line per step, written before the step's noisy
update is applied, so no step that touched private data is ever forgotten.
Its lines form a hash chain whose end the checkpoint records, and
:func:`check_record` refuses a journal that does not back the checkpoint's
ledger (missing, cut short, edited, replaced), so it is never trusted blindly.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import PrivacyError
from . import accounting

if TYPE_CHECKING:  # pragma: no cover
    from ..card import PrivacyBlock

LEDGER_VERSION = 1
JOURNAL_VERSION = 2  # 2: every line carries a hash chained to the line before
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


_STEP_KEYS = {"step", "sample_rate", "noise_multiplier", "chain"}
_HEADER_KEYS = {"kind", "version", "accountant", "delta", "chain"}


def chain_hash(previous: str, content: str) -> str:
    """A journal line's hash: sha256 over the previous line's hash and this line's content.

    ``content`` is the line's JSON without its ``chain`` key (keys sorted), or
    a torn line's raw text; the header chains from ``""``. Editing, removing
    or inserting a line breaks the chain at that line.
    """
    return hashlib.sha256(f"{previous}\n{content}".encode("utf-8")).hexdigest()


def _content(entry: dict) -> str:
    return json.dumps({k: v for k, v in entry.items() if k != "chain"}, sort_keys=True)


@dataclass
class JournalReplay:
    """A journal as read: ``(sigma, q)`` per step, and ``hashes[i]``, the chain hash of line ``i + 1``."""

    steps: list[tuple[float, float]]
    hashes: list[str]
    ends_clean: bool

    def ledger(self, accountant: str, delta: float) -> PrivacyLedger:
        ledger = PrivacyLedger(accountant=accountant, delta=delta)
        for sigma, q in self.steps:
            ledger.record(sigma, q, 1)
        return ledger


class LedgerJournal:
    """Append-only journal: one JSON line per step, written and fsync'ed BEFORE the step's noisy update is applied, so a SIGKILL never loses a step that touched private data.

    Layout: a header line ``{"kind", "version", "accountant", "delta"}``, then
    one ``{"step", "noise_multiplier", "sample_rate"}`` line per step, with
    global step indices 0, 1, 2, ... in order. Every line also carries
    ``"chain"`` (:func:`chain_hash`), and a checkpoint records the line count
    and last hash (:meth:`mark`), so a journal that was edited, cut short or
    replaced is refused (:func:`check_record`) instead of trusted.

    A torn line (a write cut short by a crash) is counted as a step taken,
    since its line was being written before that step's update could happen.
    Its parameters are those of its fragment when they are complete there;
    a missing one takes the most expensive value recorded so far in the
    journal (the smallest sigma, the largest q); a torn first step with no
    readable parameters cannot be accounted and is refused. The next append
    terminates the torn fragment first, so a journal may hold torn lines
    before its end; each counts as one step and chains by its raw text.

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
        replay = read_journal(self.path, accountant=accountant, delta=self.delta)
        self._last_step = len(replay.steps) - 1
        self._hash = replay.hashes[-1]
        self._lines = len(replay.hashes)
        self._ends_clean = replay.ends_clean

    # -- writing

    def _create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        header = {"kind": JOURNAL_KIND, "version": JOURNAL_VERSION, "accountant": self.accountant,
                  "delta": self.delta}
        self._write(json.dumps({**header, "chain": chain_hash("", _content(header))}) + "\n")
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
        entry = {"step": step, "sample_rate": q, "noise_multiplier": sigma}
        link = chain_hash(self._hash, _content(entry))
        line = json.dumps({**entry, "chain": link}) + "\n"
        self._write(line if self._ends_clean else "\n" + line)
        self._last_step, self._hash, self._lines = step, link, self._lines + 1
        self._ends_clean = True

    # -- reading

    @property
    def last_step(self) -> int:
        """Index of the last journalled step (torn ones included); -1 when none."""
        return self._last_step

    def mark(self) -> dict:
        """What a checkpoint records of the journal: its line count (header included) and last chain hash."""
        return {"lines": self._lines, "sha256": self._hash}

    def ledger(self) -> PrivacyLedger:
        """Replay the journal into a :class:`PrivacyLedger` (torn lines counted as steps)."""
        return read_journal(self.path, accountant=self.accountant, delta=self.delta).ledger(
            self.accountant, self.delta)


def read_journal(path: str | os.PathLike, *, accountant: str, delta: float) -> JournalReplay:
    """Read and verify a journal: header, hash chain and step order; PrivacyError names the first bad line."""
    path = Path(path)
    raw = path.read_bytes()
    ends_clean = raw.endswith(b"\n")
    lines = raw.decode("utf-8", errors="replace").split("\n")
    if ends_clean:
        lines = lines[:-1]
    if not lines:
        raise PrivacyError(f"{path}: journal is empty (no header)")
    hashes = [_check_header(path, lines[0], len(lines) > 1 or ends_clean, accountant, delta)]
    steps: list[tuple[float, float]] = []
    worst: tuple[float, float] | None = None  # (smallest sigma, largest q) seen
    for lineno, text in enumerate(lines[1:], start=2):
        sigma, q, link = _parse_step(path, text, lineno, len(steps), hashes[-1], worst)
        worst = (sigma, q) if worst is None else (min(worst[0], sigma), max(worst[1], q))
        steps.append((sigma, q))
        hashes.append(link)
    return JournalReplay(steps, hashes, ends_clean)


def _check_header(path: Path, text: str, complete: bool, accountant: str, delta: float) -> str:
    """The header's chain hash, once it is whole, of this version, and of this accountant and delta."""
    try:
        header = json.loads(text)
    except json.JSONDecodeError:
        header = None
    if not complete or not isinstance(header, dict) or header.get("kind") != JOURNAL_KIND:
        raise PrivacyError(f"{path}: journal header is missing or damaged")
    if header.get("version") == 1:
        raise PrivacyError(f"{path}: journal version 1 (an older dp-pose-zoo) has no hash chain, so nothing shows "
                           "it is complete and unedited; it cannot be continued: train again into a new folder")
    if header.get("version") != JOURNAL_VERSION:
        raise PrivacyError(f"{path}: journal version {header.get('version')!r} is unsupported")
    if set(header) != _HEADER_KEYS or header["chain"] != chain_hash("", _content(header)):
        raise PrivacyError(f"{path}:1: journal header was edited (its hash does not match its content)")
    if header["accountant"] != accountant or header["delta"] != delta:
        raise PrivacyError(
            f"{path}: journal was started with accountant={header['accountant']!r}, delta={header['delta']!r}; "
            f"refusing to continue it with accountant={accountant!r}, delta={delta!r}"
        )
    return header["chain"]


def _parse_step(path: Path, text: str, lineno: int, expected: int, previous: str,
                worst: tuple[float, float] | None) -> tuple[float, float, str]:
    """``(sigma, q, chain hash)`` of one step line, or PrivacyError naming it."""
    try:
        entry = json.loads(text)
    except json.JSONDecodeError:
        sigma, q = _torn_step(path, text, lineno, worst)
        return sigma, q, chain_hash(previous, text)
    if not isinstance(entry, dict) or set(entry) != _STEP_KEYS:
        raise PrivacyError(f"{path}:{lineno}: journal line is malformed: {text[:80]!r}")
    if entry["chain"] != chain_hash(previous, _content(entry)):
        raise PrivacyError(f"{path}:{lineno}: journal line breaks the hash chain: it was edited, or a line "
                           "before it was removed or inserted")
    if entry["step"] != expected:
        raise PrivacyError(f"{path}:{lineno}: journal step {entry['step']!r} where {expected} was expected")
    sigma, q, _ = _validate_entry((entry["noise_multiplier"], entry["sample_rate"], 1), f"{path}:{lineno}")
    return sigma, q, entry["chain"]


def _torn_step(path: Path, text: str, lineno: int, worst: tuple[float, float] | None) -> tuple[float, float]:
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
            f"{path}:{lineno}: torn journal line {text[:80]!r} has no readable parameters and no "
            "earlier step to bound it; the privacy cost of this run cannot be accounted"
        )
    _validate_entry((sigma, q, 1), f"{path}:{lineno} (torn line)")
    return sigma, q


# ---------------------------------------------------------------- a checkpoint's record against its journal

def check_record(path: str | os.PathLike, record: object, *, progress_step: int) -> PrivacyLedger:
    """The ledger of a checkpoint's privacy record, once the journal at ``path`` is shown to back it.

    ``record`` is what the trainer stores in config.json (``ledger``,
    ``ledger_steps``, ``noise_multiplier``, ``sample_rate`` and the journal's
    ``mark``). Refused, with a PrivacyError naming the first bad line where
    there is one: a missing, empty or truncated journal; one whose hash chain
    breaks or whose recorded line is not the one the checkpoint saw; a step
    whose (sigma, q) differs from the ledger's (or, after the checkpoint, from
    the run's); a ledger with fewer steps than the progress says ran.
    """
    path = Path(path)
    if not isinstance(record, dict):
        raise PrivacyError(f"the checkpoint beside {path.name} has no privacy record to resume a DP run from")
    ledger = PrivacyLedger.from_state_dict(record.get("ledger"))
    sigma, q, _ = _validate_entry((record.get("noise_multiplier"), record.get("sample_rate"), 1), "privacy record")
    mark = record.get("journal")
    if not (isinstance(mark, dict) and isinstance(mark.get("lines"), int) and isinstance(mark.get("sha256"), str)):
        raise PrivacyError(f"the checkpoint's privacy record names no journal hash (written by an older dp-pose-zoo, "
                           f"or edited): nothing shows {path.name} is complete, so the run cannot be resumed")
    if record.get("ledger_steps") != ledger.steps or mark["lines"] != ledger.steps + 1:
        raise PrivacyError(f"the checkpoint's privacy record is inconsistent: ledger_steps "
                           f"{record.get('ledger_steps')!r}, journal lines {mark['lines']}, "
                           f"ledger {ledger.steps} steps")
    if ledger.steps < progress_step:
        raise PrivacyError(f"the checkpoint's ledger counts {ledger.steps} noisy steps but its progress says "
                           f"{progress_step} steps ran")
    if not path.is_file() or path.stat().st_size == 0:
        raise PrivacyError(f"{path}: the privacy journal is missing or empty; the checkpoint recorded {mark['lines']} "
                           f"lines ({ledger.steps} steps): refusing to lose them")
    replay = read_journal(path, accountant=ledger.accountant, delta=ledger.delta)
    if len(replay.hashes) < mark["lines"]:
        raise PrivacyError(f"{path}: the journal has {len(replay.hashes)} lines ({len(replay.steps)} steps) but the "
                           f"checkpoint recorded {mark['lines']} ({ledger.steps} steps): lines were removed")
    _check_steps(path, replay.steps, ledger, after=(sigma, q))
    if replay.hashes[mark["lines"] - 1] != mark["sha256"]:
        raise PrivacyError(f"{path}:{mark['lines']}: not the line the checkpoint recorded (its hash differs): the "
                           "journal was rewritten or replaced")
    return ledger


def _check_steps(path: Path, steps: list[tuple[float, float]], ledger: PrivacyLedger,
                 after: tuple[float, float]) -> None:
    """Each journaled step's (sigma, q) is the ledger's, and past the ledger the run's (``after``)."""
    expected = [(sigma, q) for sigma, q, count in ledger.history for _ in range(count)]
    for i, got in enumerate(steps):
        want, whose = (expected[i], "the checkpoint's ledger has") if i < len(expected) else (after, "the run uses")
        if got != want:
            raise PrivacyError(f"{path}:{i + 2}: step {i} was journaled with noise multiplier {got[0]!r} and "
                               f"sample rate {got[1]!r}; {whose} {want[0]!r} and {want[1]!r}")


def check_claim(claim: "PrivacyBlock", record: dict, ledger: PrivacyLedger) -> None:
    """Refuse a card's privacy block (``claim``) that says other than the ledger it was written from.

    Steps, noise multiplier, sample rate, delta and accountant must be the
    record's; epsilon is recomputed from the ledger, so an epsilon edited in
    both the card and config.json is caught too.
    """
    spent = ledger.epsilon()
    checks = [("steps", claim.steps, ledger.steps),
              ("noise_multiplier", claim.noise_multiplier, record["noise_multiplier"]),
              ("sample_rate", claim.sample_rate, record["sample_rate"]), ("delta", claim.delta, ledger.delta),
              ("accountant", claim.accountant, ledger.accountant), ("epsilon", claim.epsilon, spent)]
    wrong = [f"{name} {said!r} (the ledger: {true!r})" for name, said, true in checks if not _agrees(said, true)]
    if wrong:
        raise PrivacyError("the card's privacy block disagrees with its ledger: " + "; ".join(wrong))


def _agrees(said: object, true: object) -> bool:
    if isinstance(true, float) and isinstance(said, (int, float)) and not isinstance(said, bool):
        return math.isclose(said, true, rel_tol=1e-9)
    return said == true
