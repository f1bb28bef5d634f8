"""The sidecar's checking rate, each part in its own process as in production, in both of its shapes.

    python bench/sidecar_rate.py [--loops 20000] [--modes one,two]

1. The simulated bot flat out with no tap: the reducer's own rate (transitions/s).
2. For each shape of the sidecar, `--one-process` (the checker a thread of the receiving process) and
   `--two-process` (the checker a child process reading the log from disk; the default), with the
   Haskell port, and the same bot flat out under the tap (`python -m shadowdiff.tap`): the sidecar's
   checked records per second, from the bot's first record until the sidecar has caught up, next to
   the rate of step 1. Target (issue 8): >= 0.7x. This rate is bounded by the tapped bot (the tap's
   sender shares the bot's interpreter, and the bot, the sidecar and the shadow share the machine's
   cores), so:
3. the sidecar's own capacity: the records step 2 recorded, pumped into a fresh sidecar of the same
   shape over its socket as fast as it takes them (no bot running), until it has checked them all;
   also the rate at which it *received* them (recorded to disk), which the two-process shape keeps
   apart from the checking. Target (issue 16): capacity >= 0.5x the reducer alone.

Both shapes are measured in one run, so their ratios share the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXE = ROOT / "adapters" / "doge" / "haskell" / "build" / "doge-core-exe"
MODULE = "shadowdiff_doge.reference.state_machine"
MODES = {"one": ("one process", "--one-process"), "two": ("two processes", "--two-process")}


def bot(loops: int, env: dict[str, str] | None = None, tap: bool = False) -> tuple[dict, float]:
    """Run the simulated bot for ``loops`` loops as fast as it goes; its summary and its wall time
    less the interpreter's start-up (measured with a one-loop run)."""

    def run(n: int) -> tuple[dict, float]:
        # --seconds S --rate R paces S*R loops; a rate far above what the bot can do means flat out
        argv = [sys.executable, "-m", "shadowdiff_doge.simbot", "--seconds", str(n / 1e7), "--rate", "1e7"]
        if tap:
            argv = [sys.executable, "-m", "shadowdiff.tap", "--module", MODULE, *argv[1:]]
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1]), time.perf_counter() - started

    _, startup = run(1)
    summary, elapsed = run(loops)
    return summary, max(1e-3, elapsed - startup)


def status(http: str) -> dict:
    with urllib.request.urlopen(http + "/api/status", timeout=10) as response:
        return json.loads(response.read())


