"""Hostile input: verdicts that never lie about a cut-short run, and every decoder fed garbage on purpose.

Each decoder either accepts an input or refuses it as a ShadowdiffError naming where, within a bound, with
no traceback and bounded memory (docs/robustness.md lists the inputs and outcomes per decoder).
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from conftest import MISBEHAVING, PY_SERVER, ROOT

from adapters.doge.corpusgen import generate

SHADOW = " ".join([*PY_SERVER, "--msgpack"])


def shadowdiff(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shadowdiff", *args], capture_output=True, text=True,
                          check=False, cwd=ROOT, env=env, timeout=timeout)  # fmt: skip


def _broken_log(tmp_path):
    log = tmp_path / "broken.jsonl"
    lines = [json.dumps(r) for r in generate(60, slots=1, seed=2)]
    lines.insert(31, '{"kind": "step", "slot": "slot-0", "event": {"type": "PriceTick", "payload": ')
    log.write_text("\n".join(lines) + "\n")
    return log


# -- verdicts ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_run_cut_short_by_bad_input_says_incomplete_in_every_report(tmp_path, jobs) -> None:
    log = _broken_log(tmp_path)
    out = tmp_path / "out"
    done = shadowdiff("replay", str(log), "--shadow", SHADOW, "--jobs", jobs, "--report", str(out / "r.json"),
                      "--html", str(out / "r.html"), "--junit", str(out / "r.xml"))  # fmt: skip
    expected = f"incomplete (bad input at {log}:32)"
    assert done.returncode == 2, done.stderr
    assert done.stdout.splitlines()[-1] == f"verdict: {expected}"
    assert "Traceback" not in done.stderr and f"{log}:32: not valid JSON" in done.stderr
    report = json.loads((out / "r.json").read_text())
    assert report["summary"]["verdict"] == expected and report["summary"]["steps"] >= 25
    html = (out / "r.html").read_text()
    assert f'<span class="badge incomplete">{expected}</span>' in html
    root = ET.parse(out / "r.xml").getroot()
    [prop] = root.iter("property")
    assert prop.get("name") == "verdict" and prop.get("value") == expected
    assert root.get("failures") == "1" and root.get("tests") == "1"


def test_incomplete_verdict_keeps_what_the_part_before_it_found(tmp_path) -> None:
    log = _broken_log(tmp_path)
    bad = " ".join([*MISBEHAVING, "--crash-at", "3"])
    done = shadowdiff("replay", str(log), "--shadow", bad, "-q")
    assert done.returncode == 2
    assert done.stdout.splitlines()[-1] == f"verdict: incomplete (bad input at {log}:32; failed before it)"


def _twice(tmp_path, shadow: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return shadowdiff("replay", str(tmp_path / "log.jsonl"), "--shadow", shadow, "--twice", *extra)


@pytest.fixture()
def small_log(tmp_path):
    records = generate(40, slots=1, seed=3)
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return tmp_path / "log.jsonl"


def test_twice_exits_with_the_replays_own_code_when_both_runs_agree(tmp_path, upstream, small_log) -> None:
    clean = _twice(tmp_path, SHADOW)
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["identical"] is True
    mutant = " ".join([*MISBEHAVING, "--mutate-price-at", "2"])
    found = shadowdiff("replay", str(upstream), "--shadow", mutant, "--twice")
    outcome = json.loads(found.stdout)
    assert found.returncode == 1 and outcome["identical"] is True  # the finding is not hidden
    assert [r["exit_code"] for r in outcome["runs"]] == [1, 1]
    broken = _broken_log(tmp_path)
    cut = shadowdiff("replay", str(broken), "--shadow", SHADOW, "--twice")
    assert cut.returncode == 2 and f"{broken}:32: not valid JSON" in cut.stderr


def test_twice_exits_4_when_the_runs_differ(tmp_path, small_log) -> None:
    """A shadow whose answers depend on PYTHONHASHSEED: the two runs' reports differ."""
    script = tmp_path / "flaky-shadow.sh"
    mutant = " ".join([*MISBEHAVING, "--mutate-price-at", "2"])
    script.write_text(
        f'#!/bin/sh\nif [ "$PYTHONHASHSEED" = 0 ]; then exec {mutant}; else exec {SHADOW}; fi\n'
    )
    script.chmod(0o700)
    done = _twice(tmp_path, str(script))
    outcome = json.loads(done.stdout)
    assert done.returncode == 4 and outcome["identical"] is False
    assert [r["exit_code"] for r in outcome["runs"]] == [1, 0]
    assert "not deterministic" in done.stderr


