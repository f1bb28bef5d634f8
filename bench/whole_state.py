"""Whole-state shadowing stays linear: a 7-day, 70,000-step stream against the port's JSON-lines
``--server`` (the only transport a real ``doge-core-exe`` speaks), issue 18.

    python bench/whole_state.py [--quick]

Prints, for a generated single-slot 7-day stream of 70,000 steps (--quick: 14,000):
  - events/s of each tenth of one lockstep replay over jsonl with the history trimmed (the default:
    ``completed_cycles`` sent empty, the whole state every 5,000 steps and at the end), and our CPU per
    step;
  - the first and the last tenth again, side by side (the last from a snapshot of the state where it
    starts), best of three each: the target is last >= 0.8x first;
  - the first 1,500 steps of the same two tenths with the history sent whole (``--history whole``) and
    through a synchronous
    one-request-at-a-time client sending the whole state (how the bot's own shadow path calls the
    executable), so the ratio to the bot-style client is on the same stream.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import day_items, prefix_of, replay_by_tenths, steps_of, synchronous_jsonl, tenths  # noqa: E402
from shadowdiff_doge.domain import DEFAULT_EXE, DogeDomain  # noqa: E402
from shadowdiff_doge.inprocess import InProcessReducer  # noqa: E402
from shadowdiff_doge.reference import state_machine as sm  # noqa: E402

from shadowdiff.core.engine import Replay, ReplayOptions  # noqa: E402
from shadowdiff.shadow.client import SubprocessReducer  # noqa: E402

PORT = [str(DEFAULT_EXE), "--server"]
SLOW_SAMPLE = 1500  # steps of a tenth measured with whole histories (the slow ways)


def shadow(history: str) -> SubprocessReducer:
    # whole histories in 256 pipelined requests can take longer than the default 10 s deadline to drain
    return SubprocessReducer(PORT, codec="jsonl", domain=DogeDomain(), history=history, deadline=300.0)


def tenth_rate(items: list, history: str) -> float:
    """Lockstep over jsonl from the tenth's opening snapshot (not timed) to its end, drained."""
    with shadow(history) as port:
        replay = Replay(port, InProcessReducer(sm), ReplayOptions(verify_final=False))
        replay.feed(items[0])
        replay.drain()
        started = time.perf_counter()
        for item in items[1:]:
            replay.feed(item)
        replay.drain()
        elapsed = time.perf_counter() - started
        result = replay.finish()
    if result.divergence_count or result.failure_count:
        found = (result.divergences[:1] or result.failures[:1])[0]
        raise SystemExit(f"the port diverged or failed ({history}): {found}")
    return steps_of(items) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="14,000 steps instead of 70,000")
    args = parser.parse_args()
    if not DEFAULT_EXE.exists():
        sys.exit(f"build the port first: bash {ROOT / 'adapters/doge/haskell/build.sh'}")
    events = 14_000 if args.quick else 70_000
    items = day_items(events, 7, seed=7)
    steps, cuts = tenths(items)
    auth = InProcessReducer(sm)
    with shadow("trim") as port:
        replay = Replay(port, auth, ReplayOptions())
        whole_started = time.perf_counter()
        rates, cpu, at_last = replay_by_tenths(replay, auth, items, cuts)
        result = replay.finish()
        total = time.perf_counter() - whole_started
        history_line = port.describe_history()
    history = len(auth.get("slot-0")["completed_cycles"])
    print(
        f"7-day stream over jsonl against {DEFAULT_EXE.name} --server: {steps:,} events, history "
        f"{history:,} completed cycles, {result.divergence_count} divergences, {result.failure_count} "
        f"failures, {total:.1f} s in all ({steps / total:,.0f} events/s)"
    )
    print(f"  history: {history_line}")
    for k, rate in enumerate(rates):
        print(f"  tenth {k + 1:>2}: {rate:>9,.0f} events/s   {cpu[k]:6.1f} us of our CPU a step")
    print(f"  last tenth / first tenth, CPU per step: {cpu[-1] / cpu[0]:.2f}x  (flat is 1.0x)")
    print(f"  last tenth / first tenth: {rates[-1] / rates[0]:.2f}x  (one pass, as the stream runs)")
    first = items[cuts[0] : cuts[1]]
    last = [at_last, *items[cuts[9] : cuts[10]]]
    best = {"trim": [0.0, 0.0], "whole": [0.0, 0.0], "sync": [0.0, 0.0]}
    for _ in range(3):
        for index, part in enumerate((first, last)):
            best["trim"][index] = max(best["trim"][index], tenth_rate(part, "trim"))
    for index, part in enumerate((first, last)):  # once each, on the tenth's first steps: the slow ones
        sample = prefix_of(part, SLOW_SAMPLE)
        best["whole"][index] = tenth_rate(sample, "whole")
        best["sync"][index] = synchronous_jsonl(sample, PORT)
    labels = {
        "trim": "pipelined, history trimmed (default)",
        "whole": "pipelined, history sent whole",
        "sync": "synchronous bot-style client",
    }
    for key, (head, tail) in best.items():
        print(f"  {labels[key]:<38} first tenth {head:>8,.0f}  last tenth {tail:>8,.0f} events/s", end="")
        print(f"  {tail / head:.2f}x")
    trim_last = best["trim"][1]
    print(f"  last tenth, trimmed / synchronous client: {trim_last / best['sync'][1]:.1f}x")
    print(f"  last tenth, trimmed / history sent whole: {trim_last / best['whole'][1]:.1f}x")
    ratio = best["trim"][1] / best["trim"][0]
    print(f"  trimmed, last tenth / first tenth (alternated, best of 3): {ratio:.2f}x  (target >= 0.8x)")


if __name__ == "__main__":
    main()
