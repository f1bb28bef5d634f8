"""Agreement of our reference pair, against two authorities, each named in what it prints.

    python bench/agreement.py [--events 1000000] [--no-sessions] [--recording PATH | --no-recording]

1. Generated events, authority = OUR Python reference (adapters/doge/reference, written from
   DOGE_REDUCER.md): streams from the corpus generator with several seeds and slot counts (bootstrapped
   slots trading on a price walk, txid patches, regime calls, reseeding), replayed in lockstep through
   the reference in-process and `doge-core-exe --msgpack`. This says the port agrees with our reading
   of the spec, not that either agrees with the real bot.
2. The real bot's recording, authority = the REAL `state_machine.py`'s recorded outcomes
   (../shared/upstream-recordings/backtest-day1.msgpack.gz, or $SHADOWDIFF_UPSTREAM_RECORDINGS): replayed
   with the recorded outcomes as the authority against the port and against our Python reference
   (`python -m shadowdiff_doge.pyserver --msgpack`). This is the figure about the real world.

Both comparisons are exact (the domain's default rules: no tolerance).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shadowdiff_doge import corpusgen  # noqa: E402
from shadowdiff_doge.domain import DEFAULT_EXE, DogeDomain  # noqa: E402
from shadowdiff_doge.inprocess import InProcessReducer  # noqa: E402

from shadowdiff.core.engine import Replay, ReplayOptions  # noqa: E402
from shadowdiff.runtime.corpus import RecordReader, read_items  # noqa: E402
from shadowdiff.shadow.client import SubprocessReducer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--no-sessions", action="store_true", help="send whole states (slow: quadratic)")
    parser.add_argument("--recording", type=Path, default=default_recording(), help="the real bot's log")
    parser.add_argument("--no-recording", action="store_true", help="skip part 2 (the real bot's recording)")
    args = parser.parse_args()
    print("1. generated events; authority: our Python reference (shadowdiff_doge.reference.state_machine)")
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
        reader = RecordReader(f"seed-{seed}")
        items = (
            item
            for record in corpusgen.generate(n, slots=slots, seed=seed)
            for item in reader.item(record, "")
        )
        with shadow:
            result = Replay(
                shadow, InProcessReducer("shadowdiff_doge.reference.state_machine"), ReplayOptions()
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
    if not args.no_recording:
        recording(args.recording)


def default_recording() -> Path:
    shared = Path(
        os.environ.get("SHADOWDIFF_UPSTREAM_RECORDINGS", ROOT.parent / "shared" / "upstream-recordings")
    )
    return shared / "backtest-day1.msgpack.gz"


def recording(path: Path) -> None:
    """Part 2: the real bot's recorded outcomes as the authority, our port and our reference as shadows."""
    print(
        f"\n2. the real bot's recording {path.name}; authority: the REAL state_machine.py (recorded outcomes)"
    )
    if not path.exists():
        print(f"   missing: {path} (set SHADOWDIFF_UPSTREAM_RECORDINGS)")
        return
    shadows = {
        "haskell port": [str(DEFAULT_EXE), "--msgpack"],
        "python reference": [sys.executable, "-m", "shadowdiff_doge.pyserver", "--msgpack"],
    }
    for name, argv in shadows.items():
        started = time.perf_counter()
        with SubprocessReducer(argv, domain=DogeDomain()) as shadow:
            result = Replay(shadow, None, ReplayOptions()).run(read_items([path]))
        steps = result.shadow_checks["transition"] + result.shadow_checks["call"]
        print(
            f"   {name}: {steps:,} steps checked, {result.divergence_count} divergences, "
            f"{result.failure_count} failures, {time.perf_counter() - started:.1f} s"
        )


if __name__ == "__main__":
    main()
