"""The live mode end to end with real processes: the simulated bot under the tap, the sidecar, a shadow.

The shadow is the Haskell port (with its seeded mutants) when it is built, else the Python server with a
mutated module written here, so the suite runs either way.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import EXE, MISBEHAVING, MUTANT_EXE, PY_SERVER, ROOT, caught_up, children_of
from prometheus_client.parser import text_string_to_metric_families

from shadowdiff.model.records import Record
from shadowdiff.runtime.corpus import read_items

ENV = {k: v for k, v in os.environ.items() if k not in ("DOGE_CORE_SHADOW", "SHADOWDIFF_TAP")}
# the worktree first, then what the caller set (where ``shadowdiff_doge`` comes from in a worktree)
ENV["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
HASKELL = EXE.exists() and MUTANT_EXE.exists()
MUTATED_MODULE = """
from shadowdiff_doge.reference.state_machine import *  # noqa: F403
from shadowdiff_doge.reference import state_machine as _sm

def apply_order_regime_at_entry(state, local_id, regime_at_entry):
    if isinstance(regime_at_entry, str) and regime_at_entry.strip() != regime_at_entry.strip().upper():
        regime_at_entry = None  # the port's bug: names only match in upper case
    return _sm.apply_order_regime_at_entry(state, local_id, regime_at_entry)
