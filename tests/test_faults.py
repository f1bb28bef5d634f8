"""Faults on the live path, each with real processes: the sidecar SIGKILLed at random moments, the shadow
stopped and resumed, a shadow flooding its stderr, the record directory full, a flood of records faster
than the checker. In every case the bot computes exactly what it computes untapped, and the sidecar's
coverage adds up at every status: received = checked + lag + skipped + unchecked (unchecked says why:
shadow failures, records the shadow never saw, records not written). docs/robustness.md has the
table; the SIGKILL-once and lag-budget cases in test_sidecar.py are rows too.
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import MISBEHAVING, PY_SERVER, ROOT, caught_up
from test_sidecar import ENV, descendants_of, gone, run_bot, shadow_command

from shadowdiff.model.records import Record
from shadowdiff.runtime.corpus import read_items


class Side:
    """A sidecar subprocess on a Unix socket, optionally under resource limits."""

    def __init__(self, work: Path, shadow: str, *extra: str, sock: Path | None = None, preexec: Any = None):
        self.sock = sock or work / "tap.sock"
        self.record = work / "record"
        argv = [sys.executable, "-m", "shadowdiff", "sidecar", "--listen", f"unix:{self.sock}", "--shadow",
                shadow, "--http", "127.0.0.1:0", "--record", str(self.record), "--findings",
                str(work / "findings.jsonl"), *extra]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                                     cwd=ROOT, preexec_fn=preexec)  # fmt: skip
        assert self.proc.stdout is not None and self.proc.stderr is not None
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read()
        ready = json.loads(line)
        self.address, self.http = ready["listen"], ready["http"]
        self.children = descendants_of(self.proc.pid)  # the checker's process and the shadow

    def status(self) -> dict[str, Any]:
        import urllib.request

        with urllib.request.urlopen(self.http + "/api/status", timeout=10) as response:
            loaded: dict[str, Any] = json.loads(response.read())
        return loaded

    def caught_up(self, received: int, timeout: float = 60.0) -> dict[str, Any]:
        return caught_up(self.status, received, timeout)

    def rss_kb(self) -> int:
        """The sidecar's resident memory and its checker's (a process of its own by default)."""
        checker = self.status()["checker"]["pid"]
        pids = {self.proc.pid} | ({checker} if checker else set())
        total = 0
        for pid in pids:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        return total

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.communicate(timeout=60)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.communicate(timeout=30)


def adds_up(status: dict[str, Any]) -> None:
    """received = checked + lag + skipped + unchecked; unchecked counts the shadow's failed steps and
    the records that could not be written among its reasons."""
    cov = status["coverage"]
    parts = (cov["checked"], cov["lag_records"], cov["skipped_by_sidecar"], cov["unchecked"])
    assert cov["received"] == sum(parts), cov
    assert cov["unchecked"] == sum(cov["unchecked_by"].values()), cov
    assert cov["unchecked_by"]["unrecorded"] == cov["unrecorded"], cov
    assert cov["unchecked_by"]["shadow_failed"] <= status["state_machine_shadow"]["shadow_failures"]


def bot_argv(seconds: float, rate: float, seed: int) -> list[str]:
    tap = [sys.executable, "-m", "shadowdiff.tap", "--module", "shadowdiff_doge.reference.state_machine"]
    return [
        *tap,
        "-m",
        "shadowdiff_doge.simbot",
        "--seconds",
        str(seconds),
        "--rate",
        str(rate),
        "--seed",
        str(seed),
    ]


def replays_clean(record: Path) -> int:
    """The recording replays offline against the shadow (a torn last record skipped); its records."""
    records = sum(isinstance(i, Record) for i in read_items([record]))
    shadow = " ".join([*PY_SERVER, "--msgpack"])
    argv = [sys.executable, "-m", "shadowdiff", "replay", str(record), "--authoritative", "recorded",
            "--shadow", shadow, "-q"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300, check=False)
    assert done.returncode == 0 and done.stdout.strip().endswith("verdict: pass"), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    return records


def test_sidecar_sigkilled_at_random_moments(tmp_path: Path) -> None:
    args = (14.0, 300, 13)  # long enough that the tap reaches the last sidecar even under load
    untapped = run_bot(None, *args, tap=False)
    sock = tmp_path / "tap.sock"
    moments = random.Random(20).sample([0.6, 0.9, 1.2, 1.5, 1.8], 3)  # seconds between kills
    first = Side(tmp_path / "s0", shadow_command(tmp_path), sock=sock)
    env = dict(ENV, DOGE_CORE_SHADOW="1", SHADOWDIFF_TAP=first.address, SHADOWDIFF_TAP_EXIT_WAIT="3")
    bot = subprocess.Popen(bot_argv(*args), stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    killed, side = [], first
    for n, wait in enumerate(moments, start=1):
        time.sleep(wait)
        side.kill()
        assert gone(side.children), "the shadow outlived its SIGKILLed sidecar"
        killed.append(side)
        side = Side(tmp_path / f"s{n}", shadow_command(tmp_path), sock=sock)  # a restarted sidecar
    out, _ = bot.communicate(timeout=120)
    assert bot.returncode == 0
    assert json.loads(out.strip().splitlines()[-1])["digest"] == untapped["digest"]
    try:
        status = side.caught_up(1)
        assert status["coverage"]["received"] > 0  # the restarted sidecar goes on
        assert status["state_machine_shadow"]["total_divergences"] == 0
        adds_up(status)
    finally:
        side.stop()
    for dead in killed:  # every killed sidecar's recording replays up to its last whole record
        assert replays_clean(dead.record) > 0


def test_shadow_sigstopped_and_resumed(tmp_path: Path) -> None:
    args = (4.0, 200, 7)
    untapped = run_bot(None, *args, tap=False)
    side = Side(tmp_path, shadow_command(tmp_path), "--deadline", "30")
    try:
        env = dict(ENV, DOGE_CORE_SHADOW="1", SHADOWDIFF_TAP=side.address, SHADOWDIFF_TAP_EXIT_WAIT="3")
        bot = subprocess.Popen(bot_argv(*args), stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        time.sleep(1.0)
        [shadow] = [pid for pid in side.children if pid != side.status()["checker"]["pid"]]
        os.kill(shadow, signal.SIGSTOP)
        time.sleep(2.0)
        stopped = side.status()
        assert stopped["coverage"]["lag_records"] > 0  # waiting on disk for the stopped shadow
        assert side.status()["uptime_s"] > 0  # and the sidecar still answers
        os.kill(shadow, signal.SIGCONT)
        out, _ = bot.communicate(timeout=120)
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["digest"] == untapped["digest"]
        status = side.caught_up(summary["transitions"] + summary["calls"])
        cov = status["coverage"]
        assert cov["received"] == summary["transitions"] + summary["calls"]
        assert status["state_machine_shadow"]["shadow_failures"] == 0 and status["shadow"]["restarts"] == 0
        assert cov["checked"] == cov["received"]
        adds_up(status)
    finally:
        side.stop()


def test_a_shadow_flooding_stderr_keeps_the_sidecar_s_memory_bounded(tmp_path: Path) -> None:
    count = tmp_path / "flooded"
    noisy = " ".join([sys.executable, str(ROOT / "tests" / "servers" / "noisy.py"), "--count", str(count)])
    side = Side(tmp_path, noisy)
    try:
        time.sleep(0.5)
        before = side.rss_kb()
        bot = run_bot(side.address, 4.0, 200, seed=5)
        status = side.caught_up(bot["transitions"] + bot["calls"])
        after = side.rss_kb()
        flooded = int(count.read_text() or 0)
        assert flooded >= 32 << 20, flooded  # at least 32 MiB of stderr went through the sidecar
        assert after - before < 48 << 10, (before, after)  # kB: far less than what was flooded
        assert status["state_machine_shadow"]["shadow_failures"] == 0
        assert status["coverage"]["checked"] == bot["transitions"] + bot["calls"]
        adds_up(status)
    finally:
        side.stop()


def _small_files() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))


def test_the_record_directory_full(tmp_path: Path) -> None:
    """Every file may hold 64 KiB (RLIMIT_FSIZE in the sidecar): writes past it fail, are counted as
    unrecorded, said on /api/status; the checker goes on, and resyncs when a new file has room."""
    args = (4.0, 300, 3)
    untapped = run_bot(None, *args, tap=False)
    side = Side(tmp_path, shadow_command(tmp_path), "--rotate-seconds", "1", preexec=_small_files)
    try:
        bot = run_bot(side.address, *args)
        assert bot["digest"] == untapped["digest"]
        status = side.caught_up(bot["transitions"] + bot["calls"])
        record, cov = status["record"], status["coverage"]
        assert cov["received"] == bot["transitions"] + bot["calls"]
        assert cov["unrecorded"] > 0 and record["write_errors"] > 0
        assert "File too large" in record["last_write_error"]
        assert cov["checked"] > 0 and cov["checked"] + cov["unrecorded"] == cov["received"]
        assert status["state_machine_shadow"]["total_divergences"] == 0  # resynced: no false alarm
        adds_up(status)
    finally:
        side.stop()
    assert all(p.stat().st_size <= 64 << 10 for p in side.record.iterdir())
    assert replays_clean(side.record) == cov["checked"]


def test_a_flood_faster_than_the_checker(tmp_path: Path) -> None:
    """A shadow that takes 3 ms a step against a bot at 1000 loops a second: the lag is bytes on disk, the
    sidecar's memory stays flat, and past the lag budget records are skipped and counted."""
    slow = " ".join([*MISBEHAVING, "--delay-ms", "3"])
    side = Side(tmp_path, slow, "--max-lag-bytes", "100000")
    try:
        time.sleep(0.5)
        before = side.rss_kb()
        env = dict(ENV, DOGE_CORE_SHADOW="1", SHADOWDIFF_TAP=side.address, SHADOWDIFF_TAP_EXIT_WAIT="3")
        bot = subprocess.Popen(bot_argv(2.0, 1000, 9), stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        peak_lag, peak_rss = 0, 0
        while bot.poll() is None:
            peak_lag = max(peak_lag, side.status()["coverage"]["lag_bytes"])
            peak_rss = max(peak_rss, side.rss_kb())
            time.sleep(0.2)
        out, _ = bot.communicate(timeout=60)
        summary = json.loads(out.strip().splitlines()[-1])
        status = side.caught_up(summary["transitions"] + summary["calls"], timeout=120)
        cov = status["coverage"]
        assert cov["lag_bytes"] == 0 and cov["lag_records"] == 0  # a skip that cut a record left bytes owed
        assert peak_lag > 0 and cov["skipped_by_sidecar"] > 0
        assert cov["received"] + cov["dropped_by_tap"] >= summary["transitions"] + summary["calls"]
        assert peak_rss - before < 64 << 10, (before, peak_rss)
        assert status["state_machine_shadow"]["total_divergences"] == 0
        adds_up(status)
    finally:
        side.stop()


@pytest.mark.parametrize("unused", [None])
def test_coverage_identity_is_documented(unused: None) -> None:
    text = (ROOT / "docs" / "robustness.md").read_text()
    assert "received = checked + lag + skipped + unchecked, where `unchecked_by`" in text
