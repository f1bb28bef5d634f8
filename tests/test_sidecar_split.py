"""The sidecar in two processes (issue 16 item 3), with real processes: the sidecar receives and records,
its child process checks; the child is killed, stopped, restarted; ``--one-process`` keeps the thread.

Every status taken here, mid-run included, must add up: received = checked + lag + skipped + unchecked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import ROOT, children_of
from test_sidecar import ENV, Sidecar, gone, run_bot, shadow_command, sidecar


def adds_up(status: dict[str, Any]) -> dict[str, Any]:
    cov = status["coverage"]
    parts = cov["checked"] + cov["lag_records"] + cov["skipped_by_sidecar"] + cov["unchecked"]
    assert cov["received"] == parts, cov
    assert cov["unchecked"] == sum(cov["unchecked_by"].values()), cov
    assert cov["lag_records"] >= 0, cov
    return cov


def tapped_bot(side: Sidecar, seconds: float, rate: float, seed: int) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "shadowdiff.tap", "--module", "shadowdiff_doge.reference.state_machine",
            "-m", "shadowdiff_doge.simbot", "--seconds", str(seconds), "--rate", str(rate), "--seed",
            str(seed)]  # fmt: skip
    env = dict(ENV, DOGE_CORE_SHADOW="1", SHADOWDIFF_TAP=side.address, SHADOWDIFF_TAP_EXIT_WAIT="3")
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def summary_of(bot: subprocess.Popen[str]) -> dict[str, Any]:
    import json

    out, _ = bot.communicate(timeout=120)
    assert bot.returncode == 0
    loaded: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return loaded


def caught_up(side: Sidecar, received: int, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = side.status()
        cov = adds_up(status)
        done = cov["received"] >= received and cov["lag_records"] == 0 and cov["lag_bytes"] == 0
        if (done and status["checker"]["state"] == "running") or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def test_the_checker_is_a_process_of_its_own_and_goes_with_the_sidecar(tmp_path: Path) -> None:
    with sidecar(tmp_path, shadow_command(tmp_path)) as side:
        status = side.status()
        checker = status["checker"]
        assert checker["mode"] == "process" and checker["state"] == "running"
        assert checker["pid"] != side.proc.pid == status["provenance"]["pid"]
        assert children_of(side.proc.pid) == [checker["pid"]]  # the shadow is the checker's child
        assert len(children_of(checker["pid"])) == 1
        bot = run_bot(side.address, 1.0, 300, seed=3)
        status = caught_up(side, bot["transitions"] + bot["calls"])
        cov = adds_up(status)
        assert cov["checked"] == cov["received"] == bot["transitions"] + bot["calls"]
        assert status["state_machine_shadow"]["transition_checks"] == bot["transitions"]
        assert status["shadow"]["latency_ms"]["p50"] > 0
        children = side.children
    assert gone(children), "the checker or the shadow outlived the sidecar"


def test_a_killed_checker_is_seen_restarted_and_the_identity_holds_throughout(tmp_path: Path) -> None:
    with sidecar(tmp_path, shadow_command(tmp_path)) as side:
        first = side.status()["checker"]["pid"]
        bot = tapped_bot(side, 3.0, 300, seed=8)
        time.sleep(1.0)
        os.kill(first, signal.SIGKILL)
        seen_down = False
        while bot.poll() is None:  # every status while the checker dies and comes back adds up
            status = side.status()
            adds_up(status)
            seen_down |= status["checker"]["state"] == "down" or status["checker"]["pid"] != first
            time.sleep(0.05)
        summary = summary_of(bot)
        status = caught_up(side, summary["transitions"] + summary["calls"])
        assert seen_down
        checker = status["checker"]
        assert checker["restarts"] == 1 and checker["state"] == "running"
        assert checker["pid"] not in (first, side.proc.pid)
        assert checker["last_exit"] == -signal.SIGKILL
        cov = adds_up(status)
        assert cov["received"] == summary["transitions"] + summary["calls"]
        assert cov["checked"] == cov["received"] and cov["unchecked"] == 0
        assert status["state_machine_shadow"]["total_divergences"] == 0
        assert not Path(f"/proc/{first}").exists() or children_of(first) == []
        assert side.get("/healthz") == b"ok\n"


def test_records_received_while_the_checker_is_down_are_checked_after_it_returns(tmp_path: Path) -> None:
    with sidecar(tmp_path, shadow_command(tmp_path)) as side:
        first = side.status()["checker"]["pid"]
        os.kill(first, signal.SIGSTOP)  # from here on nothing is checked: the tap is received regardless
        before = side.status()["coverage"]["checked"]
        summary = run_bot(side.address, 1.0, 300, seed=9)
        stopped = side.status()
        cov = adds_up(stopped)
        assert cov["received"] == summary["transitions"] + summary["calls"] > 0  # received at full speed
        assert cov["checked"] == before and cov["lag_records"] == cov["received"] - before
        assert cov["lag_bytes"] > 0
        os.kill(first, signal.SIGKILL)  # it dies without checking any of it
        status = caught_up(side, cov["received"])
        cov = adds_up(status)
        assert status["checker"]["restarts"] == 1
        assert cov["checked"] == cov["received"] and cov["lag_records"] == 0 and cov["unchecked"] == 0
        assert status["state_machine_shadow"]["transition_checks"] == summary["transitions"]
        assert status["state_machine_shadow"]["total_divergences"] == 0


def test_a_checker_killed_mid_run_with_a_mutant_finds_each_divergence_once(tmp_path: Path) -> None:
    """Findings come with the snapshot that counts them: a checker killed after finding some and before
    publishing them leaves them to the next one, which resumes at the last snapshot: none twice."""
    shadow = shadow_command(tmp_path, "regime_case_sensitive")
    with sidecar(tmp_path / "a", shadow) as whole:
        bot = run_bot(whole.address, 2.0, 300, seed=3)
        reference = caught_up(whole, bot["transitions"] + bot["calls"])
    with sidecar(tmp_path / "b", shadow) as side:
        proc = tapped_bot(side, 2.0, 300, seed=3)
        time.sleep(1.2)
        os.kill(side.status()["checker"]["pid"], signal.SIGKILL)
        summary = summary_of(proc)
        assert summary["digest"] == bot["digest"]
        status = caught_up(side, summary["transitions"] + summary["calls"])
        assert status["checker"]["restarts"] == 1
    adds_up(status)
    assert status["state_machine_shadow"]["transition_divergences"] > 0
    assert status["divergences_by_kind"] == reference["divergences_by_kind"]
    assert len(side.findings.read_text().splitlines()) == len(whole.findings.read_text().splitlines())


def test_one_process_still_checks_in_a_thread(tmp_path: Path) -> None:
    with sidecar(tmp_path, shadow_command(tmp_path), "--one-process") as side:
        status = side.status()
        assert status["checker"] == {"mode": "thread", "pid": side.proc.pid, "state": "running",
                                     "restarts": 0, "last_exit": None}  # fmt: skip
        bot = run_bot(side.address, 1.0, 300, seed=3)
        status = caught_up(side, bot["transitions"] + bot["calls"])
        cov = adds_up(status)
        assert cov["checked"] == cov["received"] == bot["transitions"] + bot["calls"]
        assert status["state_machine_shadow"]["transition_checks"] == bot["transitions"]
        [shadow] = children_of(side.proc.pid)  # no checker process: the shadow is ours
        assert shadow in side.children
    assert gone(side.children)


def test_help_names_both_shapes() -> None:
    done = subprocess.run([sys.executable, "-m", "shadowdiff", "sidecar", "--help"], capture_output=True,
                          text=True, env=ENV, cwd=ROOT, timeout=60, check=True)  # fmt: skip
    assert "--one-process / --two-process" in done.stdout
    assert "child process" in done.stdout
