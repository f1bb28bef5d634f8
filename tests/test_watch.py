"""``watch`` against a real HTTP stand-in for the bot's ``/api/status`` on 127.0.0.1.

The stand-in counts up on every poll, can fail polls with HTTP 500, can be stopped (connection refused)
and restarted with its counters reset, and can answer slowly (to interrupt a poll in flight).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from shadowdiff.cli import runbook as runbook_cli
from shadowdiff.model.errors import UsageError
from shadowdiff.runbook.gate import judge
from shadowdiff.runbook.watch import next_seq, parse_duration, status_url, watch

ROOT = Path(__file__).resolve().parent.parent


class StandIn:
    """The bot's status endpoint: ``transition_checks`` is the number of polls served since (re)start."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.polls = 0
        self.fail_next = 0
        self.delay = 0.0
        self.slow_started = threading.Event()
        self.port = 0
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != "/api/status":
                    self.send_error(404)
                    return
                with stand_in.lock:
                    if stand_in.fail_next:
                        stand_in.fail_next -= 1
                        self.send_error(500, "boom")
                        return
                    stand_in.polls += 1
                    checks, delay = stand_in.polls, stand_in.delay
                if delay:
                    stand_in.slow_started.set()
                    time.sleep(delay)
                body = json.dumps(
                    {
                        "mode": "live",
                        "top_phase": "S0",
                        "provenance": {"synthetic": True},
                        "state_machine_shadow": {
                            "enabled": True,
                            "executable_available": True,
                            "transition_checks": checks,
                            "invariant_checks": checks,
                            "total_divergences": 0,
                            "shadow_failures": 0,
                        },
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                # The watcher may have given up on this poll (its timeout, or it was killed).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()

    def restart(self) -> None:
        """The bot restarts: same port, counters from zero."""
        self.stop()
        with self.lock:
            self.polls = 0
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    server = StandIn()
    server.start()
    yield server
    server.stop()


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)


def test_samples_gaps_restart_and_resumed_appends(stand_in: StandIn, tmp_path: Path) -> None:
    out = tmp_path / "w.jsonl"
    stop = threading.Event()
    thread = threading.Thread(
        target=watch,
        args=(stand_in.url,),
        kwargs={"every": 0.03, "duration": 60, "out_path": str(out), "stop": stop},
    )
    thread.start()

    def lines() -> list[dict[str, Any]]:
        return read(out) if out.exists() else []

    wait_for(lambda: len(lines()) >= 5)
    stand_in.fail_next = 3
    wait_for(lambda: sum(1 for r in lines() if r.get("error", "").startswith("HTTP 500")) == 3)
    stand_in.stop()
    wait_for(lambda: sum(1 for r in lines() if "unreachable" in r.get("error", "")) >= 2)
    stand_in.restart()
    restarted_at = len(lines())
    wait_for(lambda: sum(1 for r in lines()[restarted_at:] if not r.get("gap")) >= 5)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()

    records = lines()
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    gaps = [r for r in records if r.get("gap")]
    assert all(set(r) == {"ts", "seq", "source", "gap", "error"} for r in gaps)
    assert any("refused" in r["error"] for r in gaps)
    good = [r for r in records if not r.get("gap")]
    assert all(r["source"] == stand_in.url + "/api/status" for r in records)
    assert all(r["provenance"]["synthetic"] is True for r in good)  # the stand-in says so
    assert {r["mode"] for r in good} == {"live"}
    checks = [r["state_machine_shadow"]["transition_checks"] for r in good]
    assert checks[:5] == [1, 2, 3, 4, 5]
    assert any(b < a for a, b in itertools.pairwise(checks)), "the restart reset the counters"
    result = judge(records)
    assert len(result.segments) == 2
    assert result.window["gap_samples"] == len(gaps)

    summary = watch(stand_in.url, every=0.02, duration=0.06, out_path=str(out))
    resumed = read(out)
    assert summary.first_seq == records[-1]["seq"] + 1
    assert [r["seq"] for r in resumed] == list(range(1, len(resumed) + 1))
    assert resumed[: len(records)] == records


def test_stops_by_itself_at_the_end_of_duration(stand_in: StandIn, tmp_path: Path) -> None:
    out = tmp_path / "w.jsonl"
    began = time.monotonic()
    summary = watch(stand_in.url, every=0.05, duration=0.25, out_path=str(out))
    took = time.monotonic() - began
    assert 0.25 <= took < 3
    assert 3 <= summary.samples <= 6  # polls on the grid 0, 0.05, ..., 0.25 (a slow poll skips points)
    assert summary.gaps == 0 and not summary.interrupted
    assert len(read(out)) == summary.samples


def test_a_half_written_last_line_is_dropped_before_appending(stand_in: StandIn, tmp_path: Path) -> None:
    out = tmp_path / "w.jsonl"
    out.write_text('{"ts":"2026-01-01T00:00:00.000Z","seq":7,"gap":true,"error":"x","source":"s"}\n{"ts":"20')
    watch(stand_in.url, every=0.05, duration=0.05, out_path=str(out))
    records = read(out)
    assert [r["seq"] for r in records][:2] == [7, 8]


def test_next_seq_reads_only_complete_lines() -> None:
    assert next_seq(b"") == 0
    assert next_seq(b'{"seq": 4}\n{"seq": 5}\n') == 6
    assert next_seq(b'{"seq": 4}\n{"seq": 5') == 5


@pytest.mark.parametrize(
    ("text", "seconds"), [("60s", 60), ("5m", 300), ("48h", 172800), ("1.5s", 1.5), ("250ms", 0.25), ("2", 2)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "-1s", "0s", "h"])
def test_bad_durations_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


def test_status_url() -> None:
    assert status_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080/api/status"
    assert status_url("http://127.0.0.1:8080/api/status/") == "http://127.0.0.1:8080/api/status"
    with pytest.raises(UsageError):
        status_url("127.0.0.1:8080")


def group() -> click.Group:
    main = click.Group("shadowdiff")
    runbook_cli.register(main)
    return main


def test_cli_writes_to_stdout_and_rejects_bad_durations(stand_in: StandIn) -> None:
    runner = CliRunner()
    done = runner.invoke(group(), ["watch", stand_in.url, "--every", "50ms", "--duration", "0.1s"])
    assert done.exit_code == 0, done.output
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["seq"] for r in lines] == list(range(1, len(lines) + 1)) and len(lines) >= 2
    bad = runner.invoke(group(), ["watch", stand_in.url, "--every", "soon"])
    assert bad.exit_code == 2
    assert bad.stderr.strip() == "shadowdiff: error: not a duration: 'soon' (examples: 60s, 5m, 48h, 1.5s)"


def test_sigint_stops_after_the_line_in_hand(stand_in: StandIn, tmp_path: Path) -> None:
    out = tmp_path / "w.jsonl"
    script = (
        "import click; from shadowdiff.cli import runbook as runbook_cli; g = click.Group('shadowdiff'); "
        "runbook_cli.register(g); g()"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    argv = [
        sys.executable,
        "-c",
        script,
        "watch",
        stand_in.url,
        "--every",
        "0.05s",
        "--duration",
        "1h",
        "--timeout",
        "5s",
    ]
    process = subprocess.Popen([*argv, "--out", str(out)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: out.exists() and len(read(out)) >= 2)
        stand_in.delay = 1.0
        assert stand_in.slow_started.wait(10)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "watch interrupted" in stderr and "Traceback" not in stderr
    records = read(out)
    # The poll in flight when SIGINT came was finished and written, and nothing after it.
    assert records[-1]["state_machine_shadow"]["transition_checks"] == stand_in.polls
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
