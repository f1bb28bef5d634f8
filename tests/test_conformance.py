"""Conformance with the REAL reducer: the real bot's own backtester, recorded with its real
``state_machine.py`` outcomes (../shared/upstream-recordings/backtest-day1.msgpack.gz, 9,912
transitions), replayed with ``--authoritative recorded`` against our Haskell port and our Python
reference. Exact comparison: shadowdiff's default rules have no tolerance (checked below), and a second
pass compares every recorded outcome with ours type for type and bit for bit, which the diff's exact
rule (ints and floats by value, like the bot's own ``==``) does not.

The mutants of DOGE_REDUCER.md section 9 prove the test has teeth: the recording catches the eviction
fee grouping; the wire-type mutant is caught by the type-for-type pass on generated streams
(tests/test_bitexact.py, tests/test_regressions.py).
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from conftest import ROOT
from shadowdiff_doge.context import doge_context
from shadowdiff_doge.domain import DogeDomain
from shadowdiff_doge.inprocess import InProcessReducer
from test_bitexact import first_difference, same

from shadowdiff.core.diff import Rules
from shadowdiff.model import Context, Event
from shadowdiff.shadow.client import SubprocessReducer
from shadowdiff.wire.codec import apply_delta

DAY = "backtest-day1.msgpack.gz"
TRANSITIONS = 9_912
PY_SHADOW = f"{sys.executable} -m shadowdiff_doge.pyserver --msgpack"


def replay(recording: Path, tmp_path: Path, *shadow: str) -> tuple[int, dict[str, Any], str]:
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "shadowdiff", "replay", str(recording), "--authoritative", "recorded",
         *(["--shadow", *shadow] if shadow else []), "--report", str(report)],
        capture_output=True, text=True, cwd=ROOT, timeout=600, check=False,
    )  # fmt: skip
    return done.returncode, json.loads(report.read_text()), done.stdout + done.stderr


def test_the_default_rules_are_exact() -> None:
    """No --rules: the DOGE domain adds no tolerance, so every number is compared exactly."""
    assert DogeDomain().default_rules() == Rules()


@pytest.mark.parametrize("shadow", [(), (PY_SHADOW,)], ids=["haskell-port", "python-reference"])
def test_the_real_bots_day_replays_with_no_divergence(
    upstream_recordings: Path, haskell_exe: Path, tmp_path: Path, shadow: tuple[str, ...]
) -> None:
    code, report, output = replay(upstream_recordings / DAY, tmp_path, *shadow)
    summary = report["summary"]
    assert code == 0, output
    assert summary["divergences"] == 0 and summary["failures"] == 0 and summary["verdict"] == "pass"
    assert summary["checks"]["shadow"]["transition"] == TRANSITIONS == summary["steps"]
    assert summary["checks"]["shadow"]["invariants"] == TRANSITIONS
    expected = "doge-core-exe" if not shadow else "shadowdiff_doge.pyserver"
    assert expected in report["run"]["shadow"] or expected in output


def test_the_recording_catches_the_old_eviction_fee_grouping(
    upstream_recordings: Path, mutant_exe: Path, tmp_path: Path
) -> None:
    mutant = f"{mutant_exe} --msgpack --mutant evict_fee_old_grouping"
    code, report, output = replay(upstream_recordings / DAY, tmp_path, mutant)
    assert code == 1, output
    assert report["summary"]["divergences"] == 14  # the 14 steps the issue measured
    signatures = {c["signature"] for c in report["clusters"]}
    assert "transition.state|TimerTick|completed_cycles[*].exit_fee" in signatures


# ----------------------------------------------------------------------------- type for type


def records(path: Path) -> Iterator[dict[str, Any]]:
    with gzip.open(path, "rb") as f:
        yield from msgpack.Unpacker(f, raw=False, strict_map_key=False)


def recorded_steps(path: Path) -> Iterator[tuple[dict[str, Any], Event, Context, dict[str, Any]]]:
    """(pre-state, event, context, recorded outcome) for every step, patches applied (one slot)."""
    states: dict[str, dict[str, Any]] = {}
    contexts: dict[str, Context] = {}
    for rec in records(path):
        kind = rec["kind"]
        if kind == "snapshot":
            states[rec["slot"]] = rec["state"]
            c = rec.get("context") or {}
            contexts[rec["slot"]] = doge_context(
                c.get("config") or {}, c.get("order_size_usd", 0.0), c.get("order_sizes")
            )
        elif kind == "patch":
            states[rec["slot"]] = apply_delta(states[rec["slot"]], rec["delta"])
        elif kind == "step":
            assert "context" not in rec and "call" not in rec["event"]
            slot, outcome = rec["slot"], rec["outcome"]
            pre = states[slot]
            yield pre, Event(rec["event"]["type"], rec["event"]["payload"]), contexts[slot], outcome
            states[slot] = apply_delta(pre, outcome["delta"])


@pytest.mark.parametrize("which", ["haskell-port", "python-reference"])
def test_every_recorded_outcome_matches_type_for_type(
    upstream_recordings: Path, haskell_exe: Path, which: str
) -> None:
    """Each step from the recorded pre-state: our next state, actions and violations are the real
    module's, with the same wire types and float bits (the whole state, not only what the diff sees)."""
    reducer = (
        SubprocessReducer([str(haskell_exe), "--msgpack"], domain=DogeDomain(), use_sessions=False)
        if which == "haskell-port"
        else InProcessReducer("shadowdiff_doge.reference.state_machine")
    )
    checked = 0
    try:
        for pre, event, context, outcome in recorded_steps(upstream_recordings / DAY):
            ours = reducer.transition(pre, event, context, with_invariants=True)
            real = {"state": apply_delta(pre, outcome["delta"]), "actions": outcome["actions"],
                    "violations": outcome["violations"]}  # fmt: skip
            got = {"state": ours.state, "actions": ours.actions, "violations": ours.violations}
            assert same(real, got), f"step {checked}: {first_difference(real, got)}"
            checked += 1
    finally:
        reducer.close()
    assert checked == TRANSITIONS