"""


# the bot's eleven state_machine_shadow keys (DOGE_REDUCER.md section 8), spelled out, not imported
BOT_KEYS = {
    "enabled", "executable_available", "transition_checks", "invariant_checks", "total_divergences",
    "transition_divergences", "invariant_divergences", "shadow_failures", "last_divergence_kind",
    "last_divergence_event", "last_shadow_error",
}  # fmt: skip


def shadow_command(tmp_path: Path, mutant: str | None = None) -> str:
    if HASKELL:
        return f"{MUTANT_EXE if mutant else EXE} --msgpack" + (f" --mutant {mutant}" if mutant else "")
    if mutant is None:
        return " ".join([*PY_SERVER, "--msgpack"])
    assert mutant == "regime_case_sensitive", "only this mutant has a Python stand-in"
    module = tmp_path / "mutated_state_machine.py"
    module.write_text(MUTATED_MODULE)
    return " ".join([*PY_SERVER, "--msgpack", "--module", str(module)])


class Sidecar:
    def __init__(self, tmp_path: Path, shadow: str, *extra: str, sock: Path | None = None) -> None:
        self.sock = sock or tmp_path / "tap.sock"
        self.record = tmp_path / "record"
        self.findings = tmp_path / "findings.jsonl"
        argv = [
            sys.executable,
            "-m",
            "shadowdiff",
            "sidecar",
            "--listen",
            f"unix:{self.sock}",
            "--shadow",
            shadow,
            "--http",
            "127.0.0.1:0",
            "--record",
            str(self.record),
            "--findings",
            str(self.findings),
            *extra,
        ]
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read() if self.proc.stderr else ""
        ready = json.loads(line)
        self.http = ready["http"]
        self.address = ready["listen"]
        self.children = descendants_of(self.proc.pid)  # the checker's process and the shadow

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.http + path, timeout=5) as response:
            body: bytes = response.read()
            return body

    def status(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.get("/api/status"))
        return loaded

    def caught_up(self, received: int, timeout: float = 20.0) -> dict[str, Any]:
        return caught_up(self.status, received, timeout)

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0
        return out

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


def descendants_of(pid: int) -> list[int]:
    """Every live process below ``pid`` (the checker's process, the shadow it started)."""
    found, todo = [], [pid]
    while todo:
        for child in children_of(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def gone(pids: list[int]) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{pid}").exists() for pid in pids):
            return True
        time.sleep(0.05)
    return False


def run_bot(address: str | None, seconds: float, rate: float, seed: int, tap: bool = True) -> dict[str, Any]:
    bot = ["-m", "shadowdiff_doge.simbot", "--seconds", str(seconds), "--rate", str(rate)]
    bot += ["--seed", str(seed)]
    env = dict(ENV)
    if tap:
        argv = [
            sys.executable,
            "-m",
            "shadowdiff.tap",
            "--module",
            "shadowdiff_doge.reference.state_machine",
            *bot,
        ]
        env.update(DOGE_CORE_SHADOW="1", SHADOWDIFF_TAP=address or "", SHADOWDIFF_TAP_EXIT_WAIT="3")
    else:
        argv = [sys.executable, *bot]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60, check=True)
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


@contextlib.contextmanager
def sidecar(tmp_path: Path, shadow: str, *extra: str) -> Iterator[Sidecar]:
    running = Sidecar(tmp_path, shadow, *extra)
    try:
        yield running
    finally:
        if running.proc.poll() is None:
            running.stop()
        assert gone(running.children), "the shadow outlived the sidecar"


def test_clean_run_checks_every_transition_and_serves_status_and_metrics(tmp_path: Path) -> None:
    with sidecar(tmp_path, shadow_command(tmp_path)) as side:
        bot = run_bot(side.address, 2.0, 300, seed=3)
        status = side.caught_up(bot["transitions"] + bot["calls"])
        shadow = status["state_machine_shadow"]
        assert shadow["transition_checks"] == bot["transitions"]
        assert shadow["invariant_checks"] == bot["transitions"]
        assert status["coverage"]["calls_checked"] == bot["calls"]
        assert shadow["total_divergences"] == 0 and shadow["shadow_failures"] == 0
        assert status["coverage"]["dropped_by_tap"] == 0 and status["coverage"]["skipped_by_sidecar"] == 0
        # the runbook's jq filter, unchanged
        raw = side.get("/api/status")
        selected = (
            subprocess.run(
                [
                    "jq",
                    "-c",
                    ".state_machine_shadow"
                    " | {enabled, transition_checks, total_divergences, shadow_failures}",
                ],
                input=raw,
                capture_output=True,
                check=True,
            ).stdout
            if _has_jq()
            else json.dumps(
                {
                    k: shadow[k]
                    for k in ("enabled", "transition_checks", "total_divergences", "shadow_failures")
                }
            ).encode()
        )
        assert json.loads(selected) == {
            "enabled": True,
            "transition_checks": bot["transitions"],
            "total_divergences": 0,
            "shadow_failures": 0,
        }
        assert set(shadow) == BOT_KEYS
        families = {f.name: f for f in text_string_to_metric_families(side.get("/metrics").decode())}
        checks = {
            s.labels["check"]: s.value
            for s in families["shadowdiff_sidecar_checks"].samples
            if s.name.endswith("_total")
        }
        assert checks["transition"] == bot["transitions"]
        assert "shadowdiff_sidecar_shadow_latency_seconds" in families
        assert side.get("/healthz") == b"ok\n"
        assert oct(side.sock.stat().st_mode & 0o777) == "0o600"


def _has_jq() -> bool:
    return subprocess.run(["sh", "-c", "command -v jq"], capture_output=True, check=False).returncode == 0


def test_a_mutant_is_found_and_its_findings_and_logs_replay_offline_the_same(tmp_path: Path) -> None:
    shadow = shadow_command(tmp_path, "regime_case_sensitive")
    with sidecar(tmp_path, shadow) as side:
        bot = run_bot(side.address, 2.0, 300, seed=3)
        status = side.caught_up(bot["transitions"] + bot["calls"])
    live = status["state_machine_shadow"]
    assert live["transition_divergences"] > 0
    assert live["last_divergence_event"] == "apply_order_regime_at_entry"
    live_by_kind = {kind: sum(v.values()) for kind, v in status["divergences_by_kind"].items()}
    assert status["divergences_by_kind"]["transition.state"].get("apply_order_regime_at_entry")
    signatures = {json.loads(line)["signature"] for line in side.findings.read_text().splitlines()}

    def replay(*args: str) -> tuple[int, dict[str, Any]]:
        report = tmp_path / f"report-{len(args)}.json"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "shadowdiff",
                "replay",
                *args,
                "--shadow",
                shadow,
                "--report",
                str(report),
                "-q",
            ],
            capture_output=True,
            text=True,
            env=ENV,
            cwd=ROOT,
            timeout=120,
            check=False,
        )
        return done.returncode, json.loads(report.read_text())

    code, report = replay(str(side.findings))
    assert code == 1
    assert {c["signature"] for c in report["clusters"]} == signatures
    code, report = replay(str(side.record), "--authoritative", "recorded")
    assert code == 1
    assert report["summary"]["by_kind"] == live_by_kind
    assert (
        report["summary"]["checks"]["authoritative"]["transition"] == bot["transitions"]
    )  # every one recorded


