"""fuzz and shrink end to end against the real Haskell port and its mutants (which must build: no skip)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import ROOT

from shadowdiff.cli import fuzz as fuzz_cli
from shadowdiff.cli.main import main as shadowdiff_main


def _cli() -> click.Group:
    group = click.Group()
    fuzz_cli.register(group)
    return group


def _shadow(exe: Path, mutant: str | None = None) -> str:
    from conftest import MUTANT_EXE  # only doge-core-mutants takes --mutant

    return f"{MUTANT_EXE if mutant else exe} --msgpack" + (f" --mutant {mutant}" if mutant else "")


def _fuzz(exe: Path, mutant: str, out: Path, *extra: str) -> tuple[int, str]:
    args = ["fuzz", "--seed", "0", "--time-budget", "60", "--shadow", _shadow(exe, mutant), "--out", str(out),
            "--note", f"mutant {mutant}", *extra]  # fmt: skip
    result = CliRunner().invoke(_cli(), args)
    return result.exit_code, result.output


def _replay(path: Path, shadow: str) -> tuple[int, dict]:
    report = path.parent / "report.json"
    result = CliRunner().invoke(
        shadowdiff_main, ["replay", str(path), "--shadow", shadow, "--report", str(report), "-q"]
    )
    return result.exit_code, json.loads(report.read_text())


def test_fuzz_finds_a_mutant_and_the_reproducer_replays(haskell_exe: Path, tmp_path: Path) -> None:
    code, output = _fuzz(haskell_exe, "break_even_counts_as_loss", tmp_path / "a")
    assert code == 1, output
    # which field leads the signature depends on the seed's draws (trade A's or B's loss counter, or the
    # follow-up entry a counted loss suppresses); the counter is among the differences either way
    found = re.search(r"signature: (transition\.state\|FillEvent\|[a-z_]+(?:\.length)?)\n", output)
    assert found and re.search(r"consecutive_losses_[ab]: authoritative 0, shadow 1", output), output
    assert "step event" in output  # the readable table
    (path,) = sorted((tmp_path / "a").glob("*.json"))
    data = json.loads(path.read_text())
    assert data["shadowdiff"]["signature"] == found.group(1)
    assert data["expected"]["invariants"] == [] or isinstance(data["expected"]["invariants"], list)
    assert len(data["events"]) <= 3
    code, report = _replay(path, _shadow(haskell_exe, "break_even_counts_as_loss"))
    # the reproducer's signature is among the replay's clusters (a suppressed entry may add an actions one)
    assert code == 1 and data["shadowdiff"]["signature"] in [c["signature"] for c in report["clusters"]]
    code, report = _replay(path, _shadow(haskell_exe))
    assert code == 0 and report["summary"]["verdict"] == "pass"
    # the same seed writes the same bytes
    code, _ = _fuzz(haskell_exe, "break_even_counts_as_loss", tmp_path / "b")
    assert code == 1
    (again,) = sorted((tmp_path / "b").glob("*.json"))
    assert again.name == path.name and again.read_bytes() == path.read_bytes()


def test_raw_initial_state_reproducer_for_the_from_dict_defaults_mutant(
    haskell_exe: Path, tmp_path: Path
) -> None:
    code, output = _fuzz(haskell_exe, "cycle_default_zero", tmp_path, "-q")
    assert code == 1, output
    (path,) = sorted(tmp_path.glob("*.json"))
    data = json.loads(path.read_text())
    assert data["shadowdiff"]["kind"] == "load" and data["events"] == []
    assert "cycle_a" not in data["initial_state"]  # raw: the authority's from_dict fills in the default
    code, report = _replay(path, _shadow(haskell_exe, "cycle_default_zero"))
    assert code == 1 and report["clusters"][0]["signature"] == "load|open|cycle_a"
    assert _replay(path, _shadow(haskell_exe))[0] == 0


def test_fuzz_against_the_unmutated_port_finds_nothing(haskell_exe: Path, tmp_path: Path) -> None:
    args = [
        "fuzz",
        "--seed",
        "1",
        "--examples",
        "150",
        "--shadow",
        _shadow(haskell_exe),
        "--out",
        str(tmp_path),
        "-q",
    ]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 0, result.output
    assert not list(tmp_path.glob("*.json"))


def test_shrink_a_long_failing_log_to_one_event(haskell_exe: Path, tmp_path: Path) -> None:
    state = json.loads((ROOT / "corpora" / "regressions").joinpath(_crash_case()).read_text())[
        "initial_state"
    ]
    events = [
        {"type": "PriceTick", "payload": {"price": 0.5 + (i % 7) / 1000, "timestamp": 100.0 + i}}
        for i in range(2500)
    ]
    exit_order = next(o for o in state["orders"] if o["role"] == "exit")
    events.insert(1700, {"type": "FillEvent", "payload": {
        "order_local_id": exit_order["local_id"], "txid": "T", "side": exit_order["side"],
        "price": exit_order["price"], "volume": exit_order["volume"], "fee": 0.0,
        "timestamp": 2000.0}})  # fmt: skip
    header = {"kind": "header", "format": "shadowdiff-log", "version": 1, "provenance": {"synthetic": True},
              "slots": {"s": {"context": {"config": {}, "order_size_usd": 2.0}, "state": state}}}  # fmt: skip
    log = tmp_path / "long.jsonl"
    lines = [json.dumps(header)] + [
        json.dumps({"kind": "step", "slot": "s", "seq": i, "event": e}) for i, e in enumerate(events)
    ]
    log.write_text("\n".join(lines) + "\n")
    out = tmp_path / "shrunk.json"
    args = [
        "shrink",
        str(log),
        "--shadow",
        _shadow(haskell_exe, "crash_zero_fee_exit"),
        "--out",
        str(out),
        "-q",
    ]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 1, result.output
    assert "shrunk 2501 -> 1 events" in result.output
    data = json.loads(out.read_text())
    assert data["shadowdiff"]["signature"] == "crash|FillEvent" and len(data["events"]) == 1


def _crash_case() -> str:
    for path in sorted((ROOT / "corpora" / "regressions").glob("*.json")):
        if "crash_zero_fee_exit" in json.loads(path.read_text())["shadowdiff"]["note"]:
            return path.name
    raise AssertionError("the regression corpus lacks the crash_zero_fee_exit case")


def test_fuzz_through_a_real_subprocess_and_usage_errors(haskell_exe: Path, tmp_path: Path) -> None:
    shadow = _shadow(haskell_exe, "invariant_typo")
    cmd = [sys.executable, "-m", "shadowdiff", "fuzz", "--seed", "0", "--shadow", shadow,
           "--out", str(tmp_path), "-q"]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1, done.stderr
    assert "invariant|PriceTick|violations[*]" in done.stdout
    bad = CliRunner().invoke(_cli(), ["fuzz", "--mode", "sideways"])
    assert bad.exit_code == 2
    help_text = CliRunner().invoke(_cli(), ["fuzz", "--help"]).output
    assert "Examples:" in help_text and "--keep-going" in help_text


@pytest.mark.parametrize("name", ["shrink"])
def test_shrink_of_a_passing_scenario_says_so(haskell_exe: Path, upstream: Path, name: str) -> None:
    scenario = upstream / "exit_fill_books_cycle.json"
    result = CliRunner().invoke(_cli(), [name, str(scenario), "--shadow", _shadow(haskell_exe)])
    assert result.exit_code == 0 and "nothing to shrink" in result.output
