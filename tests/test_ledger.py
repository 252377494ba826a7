"""The privacy ledger and its crash-proof journal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from dp_pose_zoo.errors import PrivacyError
from dp_pose_zoo.training.accounting import epsilon_for, epsilon_for_history, make_accountant
from dp_pose_zoo.training.ledger import LedgerJournal, PrivacyLedger


def test_record_merges_and_counts():
    led = PrivacyLedger(accountant="rdp", delta=1e-5)
    assert led.steps == 0 and led.epsilon() == 0.0
    for _ in range(3):
        led.record(1.0, 0.01)
    led.record(1.0, 0.01, steps=7)
    led.record(2.0, 0.01)
    led.record(1.0, 0.01)
    assert led.history == [(1.0, 0.01, 10), (2.0, 0.01, 1), (1.0, 0.01, 1)]
    assert led.steps == 12


def test_single_phase_epsilon_equals_epsilon_for():
    led = PrivacyLedger(accountant="rdp", delta=1e-5)
    led.record(1.1, 0.02, steps=300)
    assert led.epsilon() == epsilon_for(noise_multiplier=1.1, sample_rate=0.02, steps=300, delta=1e-5,
                                        accountant="rdp")
    assert led.epsilon(1e-3) < led.epsilon()


@pytest.mark.parametrize("acc", ["rdp", "prv", "prv-rel"])
def test_two_phase_epsilon(acc):
    led = PrivacyLedger(accountant=acc, delta=1e-5)
    led.record(1.0, 0.02, steps=200)
    led.record(2.0, 0.02, steps=200)
    direct = make_accountant(acc)
    direct.history = [(1.0, 0.02, 200), (2.0, 0.02, 200)]
    both = led.epsilon()
    assert both == pytest.approx(direct.get_epsilon(delta=1e-5), rel=1e-9)
    first = epsilon_for(noise_multiplier=1.0, sample_rate=0.02, steps=200, delta=1e-5, accountant=acc)
    all_low = epsilon_for(noise_multiplier=1.0, sample_rate=0.02, steps=400, delta=1e-5, accountant=acc)
    assert first < both < all_low


def test_an_old_prv_ledger_recomputes_to_opacus_default_prv():
    """Checkpoints before prv-rel recorded "prv": their epsilon stays Opacus' PRVAccountant at its defaults."""
    from opacus.accountants import PRVAccountant

    state = {"version": 1, "accountant": "prv", "delta": 1e-5, "history": [[1.2, 0.03, 50], [2.0, 0.03, 70]]}
    opacus_prv = PRVAccountant()
    opacus_prv.history = [(1.2, 0.03, 50), (2.0, 0.03, 70)]
    assert PrivacyLedger.from_state_dict(state).epsilon() == opacus_prv.get_epsilon(delta=1e-5)
    tight = PrivacyLedger.from_state_dict(state | {"accountant": "prv-rel"})
    assert tight.accountant == "prv-rel" and tight.epsilon() < opacus_prv.get_epsilon(delta=1e-5)


def test_state_dict_round_trip():
    led = PrivacyLedger(accountant="prv", delta=1e-5)
    led.record(0.9, 0.0128, steps=5)
    led.record(1.3, 1 / 3)
    state = json.loads(json.dumps(led.state_dict()))
    assert state == {"version": 1, "accountant": "prv", "delta": 1e-5, "history": [[0.9, 0.0128, 5], [1.3, 1 / 3, 1]]}
    back = PrivacyLedger.from_state_dict(state)
    assert back == led


GOOD = {"version": 1, "accountant": "rdp", "delta": 1e-5, "history": [[1.0, 0.01, 5]]}