def test_final_states_are_identical_with_the_tap_off_on_and_on_with_the_sidecar_killed(
    tmp_path: Path,
) -> None:
    args = (6.0, 300, 11)  # long enough that the tap reconnects even when the new sidecar starts slowly
    off = run_bot(None, *args, tap=False)
    with sidecar(tmp_path / "a", shadow_command(tmp_path)) as side:
        on = run_bot(side.address, *args)
    assert on["digest"] == off["digest"]
    (tmp_path / "b").mkdir(mode=0o700)  # a Unix socket lives in a private directory
    first = Sidecar(tmp_path / "b", shadow_command(tmp_path))
    env = dict(ENV, DOGE_CORE_SHADOW="1", SHADOWDIFF_TAP=first.address, SHADOWDIFF_TAP_EXIT_WAIT="3")
    argv = [
        sys.executable,
        "-m",
        "shadowdiff.tap",
        "--module",
        "shadowdiff_doge.reference.state_machine",
        "-m",
        "shadowdiff_doge.simbot",
        "--seconds",
        "6",
        "--rate",
        "300",
        "--seed",
        "11",
    ]
    bot = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    time.sleep(1.0)
    first.kill()  # SIGKILL halfway: the tap must notice, count and carry on
    assert gone(first.children), "the shadow outlived its SIGKILLed sidecar"
    time.sleep(0.5)
    second = Sidecar(tmp_path / "b", shadow_command(tmp_path), sock=first.sock)
    out, _ = bot.communicate(timeout=60)
    assert bot.returncode == 0
    assert json.loads(out.strip().splitlines()[-1])["digest"] == off["digest"]
    try:
        status = second.caught_up(1, timeout=10)
        assert status["taps"]["connections"] >= 1  # the tap reconnected to the new sidecar
        assert status["coverage"]["dropped_by_tap"] > 0  # and told it what it could not deliver
        assert status["state_machine_shadow"]["total_divergences"] == 0
    finally:
        second.stop()
    assert gone(second.children)
    # the killed sidecar's logs are still readable; a torn last record is skipped with a notice
    notices: list[str] = []
    assert sum(isinstance(i, Record) for i in read_items([first.record], notices=notices.append)) > 0
    assert all("torn last record skipped" in n for n in notices)