def tapped_run(loops: int, flag: str, tmp: Path) -> dict:
    """The bot flat out under the tap into a sidecar of one shape; its figures."""
    sock = tmp / "tap.sock"
    side, http = start_sidecar(sock, tmp / "rec", flag)
    try:
        env = {**os.environ, "DOGE_CORE_SHADOW": "1", "SHADOWDIFF_TAP": f"unix:{sock}"}
        started = time.perf_counter()
        tapped, bot_elapsed = bot(loops, env, tap=True)
        deadline = time.monotonic() + 600
        while True:
            cov = status(http)["coverage"]
            if cov["lag_records"] == 0 and cov["received"] > 0:
                break
            if time.monotonic() > deadline:
                sys.exit(f"the sidecar did not catch up: {cov}")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        final = status(http)
    finally:
        side.send_signal(signal.SIGTERM)
        side.wait(timeout=60)
    return {"bot_rate": tapped["transitions"] / bot_elapsed, "checked": final["coverage"]["checked"],
            "elapsed": elapsed, "final": final}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loops", type=int, default=20_000, help="bot loops (each steps every slot)")
    parser.add_argument("--modes", default="one,two", help="which shapes: one, two or one,two")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    alone, alone_s = bot(args.loops)
    alone_rate = alone["transitions"] / alone_s
    rows = {}
    for mode in modes:
        name, flag = MODES[mode]
        with tempfile.TemporaryDirectory() as tmp:
            run = tapped_run(args.loops, flag, Path(tmp))
            run["capacity"], run["received_rate"], run["pumped"] = pump_recording(
                Path(tmp) / "rec", Path(tmp), flag
            )
        rows[name] = run
    print(f"{'reducer alone (simulated bot, no tap)':<44}{alone_rate:>10,.0f} transitions/s")
    for name, run in rows.items():
        final, checked = run["final"], run["checked"]
        print(f"-- sidecar, {name}")
        print(f"{'  bot under the tap':<44}{run['bot_rate']:>10,.0f} transitions/s")
        print(f"{'  sidecar checked (own process)':<44}{checked / run['elapsed']:>10,.0f} records/s  "
              f"({checked:,} records, {final['state_machine_shadow']['total_divergences']} divergences, "
              f"dropped by the tap {final['coverage'].get('dropped_by_tap', 0)})")  # fmt: skip
        print(
            f"  ratio sidecar / reducer alone: {checked / run['elapsed'] / alone_rate:.2f}x  (target >= 0.7x)"
        )
        print(
            f"{'  sidecar capacity (recording pumped in)':<44}{run['capacity']:>10,.0f} records/s  "
            f"({run['pumped']:,} records; received and recorded at {run['received_rate']:,.0f}/s)"
        )
        print(f"  ratio capacity / reducer alone: {run['capacity'] / alone_rate:.2f}x   (target >= 0.5x)")
    if len(rows) == 2:
        one, two = (run["checked"] / run["elapsed"] for run in rows.values())
        capacity = [run["capacity"] for run in rows.values()]
        print(
            f"two processes / one process: capacity {capacity[1] / capacity[0]:.2f}x, "
            f"checked under the tap {two / one:.2f}x"
        )


def start_sidecar(sock: Path, record: Path, flag: str) -> tuple[subprocess.Popen, str]:
    argv = [sys.executable, "-m", "shadowdiff", "sidecar", "--listen", f"unix:{sock}", "--shadow",
            f"{EXE} --msgpack", "--http", "127.0.0.1:0", "--record", str(record), flag]  # fmt: skip
    side = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert side.stdout is not None
    return side, json.loads(side.stdout.readline())["http"]


def pump_recording(recorded: Path, tmp: Path, flag: str) -> tuple[float, float, int]:
    """Every tapped record of a recording, sent to a fresh sidecar as a tap would (frames of 256
    records) but as fast as the socket takes them; records/s until all are checked, and until all
    are received."""
    sys.path.insert(0, str(ROOT))
    from shadowdiff.tap import recv_frame, send_frame
    from shadowdiff.wire.codec import make_unpacker, packb

    records = []
    for log in sorted(recorded.glob("*.msgpack")):
        unpacker = make_unpacker()
        unpacker.feed(log.read_bytes())
        records += [packb(r) for r in unpacker if r.get("kind") not in ("header", "meta")]
    steps = sum(1 for r in records if msgpack_kind(r) in ("step", "call"))
    sock = tmp / "pump.sock"
    side, http = start_sidecar(sock, tmp / "rec2", flag)
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(str(sock))
        send_frame(conn, packb({"kind": "hello", "protocol": 1, "tap": "bench-pump", "pid": os.getpid()}))
        recv_frame(conn)
        started = time.perf_counter()
        for k in range(0, len(records), 256):
            send_frame(conn, b"".join(records[k : k + 256]))
        received_at = None
        while True:
            cov = status(http)["coverage"]
            if received_at is None and cov["received"] >= steps:
                received_at = time.perf_counter() - started
            if cov["checked"] >= steps:
                break
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        conn.close()
    finally:
        side.send_signal(signal.SIGTERM)
        side.wait(timeout=30)
    return steps / elapsed, steps / (received_at or elapsed), steps


def msgpack_kind(raw: bytes) -> str:
    from shadowdiff.wire.codec import unpackb

    value = unpackb(raw)
    return str(value.get("kind")) if isinstance(value, dict) else ""


if __name__ == "__main__":
    main()
