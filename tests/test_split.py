"""Two-process replay (runtime/split.py): the authority in its own process reports byte for byte what the
one-process mode reports, failures and Ctrl-C included; real processes throughout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import MISBEHAVING, ROOT, children_of, wait_for_shadows
from shadowdiff_doge.corpusgen import generate

from shadowdiff.runtime.corpus import LogWriter, read_items
from shadowdiff.wire.codec import packb

RAISING = """
import os
from shadowdiff_doge.reference.state_machine import *  # noqa: F403
from shadowdiff_doge.reference import state_machine as _sm

_steps = 0


def transition(state, event, cfg, order_size_usd, order_sizes=None):
    global _steps
    _steps += 1
    if _steps == {at}:
        {action}
    return _sm.transition(state, event, cfg, order_size_usd, order_sizes)
"""


def _log(
    path: Path, steps: int = 300, slots: int = 2, seed: int = 5, extra: list[dict] | None = None
) -> Path:
    with LogWriter(path) as writer:
        for record in generate(steps, slots=slots, seed=seed):
            writer.write(record)
        for record in extra or []:
            writer.write(record)
    return path


def _replay(tmp: Path, name: str, args: list[str], mode: list[str]) -> dict[str, object]:
    out = tmp / name
    out.mkdir()
    report, findings = out / "report.json", out / "findings.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "shadowdiff", "replay", *args, *mode, "--deterministic",
         "--report", str(report), "--findings", str(findings)],
        cwd=ROOT, capture_output=True, check=False, timeout=300,
    )  # fmt: skip
    return {
        "rc": done.returncode,
        "stdout": done.stdout,
        "stderr": done.stderr,
        "report": report.read_bytes() if report.exists() else None,
        "findings": findings.read_bytes() if findings.exists() else None,
    }


def _both(tmp: Path, args: list[str]) -> dict[str, object]:
    one = _replay(tmp, "one", args, ["--one-process"])
    two = _replay(tmp, "two", args, ["--two-process"])
    if "--window" not in args:  # findings are written as answers are compared, and after a lockstep
        # resync one slot's resent steps can be compared after another slot's later ones: the order
        # of the lines depends on when the shadow answers, in either mode (run twice, one-process mode
        # orders them differently too); with one request in flight (--window 1) it is fixed
        for side in (one, two):
            side["findings"] = sorted((side["findings"] or b"").splitlines(keepends=True))  # type: ignore[union-attr]
    for key in one:
        assert one[key] == two[key], f"{key} differs:\n{one[key]!r}\n{two[key]!r}"
    assert b"Traceback" not in two["stderr"]  # type: ignore[operator]
    return two


def _shadow(*flags: str) -> str:
    return " ".join([*MISBEHAVING, *flags])


def _raising(tmp: Path, at: int, action: str) -> str:
    module = tmp / "raising_reducer.py"
    module.write_text(RAISING.replace("{at}", str(at)).replace("{action}", action))
    return str(module)


CASES = {
    "clean": ([], []),
    "divergences": ([], ["--shadow", _shadow("--mutate-price-ts-mod", "7")]),
    "divergences-window-1": ([], ["--shadow", _shadow("--mutate-price-ts-mod", "7"), "--window", "1"]),
    # one request in flight: where fail-fast stops does not depend on when the shadow answers
    "fail-fast": ([], ["--shadow", _shadow("--mutate-price-ts-mod", "7"), "--fail-fast", "--window", "1"]),
    "free-resync": (
        [],
        ["--shadow", _shadow("--mutate-price-ts-mod", "7"), "--mode", "free", "--resync"],
    ),
    "jobs": ([], ["--shadow", _shadow("--mutate-price-ts-mod", "7"), "--jobs", "2"]),
    "unknown-event-type": (
        [{"kind": "step", "slot": "slot-0", "seq": 10_000, "event": {"type": "Bogus", "payload": {}}}],
        [],
    ),
    "string-timestamp": (
        [
            {
                "kind": "step",
                "slot": "slot-1",
                "seq": 10_000,
                "event": {"type": "TimerTick", "payload": {"timestamp": "abc"}},
            }
        ],
        [],
    ),
    "unknown-slot": (
        [
            {
                "kind": "step",
                "slot": "nobody",
                "seq": 10_000,
                "event": {"type": "TimerTick", "payload": {"timestamp": 1.0}},
            }
        ],
        [],
    ),
    "bad-patch": ([{"kind": "patch", "slot": "slot-0", "delta": {"set": {"orders": "not a list"}}}], []),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_both_modes_report_the_same_bytes(tmp_path, case) -> None:
    extra, args = CASES[case]
    log = _log(tmp_path / "log.msgpack", extra=extra)
    got = _both(tmp_path, [str(log), *args])
    if case in ("unknown-event-type", "unknown-slot"):
        assert got["rc"] == 2 and b"shadowdiff: error: " in got["stderr"]  # type: ignore[operator]
    if case == "divergences":
        assert got["rc"] == 1 and got["findings"]


def test_both_modes_agree_when_the_shadow_crashes(tmp_path) -> None:
    """One request in flight: what a crash takes down with it (and so the restarts) is fixed."""
    log = _log(tmp_path / "log.msgpack")
    steps = [r.input for r in read_items([log]) if hasattr(r, "input")]
    crash = next(i for i in range(100, len(steps)) if hasattr(steps[i], "payload"))
    got = _both(
        tmp_path,
        [
            str(log),
            "--shadow",
            _shadow("--crash-on-ts", repr(steps[crash].payload["timestamp"])),
            "--window",
            "1",
        ],
    )
    assert got["rc"] == 1 and b"crash" in got["stdout"]  # type: ignore[operator]


def test_both_modes_agree_on_a_torn_log_and_a_directory_of_logs(tmp_path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _log(corpus / "a.msgpack", seed=1)
    torn = _log(corpus / "b.msgpack", seed=2)
    torn.write_bytes(torn.read_bytes()[:-7])
    got = _both(tmp_path, [str(corpus), "--shadow", _shadow("--mutate-price-ts-mod", "7")])
    assert b"torn last record skipped" in got["stderr"]  # type: ignore[operator]


def test_both_modes_agree_when_the_authority_module_raises(tmp_path) -> None:
    module = _raising(tmp_path, 120, "raise ZeroDivisionError('boom')")
    log = _log(tmp_path / "log.msgpack")
    got = _both(tmp_path, [str(log), "--authoritative", module])
    assert got["rc"] == 2 and b"the authoritative reducer raised ZeroDivisionError: boom" in got["stderr"]  # type: ignore[operator]


def test_both_modes_agree_on_the_upstream_scenarios(tmp_path, upstream) -> None:
    _both(tmp_path, [str(upstream), "--shadow", _shadow("--mutate-price-at", "5", "--every")])


def test_an_authority_process_that_dies_is_one_line_and_exit_2(tmp_path) -> None:
    module = _raising(tmp_path, 150, "os._exit(9)")
    log = _log(tmp_path / "log.msgpack")
    got = _replay(tmp_path, "two", [str(log), "--authoritative", module], ["--two-process"])
    err = got["stderr"].decode()  # type: ignore[attr-defined]
    assert got["rc"] == 2, err
    assert "shadowdiff: error: the authority's process ended early (exit code 9)" in err
    assert "Traceback" not in err and "verdict: incomplete" in got["stdout"].decode()  # type: ignore[attr-defined]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_gives_the_same_report_in_both_modes(tmp_path, jobs) -> None:
    """The shadow hangs on one step: a Ctrl-C to the whole group then ends both modes at the same place
    (the window full behind the hung step), with the same report and exit 130, and no process left."""
    log = _log(tmp_path / "hang.msgpack", steps=1200, slots=1, seed=3)
    steps = [r.input for r in read_items([log]) if hasattr(r, "input")]
    hung = next(i for i in range(300, len(steps)) if hasattr(steps[i], "payload"))
    shadow = _shadow("--hang-on-ts", repr(steps[hung].payload["timestamp"]))
    outs = []
    for mode in (["--one-process"], ["--two-process"]):
        report = tmp_path / f"r{len(outs)}.json"
        proc = subprocess.Popen(
            [sys.executable, "-m", "shadowdiff", "replay", str(log), "--shadow", shadow, "--deadline", "120",
             "-j", jobs, "--deterministic", "--report", str(report), *mode],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        wait_for_shadows(proc.pid, int(jobs))
        time.sleep(3)  # the shadow sits on the hung step, the window full behind it
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert children_of(proc.pid) == []
        outs.append((out, err, report.read_bytes()))
    assert outs[0] == outs[1]
    assert json.loads(outs[1][2])["summary"]["interrupted"]


def test_the_record_stream_is_the_log_format(tmp_path) -> None:
    """What the authority's process writes is recorded-outcome records (docs/formats.md): replayed as a
    log with --authoritative recorded, it agrees."""
    from shadowdiff_doge.inprocess import InProcessReducer

    from shadowdiff.runtime.authority import stream

    log = _log(tmp_path / "log.msgpack", steps=200)
    records: list[dict] = []
    stream([str(log)], InProcessReducer("shadowdiff_doge.reference.state_machine"), records.append)
    assert records[-1] == {"kind": "end"}
    steps = [r for r in records if r["kind"] in ("step", "call")]
    assert len(steps) == 200 and all("outcome" in r for r in steps)
    recorded = tmp_path / "recorded.msgpack"
    with recorded.open("wb") as out:
        out.write(packb({"kind": "header", "format": "shadowdiff-log", "version": 1, "slots": {}}))
        for r in records[:-1]:
            if r["kind"] in ("step", "call"):
                r = {**r, **r.pop("input")}
                if r["kind"] == "step":
                    r["event"] = {"type": r.pop("type"), "payload": r.pop("payload")}
            out.write(packb(r))
    done = subprocess.run(
        [sys.executable, "-m", "shadowdiff", "replay", str(recorded), "--authoritative", "recorded",
         "--shadow", _shadow()], cwd=ROOT, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.timeout(120)
def test_the_authority_process_dies_with_its_parent(tmp_path) -> None:
    """SIGKILL the checking process mid-replay: the kernel ends the authority's process too (Linux's
    parent-death signal, or the pipe that breaks), however far ahead of the checker it was."""
    log = _log(tmp_path / "slow.msgpack", steps=3000, slots=2, seed=6)
    proc = subprocess.Popen(
        [sys.executable, "-m", "shadowdiff", "replay", str(log), "--shadow", _shadow("--delay-ms", "2"),
         "--two-process"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    wait_for_shadows(proc.pid, 1)
    authority: list[int] = []
    deadline = time.monotonic() + 30
    while not authority and time.monotonic() < deadline:  # forked just after the shadow starts
        authority = [pid for pid in children_of(proc.pid)
                     if "replay" in (Path("/proc") / str(pid) / "cmdline").read_text()]  # fmt: skip
        time.sleep(0.05)
    assert len(authority) == 1  # a fork of the checker: the same command line
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and Path(f"/proc/{authority[0]}").exists():
        stat = (Path("/proc") / str(authority[0]) / "stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":  # ended, waiting for init to reap it
            break
        time.sleep(0.05)
    alive = (
        Path(f"/proc/{authority[0]}").exists()
        and (Path("/proc") / str(authority[0]) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    )
    assert not alive, "the authority's process outlived its parent"