@pytest.mark.parametrize("patch,match", [
    ({"version": 2}, "version 2"),
    ({"accountant": "gdp"}, "'gdp' is unknown"),
    ({"delta": 1.5}, "delta=1.5"),
    ({"history": [[1.0, 0.01, -3]]}, "steps=-3"),
    ({"history": [[1.0, 0.01, 0]]}, "steps=0"),
    ({"history": [[1.0, 0.0, 5]]}, "sample_rate=0.0"),
    ({"history": [[1.0, 1.2, 5]]}, "sample_rate=1.2"),
    ({"history": [[0.0, 0.01, 5]]}, "noise_multiplier=0.0"),
    ({"history": [[1.0, 0.01]]}, "malformed"),
    ({"history": ["x"]}, "malformed"),
    ({"history": {"a": 1}}, "must be a list"),
])
def test_from_state_dict_validation(patch, match):
    with pytest.raises(PrivacyError, match=match):
        PrivacyLedger.from_state_dict(GOOD | patch)
    with pytest.raises(PrivacyError, match="lacks history"):
        PrivacyLedger.from_state_dict({k: v for k, v in GOOD.items() if k != "history"})


def test_journal_append_reopen(tmp_path):
    path = tmp_path / "privacy.jsonl"
    j = LedgerJournal(path, accountant="rdp", delta=1e-5)
    assert j.last_step == -1 and j.ledger().steps == 0
    for i in range(5):
        j.append(1.0, 0.01, i)
    again = LedgerJournal(path, accountant="rdp", delta=1e-5)
    assert again.last_step == 4
    assert again.ledger().history == [(1.0, 0.01, 5)]
    with pytest.raises(PrivacyError, match="next step must be 5"):
        again.append(1.0, 0.01, 4)
    with pytest.raises(PrivacyError, match="next step must be 5"):
        again.append(1.0, 0.01, 6)
    with pytest.raises(PrivacyError, match="next step must be 5"):
        again.append(1.0, 0.01, 0)
    again.append(1.0, 0.01, 5)
    assert LedgerJournal(path, accountant="rdp", delta=1e-5).ledger().steps == 6


def test_journal_header_mismatch(tmp_path):
    path = tmp_path / "privacy.jsonl"
    LedgerJournal(path, accountant="rdp", delta=1e-5).append(1.0, 0.01, 0)
    with pytest.raises(PrivacyError, match="delta=1e-06"):
        LedgerJournal(path, accountant="rdp", delta=1e-6)
    with pytest.raises(PrivacyError, match="accountant='prv'"):
        LedgerJournal(path, accountant="prv", delta=1e-5)
    path.write_text('{"kind": "something else"}\n')
    with pytest.raises(PrivacyError, match="header"):
        LedgerJournal(path, accountant="rdp", delta=1e-5)


def test_torn_last_line_counts_as_a_step(tmp_path):
    path = tmp_path / "privacy.jsonl"
    j = LedgerJournal(path, accountant="rdp", delta=1e-5)
    for i in range(3):
        j.append(1.0, 0.01, i)
    with open(path, "a") as f:
        f.write('{"step": 3, "sample_rate": 0.0')  # torn in the middle of q
    j2 = LedgerJournal(path, accountant="rdp", delta=1e-5)
    assert j2.ledger().steps == 4 and j2.last_step == 3
    assert j2.ledger().history == [(1.0, 0.01, 4)]  # worst seen q, not the cut-short 0.0
    j2.append(1.0, 0.01, 4)  # the resumed run continues after the torn step
    led = LedgerJournal(path, accountant="rdp", delta=1e-5).ledger()
    assert led.steps == 5


def test_torn_line_keeps_its_complete_fields(tmp_path):
    path = tmp_path / "privacy.jsonl"
    j = LedgerJournal(path, accountant="rdp", delta=1e-5)
    j.append(1.0, 0.01, 0)
    with open(path, "a") as f:
        f.write('{"step": 1, "sample_rate": 0.05, "noise_multiplier": 0.')
    assert LedgerJournal(path, accountant="rdp", delta=1e-5).ledger().history == [(1.0, 0.01, 1), (1.0, 0.05, 1)]


def test_torn_first_step_without_parameters_is_refused(tmp_path):
    path = tmp_path / "privacy.jsonl"
    LedgerJournal(path, accountant="rdp", delta=1e-5)
    with open(path, "a") as f:
        f.write('{"step": 0, "sam')
    with pytest.raises(PrivacyError, match="cannot be accounted"):
        LedgerJournal(path, accountant="rdp", delta=1e-5)


