"""The Haskell port alone vs the Python reference in-process, on the same corpus, in one run.

    python bench/port_speed.py [--runs 5] [--min-seconds 0.3] [--events 260000]

1. The bundled corpus as PROTOCOL.md requests (open, step, call, patch), piped into
   `doge-core-exe --msgpack` with no Python in the loop: steps/s of the server alone, against the
   reference module doing the same steps in-process, bare (transition + check_invariants, as the bot
   runs it: the target line, >= 2x) and through the in-process adapter (which also computes each
   step's delta as the server does: informational). Both sides take the same steps of the same
   corpus, repeated until one server run lasts --min-seconds (so process start-up does not dominate);
   the runs alternate (server, Python, server, Python, ...) so a noisy machine slows both alike, and
   each side's best of --runs counts.
2. A single-slot 30-day session (>= 250,000 events, the history past 1,500 completed cycles) piped the
   same way; answers are timestamped as they arrive, and steps/s are printed per tenth. Target: the last
   tenth >= 0.8x the first.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgpack

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import thirty_day_items, walk_module  # noqa: E402
from shadowdiff_doge.domain import DEFAULT_EXE  # noqa: E402
from shadowdiff_doge.inprocess import InProcessReducer  # noqa: E402
from shadowdiff_doge.reference import state_machine as sm  # noqa: E402

from shadowdiff.core.reducer import Step  # noqa: E402
from shadowdiff.model import Call  # noqa: E402
from shadowdiff.model.records import PatchRecord, Record, Snapshot  # noqa: E402
from shadowdiff.runtime.corpus import read_items  # noqa: E402

CORPUS = ROOT / "corpora" / "sample" / "doge-3slots-7days.msgpack.gz"


def requests(items: list) -> tuple[bytes, list[bool]]:
    """The request stream, and for each answer whether it answers a step (or call)."""
    packer = msgpack.Packer(use_bin_type=True)
    out = bytearray(packer.pack({"op": "hello", "id": 0, "protocol": 1}))
    is_step = [False]
    sessions: dict[str, int] = {}
    contexts = {}
    for rid, item in enumerate(items, 1):
        if isinstance(item, Snapshot):
            # a fresh session for every snapshot (a repeated corpus reopens its slots)
            sessions[item.slot] = rid
            contexts[item.slot] = item.context
            msg = {"op": "open", "state": item.state}
        elif isinstance(item, PatchRecord):
            msg = {"op": "patch", "delta": item.delta}
        elif isinstance(item.input, Call):
            msg = {"op": "call", "function": item.input.function, "args": item.input.args}
        else:
            msg = {
                "op": "step",
                "event": item.input.to_wire(),
                "with_invariants": True,
                **contexts[item.slot].to_wire(),
            }
        msg.update(id=rid, session=sessions[item.slot])
        out += packer.pack(msg)
        is_step.append(isinstance(item, Record))
    return bytes(out), is_step


SERVER_CPU: list[float] = []  # CPU seconds (user + system) of each server run, in order


def server_alone(payload: bytes, is_step: list[bool]) -> list[float]:
    """Arrival time of every step answer, the clock started when the first byte went in. The reader
    only timestamps raw chunks while the server runs; answers are decoded afterwards, so decoding
    them in Python does not slow the server's side of the pipe."""
    proc = subprocess.Popen([str(DEFAULT_EXE), "--msgpack"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin and proc.stdout

    def feed() -> None:
        assert proc.stdin
        proc.stdin.write(payload)
        proc.stdin.close()

    chunks: list[tuple[float, bytes]] = []
    started = time.perf_counter()
    writer = threading.Thread(target=feed)
    writer.start()
    while chunk := proc.stdout.read1(1 << 16):
        chunks.append((time.perf_counter() - started, chunk))
    writer.join()
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    SERVER_CPU.append(usage.ru_utime + usage.ru_stime)
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    times: list[float] = []
    n = 0
    for now, chunk in chunks:
        unpacker.feed(chunk)
        for answer in unpacker:
            if "error" in answer:
                raise SystemExit(f"server error: {answer}")
            if is_step[n]:
                times.append(now)
            n += 1
    return times


PYTHON_CPU: list[float] = []  # CPU seconds of each bare Python run, in order


def python_alone(items: list, through_adapter: bool) -> float:
    """The reference module bare (as the bot runs it), or through the in-process adapter (which also
    computes each step's delta, as the server does)."""
    started = time.perf_counter()
    if not through_adapter:
        cpu = time.process_time()
        steps = walk_module(items)
        PYTHON_CPU.append(time.process_time() - cpu)
        return steps / (time.perf_counter() - started)
    adapter = InProcessReducer(sm)
    contexts = {}
    steps = 0
    for item in items:
        if isinstance(item, Snapshot):
            adapter.open(item.slot, item.state)
            contexts[item.slot] = item.context
        elif isinstance(item, PatchRecord):
            adapter.patch(item.slot, item.delta)
        else:
            adapter.step(Step(item.slot, item.input, contexts[item.slot], True))
            steps += 1
    return steps / (time.perf_counter() - started)


def repeat_items(items: list, times: int) -> list:
    """The corpus ``times`` over: each pass reopens its sessions from their snapshots, so every pass
    takes the same steps from the same states on both sides."""
    return [item for _ in range(times) for item in items]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=260_000, help="length of the 30-day stream")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per side (best counts)")
    parser.add_argument(
        "--min-seconds", type=float, default=0.3, help="repeat the corpus until a server run lasts this long"
    )
    args = parser.parse_args()
    corpus = list(read_items([CORPUS]))
    payload, is_step = requests(corpus)
    once = server_alone(payload, is_step)[-1]
    times = max(1, math.ceil(args.min_seconds / once))
    items = repeat_items(corpus, times)
    payload, is_step = requests(items)
    hs_runs: list[float] = []
    bare_runs: list[float] = []
    adapter_runs: list[float] = []
    for _ in range(args.runs):  # interleaved: H, P, P', H, P, P', ...
        arrivals = server_alone(payload, is_step)
        hs_runs.append(len(arrivals) / arrivals[-1])
        bare_runs.append(python_alone(items, False))
        adapter_runs.append(python_alone(items, True))
    hs, py_bare, py_adapter = max(hs_runs), max(bare_runs), max(adapter_runs)
    steps = sum(is_step)
    print(f"corpus {CORPUS.name} x{times}: {steps:,} steps per run, best of {args.runs} interleaved runs")
    print(f"{'Haskell server alone (piped, sessions)':<48}{hs:>10,.0f} steps/s")
    print(
        f"{'Python reference in-process, bare':<48}{py_bare:>10,.0f} steps/s   "
        f"ratio {hs / py_bare:.2f}x   (target >= 2x)"
    )
    print(
        f"{'Python reference through the adapter (deltas)':<48}{py_adapter:>10,.0f} steps/s   "
        f"ratio {hs / py_adapter:.2f}x   (informational)"
    )
    # CPU time is what other tenants of a shared machine cannot take: the same runs, per CPU-second
    hs_cpu, py_cpu = steps / min(SERVER_CPU[-args.runs :]), steps / min(PYTHON_CPU)
    print(
        f"{'per CPU-second: server / Python bare':<48}{hs_cpu:>10,.0f} / {py_cpu:,.0f} steps   "
        f"ratio {hs_cpu / py_cpu:.2f}x   (informational)"
    )
    long_items = thirty_day_items(args.events)
    payload, is_step = requests(long_items)
    times = server_alone(payload, is_step)
    tenth = len(times) // 10
    rates = []
    previous = 0.0
    for k in range(10):
        end = times[(k + 1) * tenth - 1]
        rates.append(tenth / (end - previous))
        previous = end
    print(f"\n30-day session: {len(times):,} steps")
    for k, rate in enumerate(rates):
        print(f"  tenth {k + 1:>2}: {rate:>10,.0f} steps/s")
    print(f"  last tenth / first tenth: {rates[-1] / rates[0]:.2f}x   (target >= 0.8x)")


if __name__ == "__main__":
    main()
