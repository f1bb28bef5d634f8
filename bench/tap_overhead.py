"""The tap's added cost on the bot's thread, and the sidecar's checking rate.

    python bench/tap_overhead.py [--calls 20000] [--shadow "CMD ARGS"]

1. Replays the same recorded transitions (from the simulated bot) through the reference reducer's
   original ``transition`` and through the tapped one, interleaved in one run, and prints the per-call
   time of each and the added cost (median and p99, microseconds).
2. Runs the simulated bot flat out under the tap against an in-process sidecar with a real shadow and
   prints the sidecar's checked records per second next to the reducer's own rate.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shadowdiff_doge import simbot
from shadowdiff_doge.domain import DEFAULT_EXE
from shadowdiff_doge.reference import state_machine as sm

from shadowdiff import tap


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--shadow", help="shadow command (default: the Haskell port if built, else Python)")
    args = parser.parse_args()
    shadow = args.shadow or (f"{DEFAULT_EXE} --msgpack" if DEFAULT_EXE.exists() else
                             f"{sys.executable} -m shadowdiff_doge.pyserver --msgpack")  # fmt: skip

    from shadowdiff.live.sidecar import Sidecar, SidecarOptions
    from shadowdiff.shadow.client import SubprocessReducer

    work = Path(tempfile.mkdtemp(prefix="shadowdiff-bench-"))
    options = SidecarOptions(listen=f"unix:{work / 'tap.sock'}", record_dir=work / "record",
                             shadow=lambda: SubprocessReducer(shadow), shadow_name=shadow,
                             one_process=True)  # fmt: skip
    sidecar = Sidecar(options)
    sidecar.start()

    # the calls to time: the simulated bot's own transitions
    calls: list[tuple[object, ...]] = []

    def keep(function: str, slot: str, call_args: tuple[object, ...], result: object) -> None:
        if function == "transition" and len(calls) < args.calls:
            calls.append(call_args)

    bot = simbot.SimBot(seed=1, observer=keep)
    while len(calls) < args.calls:
        bot.loop()
    original = sm.transition
    installed = tap.install(sm, sidecar.address, force=True, queue_size=1 << 20)
    assert installed is not None
    tapped = sm.transition
    off: list[float] = []
    on: list[float] = []
    clock = time.perf_counter_ns
    for i, call in enumerate(calls):  # interleaved, alternating which goes first, on the same states
        first, second = (original, tapped) if i % 2 else (tapped, original)
        t0 = clock()
        first(*call)
        t1 = clock()
        second(*call)
        t2 = clock()
        (off if first is original else on).append((t1 - t0) / 1000)
        (on if first is original else off).append((t2 - t1) / 1000)
    added = [b - a for a, b in zip(off, on, strict=True)]
    print(f"transition calls timed: {len(calls):,}")
    print(f"  tap off   median {statistics.median(off):7.2f} us   p99 {quantile(off, 0.99):7.2f} us")
    print(f"  tap on    median {statistics.median(on):7.2f} us   p99 {quantile(on, 0.99):7.2f} us")
    print(f"  added     median {statistics.median(added):7.2f} us   p99 {quantile(added, 0.99):7.2f} us")
    tap.uninstall(sm)  # the timed calls reuse old states: the live part below starts a clean tap
    if not sidecar.wait_caught_up(60):
        print(
            "sidecar did not catch up:",
            sidecar.status()["coverage"],
            sidecar.status()["state_machine_shadow"],
        )

    # the sidecar's rate against the reducer alone
    before = sidecar.status()["coverage"]["checked"]
    loops = max(200, args.calls // 10)
    plain = simbot.SimBot(seed=2, module=sm)
    started = time.perf_counter()
    for _ in range(loops):
        plain.loop()
    alone = plain.transitions / (time.perf_counter() - started)
    installed = tap.install(sm, sidecar.address, force=True, queue_size=1 << 20)
    live = simbot.SimBot(seed=2, module=sm)
    started = time.perf_counter()
    for _ in range(loops):
        live.loop()
    bot_done = time.perf_counter()
    sidecar.wait_caught_up(300)
    elapsed = time.perf_counter() - started
    checked = sidecar.status()["coverage"]["checked"] - before
    print(f"reducer alone (simulated bot, no tap): {alone:10,.0f} transitions/s")
    print(f"bot under the tap:                     {live.transitions / (bot_done - started):10,.0f} t/s")
    print(f"sidecar checked ({shadow.split()[0].rsplit('/', 1)[-1]}):  {checked / elapsed:10,.0f} records/s "
          f"({checked:,} records, {checked / elapsed / alone:.2f}x the reducer alone)")  # fmt: skip
    tap.uninstall(sm)
    sidecar.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