def test_journal_survives_sigkill(tmp_path):
    path = tmp_path / "privacy.jsonl"
    script = textwrap.dedent(f"""
        from dp_pose_zoo.training.ledger import LedgerJournal
        j = LedgerJournal({str(path)!r}, accountant="prv", delta=1e-5)
        i = 0
        while True:
            j.append(1.0 + (i // 7) * 0.1, 0.01, i)
            i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if path.exists() and path.read_bytes().count(b"\n") >= 31:
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    raw = path.read_bytes()
    lines = [line for line in raw.split(b"\n") if line]
    assert len(lines) - 1 >= 30
    led = LedgerJournal(path, accountant="prv", delta=1e-5).ledger()
    assert led.steps == len(lines) - 1


# -- the hash chain, and a checkpoint's record against its journal

def _journal(path, steps: int = 5, sigma: float = 1.0, q: float = 0.01) -> LedgerJournal:
    j = LedgerJournal(path, accountant="rdp", delta=1e-5)
    for i in range(steps):
        j.append(sigma, q, i)
    return j


def _record(j: LedgerJournal) -> dict:
    """The privacy record a checkpoint stores at this point of the run (as the trainer writes it)."""
    ledger = j.ledger()
    return {"noise_multiplier": 1.0, "sample_rate": 0.01, "ledger_steps": ledger.steps,
            "ledger": ledger.state_dict(), "journal": j.mark()}


def _rechained(lines: list[dict]) -> str:
    """A journal's text with every chain hash recomputed: a forger who knows the format."""
    import hashlib

    previous, out = "", []
    for entry in lines:
        body = {k: v for k, v in entry.items() if k != "chain"}
        previous = hashlib.sha256(f"{previous}\n{json.dumps(body, sort_keys=True)}".encode()).hexdigest()
        out.append(json.dumps({**body, "chain": previous}))
    return "\n".join(out) + "\n"


def test_every_line_chains_to_the_one_before(tmp_path):
    path = tmp_path / "privacy.jsonl"
    j = _journal(path, 3)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 4 and all(len(line["chain"]) == 64 for line in lines)
    assert len({line["chain"] for line in lines}) == 4
    assert j.mark() == {"lines": 4, "sha256": lines[-1]["chain"]}
    assert path.read_text() == _rechained(lines)  # the format is exactly the documented one
    assert LedgerJournal(path, accountant="rdp", delta=1e-5).mark() == j.mark()


@pytest.mark.parametrize("edit,line", [
    (lambda ls: ls.__setitem__(3, ls[3].replace('"noise_multiplier": 1.0', '"noise_multiplier": 50.0')), 4),
    (lambda ls: ls.__delitem__(2), 3),
    (lambda ls: ls.insert(2, ls[2]), 4),
    (lambda ls: ls.__setitem__(0, ls[0].replace('"rdp"', '"prv"')), 1),
])
def test_an_edited_removed_or_inserted_line_is_refused_by_number(tmp_path, edit, line):
    path = tmp_path / "privacy.jsonl"
    _journal(path)
    lines = path.read_text().splitlines()
    edit(lines)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PrivacyError, match=f"privacy.jsonl:{line}: "):
        LedgerJournal(path, accountant="rdp", delta=1e-5)


def test_a_torn_line_is_chained_by_its_text(tmp_path):
    path = tmp_path / "privacy.jsonl"
    _journal(path, 2)
    with open(path, "a") as f:
        f.write('{"step": 2, "sample_rate": 0.01, "noise_mu')
    j = LedgerJournal(path, accountant="rdp", delta=1e-5)
    j.append(1.0, 0.01, 3)
    assert LedgerJournal(path, accountant="rdp", delta=1e-5).ledger().steps == 4
    path.write_text(path.read_text().replace('"noise_mu\n', '"noise_m\n'))  # the fragment edited
    with pytest.raises(PrivacyError, match="privacy.jsonl:5: .*hash chain"):
        LedgerJournal(path, accountant="rdp", delta=1e-5)


