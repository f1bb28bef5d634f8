"""Recording size per transition on a multi-slot bot: flat with history and with the number of slots.

    python bench/slot_recording.py [--loops 6000] [--seed 1]

Drives the simulated bot through the tap's own record builder (the very records a live tap sends;
no sockets, so the figures are deterministic) with slot hints off, so the tap infers the slots, for:
distinct slots, and identical slots (same start, same seed per slot, the same event objects, the
config's profit target copied into every slot: the backtester's case), with 3 and 9 slots. Prints, per
run: the slots found against the slots the bot keeps, snapshots, patches (against the bot's own
changes outside the reducer), calls attributed to the wrong slot, and the msgpack bytes per transition
and the largest patch over the first and the last fifth of the calls (snapshots aside). Then the cost
of naming slots on the tap's thread: microseconds per call to build the records with slot hints and
with the slots inferred (the bot's thread does the same either way).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shadowdiff_doge import simbot
from shadowdiff_doge.reference import state_machine as sm

from shadowdiff import tap
from shadowdiff.wire.codec import packb


class OldRule(tap.RecordBuilder):
    """The rule before issue 19, for comparison: the known slot sharing the most objects by identity
    (tuple items at both ends, floats not at their default), a new slot only when none shares any."""

    def _attribute(self, pre: Any) -> Any:
        best, score = None, 0
        for track in self.tracks.values():
            got = kinship(self.wire, pre, track.post)
            if got > score:
                best, score = track, got
        return best


def kinship(wire: Any, pre: Any, known: Any) -> int:
    if type(pre) is not type(known):
        return 0
    score = 0
    defaults = wire.defaults(pre)
    for name in wire.fields(pre):
        a, b = getattr(pre, name), getattr(known, name)
        if isinstance(a, tuple) and isinstance(b, tuple):
            if a is b:
                score += len(a)
            elif a and b:
                score += (a[0] is b[0]) + (a[-1] is b[-1])
        elif isinstance(a, float) and a is b and a != defaults.get(name):
            score += 1
    return score


def run(loops: int, seed: int, slots: int, identical: bool, old: bool = False) -> dict[str, Any]:
    builder = OldRule(sm) if old else tap.RecordBuilder(sm)
    sizes: list[tuple[str, int]] = []
    wrong = 0
    seq = 0

    def observe(function: str, slot: str, args: tuple[Any, ...], result: Any) -> None:
        nonlocal seq, wrong
        kind = tap.TRANSITION if function == "transition" else tap.CALL
        for record in builder.records_for((kind, function, None, seq, args, {}, result)):
            sizes.append((record["kind"], len(packb(record))))
            wrong += record["kind"] in ("step", "call") and record["slot"] != slot
        seq += 1

    bot = simbot.SimBot(seed=seed, slots=slots, observer=observe, identical=identical)
    for _ in range(loops):
        bot.loop()
    calls = sum(kind in ("step", "call") for kind, _ in sizes)
    fifth = calls // 5
    parts = {"first": [0, 0, 0], "last": [0, 0, 0]}  # bytes, calls, largest patch
    seen = 0
    for kind, size in sizes:
        seen += kind in ("step", "call")
        name = "first" if seen <= fifth else "last" if seen > calls - fifth else None
        if name is None or kind == "snapshot":
            continue
        part = parts[name]
        part[0] += size
        part[1] += kind in ("step", "call")
        if kind == "patch":
            part[2] = max(part[2], size)
    return {
        "kept": slots,
        "found": len(builder.tracks),
        "snapshots": builder.counters["snapshots"],
        "patches": builder.counters["patches"],
        "bot_patches": bot.patches,
        "wrong": wrong,
        "calls": calls,
        "first": parts["first"][0] / max(1, parts["first"][1]),
        "last": parts["last"][0] / max(1, parts["last"][1]),
        "first_patch": parts["first"][2],
        "last_patch": parts["last"][2],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loops", type=int, default=6000, help="bot loops (each steps every slot)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"{'slots, rule':<22}{'kept':>5}{'found':>6}{'snaps':>6}{'patches':>9}{'bot':>7}{'wrong':>6}"
          f"{'calls':>8}{'B/t first':>11}{'B/t last':>10}{'patch max first':>17}{'last':>6}")  # fmt: skip
    for identical, slots, old in ((False, 3, False), (False, 9, False), (True, 3, False), (True, 9, False),
                                  (True, 3, True)):  # fmt: skip
        got = run(args.loops, args.seed, slots, identical, old)
        label = ("identical" if identical else "distinct") + (", old rule" if old else "")
        print(f"{label:<22}{got['kept']:>5}{got['found']:>6}{got['snapshots']:>6}{got['patches']:>9}"
              f"{got['bot_patches']:>7}{got['wrong']:>6}{got['calls']:>8,}{got['first']:>11.0f}"
              f"{got['last']:>10.0f}{got['first_patch']:>17}{got['last_patch']:>6}")  # fmt: skip
    print()
    print("the tap's thread (never the bot's): record building per call, slots named vs inferred")
    for slots in (3, 9, 30):
        named, inferred, breaks = build_cost(max(600, args.loops // 5), args.seed, slots)
        print(f"  identical, {slots:>2} slots: named {named:6.1f} us/call   inferred {inferred:6.1f} us/call"
              f"   ({breaks:,} chain breaks)")  # fmt: skip
    return 0


def build_cost(calls_loops: int, seed: int, slots: int) -> tuple[float, float, int]:
    """Microseconds per call to build the records, with slot hints and inferred (same calls)."""
    import time

    items: list[tuple[Any, ...]] = []

    def observe(function: str, slot: str, call_args: tuple[Any, ...], result: Any) -> None:
        kind = tap.TRANSITION if function == "transition" else tap.CALL
        items.append((kind, function, slot, len(items), call_args, {}, result))

    bot = simbot.SimBot(seed=seed, slots=slots, observer=observe, identical=True)
    for _ in range(max(1, calls_loops * 3 // slots)):
        bot.loop()
    out = []
    breaks = 0
    for hinted in (True, False):
        builder = tap.RecordBuilder(sm)
        batch = items if hinted else [(k, f, None, *rest) for k, f, _, *rest in items]
        started = time.perf_counter()
        for item in batch:
            builder.records_for(item)
        out.append((time.perf_counter() - started) / len(batch) * 1e6)
        breaks = builder.counters["chain_breaks"]
    return out[0], out[1], breaks


if __name__ == "__main__":
    sys.exit(main())
