"""What the benches share: one definition of "the reference reducer alone", the 30-day stream, and the
bot's own synchronous JSON-lines shadow path.

Both throughput.py and port_speed.py compare against the reducer alone; walking the records in one
place keeps those comparisons about the same work.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shadowdiff_doge import corpusgen  # noqa: E402
from shadowdiff_doge.context import size_of, sizes_of  # noqa: E402
from shadowdiff_doge.inprocess import InProcessReducer  # noqa: E402
from shadowdiff_doge.reference import state_machine as sm  # noqa: E402

from shadowdiff.model import Call, Context  # noqa: E402
from shadowdiff.model.records import PatchRecord, Record, Snapshot  # noqa: E402
from shadowdiff.runtime.corpus import LogWriter, read_items  # noqa: E402

BeforeStep = Callable[[Record, Any, Context], bool]
"""Called before each transition with the record, the module's pre-state and the context; returning
False stops the walk."""


def walk_module(items: list, before_step: BeforeStep | None = None) -> int:
    """Drive the reference module over the records as the bot does (transition + check_invariants;
    patches and calls applied through the in-process adapter's own paths); the steps taken."""
    adapter = InProcessReducer(sm)
    contexts: dict[str, Context] = {}
    steps = 0
    for item in items:
        if isinstance(item, Snapshot):
            adapter.open(item.slot, item.state)
            contexts[item.slot] = item.context
        elif isinstance(item, PatchRecord):
            adapter.patch(item.slot, item.delta)
        elif isinstance(item, Record):
            state = adapter.held(item.slot)
            if isinstance(item.input, Call):
                post = sm.apply_order_regime_at_entry(state, **item.input.args)
            else:
                ctx = contexts[item.slot]
                if before_step is not None and not before_step(item, state, ctx):
                    break
                event = adapter.module_event(item.input)
                post, _ = sm.transition(
                    state, event, adapter.module_config(ctx.config), size_of(ctx), sizes_of(ctx)
                )
                sm.check_invariants(post)
            adapter.hold(item.slot, post)
            steps += 1
    return steps


def day_items(events: int, days: int, seed: int) -> list:
    """A single-slot stream of ``events`` steps spread over ``days`` simulated days."""
    corpusgen.TICK_SECONDS = days * 86400 / (events / 2.3)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / f"{days}d.msgpack"
        with LogWriter(log) as writer:
            for record in corpusgen.generate(events, slots=1, seed=seed):
                writer.write(record)
        return list(read_items([log]))


def thirty_day_items(events: int, seed: int = 30) -> list:
    """A single-slot stream of ``events`` steps spread over 30 simulated days."""
    return day_items(events, 30, seed)


def steps_of(items: list) -> int:
    return sum(isinstance(i, Record) for i in items)


def prefix_of(items: list, steps: int) -> list:
    """The items up to the ``steps``-th record (snapshots and patches before it included)."""
    out, seen = [], 0
    for item in items:
        seen += isinstance(item, Record)
        if seen > steps:
            break
        out.append(item)
    return out


def synchronous_jsonl(items: list, command: list[str], limit: int | None = None) -> float:
    """One JSON request with the whole state, then wait for its line: the bot's own shadow path."""
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin and proc.stdout
    done = 0

    def ask_shadow(item: Record, state: object, ctx: Context) -> bool:
        nonlocal done
        if limit is not None and done >= limit:
            return False
        request = {
            "method": "transition",
            "state": sm.to_dict(state),
            "event": item.input.payload,
            **ctx.to_wire(),
        }
        proc.stdin.write(json.dumps(request).encode() + b"\n")
        proc.stdin.flush()
        json.loads(proc.stdout.readline())
        done += 1
        return True

    started = time.perf_counter()
    walk_module(items, ask_shadow)
    elapsed = time.perf_counter() - started
    proc.stdin.close()
    proc.wait()
    return done / elapsed


def tenths(items: list) -> tuple[int, list[int]]:
    """The number of steps in ``items`` and the item indexes cutting them into ten equal shares of steps."""
    steps = [i for i, item in enumerate(items) if isinstance(item, Record)]
    return len(steps), [0] + [steps[len(steps) * k // 10] for k in range(1, 10)] + [len(items)]


def replay_by_tenths(replay: Any, authority: Any, items: list, cuts: list[int]
                     ) -> tuple[list[float], list[float], Snapshot]:  # fmt: skip
    """Feed ``items`` to ``replay`` a tenth at a time, each drained before it is timed: events/s and our
    CPU microseconds a step per tenth, and slot-0 as the last tenth starts (its state, the whole history,
    and context), to replay that tenth again from there."""
    rates, cpu = [], []
    for k in range(10):
        chunk = items[cuts[k] : cuts[k + 1]]
        started, cpu_started = time.perf_counter(), time.process_time()
        for item in chunk:
            replay.feed(item)
        replay.drain()
        rates.append(steps_of(chunk) / (time.perf_counter() - started))
        cpu.append((time.process_time() - cpu_started) / steps_of(chunk) * 1e6)
        if k == 8:
            at_last = Snapshot("slot-0", authority.get("slot-0"), replay.context_of("slot-0"))
    return rates, cpu, at_last