def test_a_journal_of_the_previous_version_is_refused_clearly(tmp_path):
    path = tmp_path / "privacy.jsonl"
    path.write_text('{"kind": "dp-pose-zoo privacy journal", "version": 1, "accountant": "rdp", "delta": 1e-05}\n'
                    '{"step": 0, "sample_rate": 0.01, "noise_multiplier": 1.0}\n')
    with pytest.raises(PrivacyError, match="version 1 .* no hash chain"):
        LedgerJournal(path, accountant="rdp", delta=1e-5)


def test_check_record_accepts_the_journal_that_backs_it_and_steps_after_it(tmp_path):
    from dp_pose_zoo.training.ledger import check_record

    path = tmp_path / "privacy.jsonl"
    j = _journal(path, 8)
    record = _record(j)
    assert check_record(path, record, progress_step=8).steps == 8
    for i in range(8, 10):  # a crash after the checkpoint: more steps on the journal, never fewer
        j.append(1.0, 0.01, i)
    assert check_record(path, record, progress_step=8).history == [(1.0, 0.01, 8)]


def _tamper(path, how: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    if how == "delete":
        path.unlink()
    elif how == "empty":
        path.write_text("")
    elif how == "header only":
        path.write_text(lines[0])
    elif how == "drop last lines":
        path.write_text("".join(lines[:-3]))
    elif how == "sigma 50, rechained":
        entries = [json.loads(line) for line in lines]
        entries[3]["noise_multiplier"] = 50.0
        path.write_text(_rechained(entries))
    elif how == "sigma 50 after the checkpoint, rechained":
        entries = [json.loads(line) for line in lines]
        entries[-1]["noise_multiplier"] = 50.0
        path.write_text(_rechained(entries))
    elif how == "replaced by a shorter run's journal":
        path.unlink()
        _journal(path, 4)


@pytest.mark.parametrize("how,match", [
    ("delete", "missing or empty"),
    ("empty", "missing or empty"),
    ("header only", "has 1 lines .* recorded 9"),
    ("drop last lines", "has 8 lines .* recorded 9"),
    ("sigma 50, rechained", r"privacy.jsonl:4: step 2 was journaled with noise multiplier 50.0 .*; the checkpoint's ledger has 1.0"),
    ("sigma 50 after the checkpoint, rechained", r"privacy.jsonl:11: step 9 .* 50.0 and sample rate 0.01; the run uses 1.0"),
    ("replaced by a shorter run's journal", "has 5 lines"),
])
def test_check_record_refuses_a_journal_that_lost_or_changed_steps(tmp_path, how, match):
    """The issue's cases: kill after a checkpoint at step 8 (two more steps journaled), then tamper."""
    from dp_pose_zoo.training.ledger import check_record

    path = tmp_path / "privacy.jsonl"
    j = _journal(path, 8)
    record = _record(j)
    j.append(1.0, 0.01, 8)
    j.append(1.0, 0.01, 9)
    _tamper(path, how)
    with pytest.raises(PrivacyError, match=match) as err:
        check_record(path, record, progress_step=8)
    assert "\n" not in str(err.value)


def test_check_record_refuses_an_inconsistent_record(tmp_path):
    from dp_pose_zoo.training.ledger import check_record

    record = _record(_journal(tmp_path / "fresh.jsonl", 8))
    with pytest.raises(PrivacyError, match="ledger counts 8 noisy steps but its progress says 9"):
        check_record(tmp_path / "fresh.jsonl", record, progress_step=9)
    with pytest.raises(PrivacyError, match="names no journal hash"):
        check_record(tmp_path / "fresh.jsonl", {k: v for k, v in record.items() if k != "journal"}, progress_step=8)
    with pytest.raises(PrivacyError, match="inconsistent"):
        check_record(tmp_path / "fresh.jsonl", {**record, "ledger_steps": 12}, progress_step=8)
    with pytest.raises(PrivacyError, match="no privacy record"):
        check_record(tmp_path / "fresh.jsonl", None, progress_step=8)