@pytest.mark.parametrize("failure", ["crash", "hang"])
def test_a_crashing_or_hanging_shadow_is_counted_restarted_and_the_sidecar_keeps_serving(
    tmp_path: Path, failure: str
) -> None:
    if HASKELL:
        shadow = shadow_command(
            tmp_path, "crash_zero_fee_exit" if failure == "crash" else "hang_price_at_order"
        )
    else:
        marker = tmp_path / "once"
        shadow = " ".join([*MISBEHAVING, f"--{failure}-at", "200", "--once", str(marker)])
    with sidecar(tmp_path, shadow, "--deadline", "0.5") as side:
        bot = run_bot(
            side.address, 1.0 if failure == "crash" else 0.3, 300, seed=2 if failure == "crash" else 10
        )
        # each hang costs its deadline and a restart: 13-18 s here when idle, more on a busy machine
        status = side.caught_up(bot["transitions"] + bot["calls"], timeout=90)
        shadow_block = status["state_machine_shadow"]
        assert shadow_block["shadow_failures"] >= 1
        expected = "crash" if failure == "crash" else "timeout"
        assert shadow_block["last_shadow_error"].startswith(expected)
        assert status["shadow"]["restarts"] >= 1
        # a mutant that hangs on every such event may be given up on (dead, then replaced): said so
        assert shadow_block["executable_available"] is (status["shadow"]["state"] == "running")
        cov = assert_adds_up(status)
        # every step is checked or said unchecked and why (the shadow's failures among them); before
        # the sidecar could see its shadow die, the steps after it gave up were counted as checked
        checked = shadow_block["transition_checks"] + cov["calls_checked"]
        assert checked + cov["unchecked"] == bot["transitions"] + bot["calls"]
        assert cov["unchecked_by"]["shadow_failed"] >= 1
        assert side.get("/healthz") == b"ok\n"


