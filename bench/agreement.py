"""Reference vs port on a million generated events: the count, and the divergences (expected 0).

    python bench/agreement.py [--events 1000000] [--no-sessions]

Streams come from the corpus generator with several seeds and slot counts (bootstrapped slots trading
on a price walk, txid patches, regime calls, reseeding), replayed in lockstep through the Python
reference in-process and `doge-core-exe --msgpack`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.doge import corpusgen  # noqa: E402
from adapters.doge.domain import DEFAULT_EXE, DogeDomain  # noqa: E402
from adapters.doge.inprocess import InProcessReducer  # noqa: E402
from shadowdiff.client import SubprocessReducer  # noqa: E402
from shadowdiff.corpus import _LogReader  # noqa: E402
from shadowdiff.engine import Replay, ReplayOptions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--no-sessions", action="store_true", help="send whole states (slow: quadratic)")
    args = parser.parse_args()
    per_run = 125_000
    total = divergences = failures = breaches = 0
    started = time.perf_counter()
    runs = max(1, -(-args.events // per_run))  # enough runs for every event asked for
    for k, seed in enumerate(range(100, 100 + runs)):
        n = min(per_run, args.events - total)
        if n <= 0:
            break
        slots = 1 + k % 4
        shadow = SubprocessReducer(
            [str(DEFAULT_EXE), "--msgpack"],
            domain=DogeDomain(),
            use_sessions=False if args.no_sessions else None,
        )
        reader = _LogReader(f"seed-{seed}")
        items = (
            item
            for record in corpusgen.generate(n, slots=slots, seed=seed)
            for item in reader.item(record, "")
        )
        with shadow:
            result = Replay(
                shadow, InProcessReducer("adapters.doge.reference.state_machine"), ReplayOptions()
            ).run(items)
        steps = result.shadow_checks["transition"] + result.shadow_checks["call"]
        total += steps
        divergences += result.divergence_count
        failures += result.failure_count
        breaches += result.counts["invariant_breaches"]
        print(
            f"seed {seed}, {slots} slots: {steps:,} steps checked, {result.divergence_count} divergences, "
            f"{result.failure_count} failures"
        )
    print(
        f"\ntotal: {total:,} events checked on both sides, {divergences} divergences, {failures} shadow "
        f"failures, {breaches:,} invariant breaches (both agree), {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