def test_help_and_readme_document_exit_4() -> None:
    done = shadowdiff("replay", "--help")
    assert "4 --twice: the two runs differ" in done.stdout
    assert "| 4 |" in (ROOT / "README.md").read_text()


# -- the gate on tampered or incomplete evidence ------------------------------------------------------------


def _gate_window(**identity: Any) -> list[dict[str, Any]]:
    from test_gate import window

    samples = window()
    for sample in samples:
        if identity:
            sample["provenance"]["status"] = dict(identity)
    return samples


def _integrity(result: Any) -> Any:
    return next(c for c in result.criteria if c.name == "integrity")


def test_counters_going_backwards_within_one_process_are_rejected_naming_the_sample() -> None:
    from shadowdiff.gate import judge

    samples = _gate_window(instance="a1", pid=10, started=1.0)
    samples[700]["state_machine_shadow"]["transition_checks"] = 5  # someone lowered a count
    result = judge(samples)
    assert result.verdict == "REJECT"
    integrity = _integrity(result)
    assert integrity.status == "FAIL" and integrity.seqs[0] == 701
    assert "transition_checks goes backwards within one process at seq 701" in integrity.figure


def test_counters_going_backwards_without_a_restart_marker_never_accept() -> None:
    from shadowdiff.gate import judge

    samples = _gate_window()  # a status that carries no process identity (the bot's own)
    for sample in samples[1000:]:
        shadow = sample["state_machine_shadow"]
        shadow["transition_checks"] -= 1000 + 50 * 1000
        shadow["invariant_checks"] -= 1000 + 50 * 1000
    result = judge(samples)
    assert result.verdict == "EXTEND" and _integrity(result).seqs == (1001,)
    assert "with no restart marker" in _integrity(result).figure
    samples[1000]["restart"] = True  # the marker: a restart the watcher saw
    assert judge(samples).verdict == "ACCEPT"


def test_a_status_block_from_another_process_without_a_marker_is_named() -> None:
    from shadowdiff.gate import judge

    samples = _gate_window(instance="a1")
    for sample in samples[2000:]:
        sample["provenance"]["status"] = {"instance": "b2"}  # spliced in from another sidecar
    result = judge(samples)
    assert result.verdict == "EXTEND"
    assert _integrity(result).seqs == (2001,) and "from another process" in _integrity(result).figure
    samples[2000]["restart"] = True
    assert judge(samples).verdict == "ACCEPT"


@pytest.mark.parametrize("edit", ["delete", "duplicate", "swap"])
def test_missing_repeated_or_reordered_samples_are_named(edit: str) -> None:
    from shadowdiff.gate import judge

    samples = _gate_window(instance="a1")
    if edit == "delete":
        del samples[1500]
    elif edit == "duplicate":
        samples.insert(1500, dict(samples[1500]))
    else:
        samples[1500]["seq"], samples[1501]["seq"] = samples[1501]["seq"], samples[1500]["seq"]
    result = judge(samples)
    assert result.verdict != "ACCEPT"
    integrity = _integrity(result)
    assert integrity.status == "REVIEW" and {1501, 1502} & set(integrity.seqs)


def test_watch_marks_a_change_of_sidecar_process_as_a_restart(tmp_path) -> None:
    """Two real Sidecar objects' status documents, one after the other, through watch's loop."""
    import io

    from shadowdiff.gate import judge, read_jsonl
    from shadowdiff.sidecar import Sidecar, SidecarOptions
    from shadowdiff.watch import Poll, watch

    def make(name: str) -> Any:
        options = SidecarOptions(listen=f"unix:{tmp_path / name / 's.sock'}", shadow=lambda: None,
                                 record_dir=tmp_path / name / "rec")  # fmt: skip
        return Sidecar(options)

    first, second = make("a"), make("b")
    polls = iter([first.status(), first.status(), second.status(), second.status()])
    clock = iter(range(0, 1000, 10))
    out = io.StringIO()
    watch("http://127.0.0.1:1", every=1, duration=3, out=out,
          fetch=lambda url, timeout: Poll(next(polls)), clock=lambda: float(next(clock)),
          monotonic=lambda: 0.0, stop=None)  # fmt: skip
    records = [r for _, r in read_jsonl(out.getvalue().splitlines(), "w")]
    assert [r.get("restart", False) for r in records] == [False, False, True, False]
    assert records[0]["provenance"]["status"]["instance"] == first.instance != second.instance
    integrity = _integrity(judge(records))
    assert integrity.status == "PASS"
    del records[2]["restart"]
    assert _integrity(judge(records)).status == "REVIEW"