def test_only_loopback_or_unix_addresses_are_accepted(tmp_path: Path) -> None:
    for args in (
        ["--listen", "tcp:0.0.0.0:7000"],
        ["--listen", f"unix:{tmp_path}/s", "--http", "0.0.0.0:8080"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "shadowdiff", "sidecar", *args, "--shadow", "true"],
            capture_output=True,
            text=True,
            env=ENV,
            cwd=ROOT,
            timeout=30,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert "loopback" in done.stderr


def test_past_the_lag_budget_records_are_skipped_and_counted(tmp_path: Path) -> None:
    with sidecar(tmp_path, shadow_command(tmp_path), "--max-lag-bytes", "2000") as side:
        bot = run_bot(side.address, 0.5, 1000, seed=5)
        status = side.caught_up(bot["transitions"] + bot["calls"])
    cov = status["coverage"]
    assert cov["received"] == bot["transitions"] + bot["calls"]
    assert cov["skipped_by_sidecar"] > 0
    assert cov["checked"] + cov["skipped_by_sidecar"] + cov["unchecked"] == cov["received"]
    assert status["state_machine_shadow"]["total_divergences"] == 0


def test_known_divergences_are_counted_apart_live_and_leave_no_findings(tmp_path: Path) -> None:
    shadow = shadow_command(tmp_path, "regime_case_sensitive")
    known = tmp_path / "known.toml"
    known.write_text(
        '[[known]]\nsignature = "transition.*|apply_order_regime_at_entry|*"\n'
        'explanation = "regime names match upper case only"\nstatus = "open"\n'
    )
    with sidecar(tmp_path, shadow, "--known", str(known)) as side:
        bot = run_bot(side.address, 2.0, 300, seed=3)
        status = side.caught_up(bot["transitions"] + bot["calls"])
        final = side.stop()
    assert status["known"]["entries"] == 1 and status["known"]["divergences"] > 0
    assert status["state_machine_shadow"]["transition_divergences"] == 0  # the bot's counters: news only
    assert not side.findings.exists() or side.findings.read_text() == ""
    assert (
        json.loads(final.strip().splitlines()[-1])["known"]["divergences"] == status["known"]["divergences"]
    )


# -- coverage adds up, whatever the shadow does ---------------------------------------------------------
def assert_adds_up(status: dict[str, Any]) -> dict[str, Any]:
    """The identity the status promises, and that each part is what it says."""
    cov = status["coverage"]
    assert cov["received"] == (
        cov["checked"] + cov["lag_records"] + cov["skipped_by_sidecar"] + cov["unchecked"]
    ), cov
    assert cov["unchecked"] == sum(cov["unchecked_by"].values()), cov
    assert cov["lag_records"] == 0, cov  # caught up: nothing is waiting
    return cov


def _caught_up(side: Sidecar, received: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = side.caught_up(received, timeout=max(0.1, deadline - time.monotonic()))
        cov = status["coverage"]
        if (cov["received"] >= received and cov["lag_records"] == 0) or time.monotonic() > deadline:
            return status


@pytest.mark.parametrize("how", ["missing", "handshake"])
def test_a_shadow_that_never_starts_is_reported_and_every_record_counted_unchecked(
    tmp_path: Path, how: str
) -> None:
    # the case: a shadow failing its handshake left "received 3,954, checked 0, unchecked 0"
    shadow = str(tmp_path / "no-such-shadow") if how == "missing" else f"{sys.executable} -c pass"
    with sidecar(tmp_path, shadow) as side:
        bot = run_bot(side.address, 0.3, 300, seed=4)
        status = _caught_up(side, bot["transitions"] + bot["calls"], timeout=20)
    cov = assert_adds_up(status)
    assert cov["received"] == bot["transitions"] + bot["calls"] > 0
    assert cov["checked"] == 0 and cov["unchecked"] == cov["received"]
    assert cov["unchecked_by"]["no_shadow"] == cov["received"]
    assert status["shadow"]["state"] == "not started"
    assert status["state_machine_shadow"]["executable_available"] is False
    expected = "shadow executable not found" if how == "missing" else "handshake failed"
    assert expected in status["state_machine_shadow"]["last_shadow_error"]


def test_a_shadow_that_dies_for_good_is_reported_dead_and_the_rest_counted_unchecked(tmp_path: Path) -> None:
    # every process crashes on its first step or call: after its restarts in a row the client gives up
    shadow = " ".join([*MISBEHAVING, "--crash-on-work"])
    with sidecar(tmp_path, shadow, "--deadline", "2") as side:
        bot = run_bot(side.address, 0.3, 300, seed=6)
        deadline = time.monotonic() + 60
        while True:  # until the first shadow gave up and everything is accounted for
            status = _caught_up(side, bot["transitions"] + bot["calls"], timeout=60)
            if status["shadow"]["gave_up"] >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    cov = assert_adds_up(status)
    assert cov["received"] == bot["transitions"] + bot["calls"]
    assert status["shadow"]["gave_up"] >= 1 or status["shadow"]["state"] == "dead"
    assert status["shadow"]["restarts"] >= 8  # the client's restarts in a row before it gave up
    assert cov["checked"] == 0  # not one step was ever answered
    assert cov["unchecked_by"]["not_compared"] + cov["unchecked_by"]["shadow_failed"] > 0
    # a crash is blamed on the request it was serving, a step or a reopen sent before one
    assert status["failures_by_kind"].get("crash", 0) >= cov["unchecked_by"]["shadow_failed"] >= 1


@pytest.mark.parametrize("failure", ["crash", "hang"])
def test_a_shadow_that_fails_once_is_restarted_reported_and_coverage_adds_up(
    tmp_path: Path, failure: str
) -> None:
    marker = tmp_path / "once"
    shadow = " ".join([*MISBEHAVING, f"--{failure}-at", "40", "--once", str(marker)])
    with sidecar(tmp_path, shadow, "--deadline", "0.5") as side:
        bot = run_bot(side.address, 0.5, 300, seed=7)
        status = _caught_up(side, bot["transitions"] + bot["calls"], timeout=40)
    cov = assert_adds_up(status)
    assert cov["received"] == bot["transitions"] + bot["calls"]
    assert status["shadow"]["state"] == "running" and status["shadow"]["dead"] is None
    assert status["shadow"]["restarts"] == 1 and status["shadow"]["gave_up"] == 0
    kind = "crash" if failure == "crash" else "timeout"
    assert status["failures_by_kind"] == {kind: 1}
    assert cov["unchecked_by"]["shadow_failed"] == 1  # the step it failed on; the rest was sent again
    assert cov["checked"] == cov["received"] - 1 and cov["unchecked"] == 1
