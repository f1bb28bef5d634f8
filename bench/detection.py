"""Detection power: fuzz every mutant of the reference executable with a fixed budget, and compare with
what the bot's 20 upstream fixtures alone expose.

    python bench/detection.py                       every mutant, 60 s each, seed 0
    python bench/detection.py --budget 20 --jobs 2 --mutants s1_timeout_strict,invariant_typo
    python bench/detection.py --with-known --budget 30 --jobs 2   # with two known bugs present

Prints one row per mutant: category, found (y/n), examples and seconds to the first find (search
time, before shrinking), events in the shrunk reproducer, its signature, and whether the upstream
fixtures expose it; then the median shrunk size and the totals.

With --with-known ("detection with known bugs present"), each mutant is fuzzed (--keep-going --known)
against a port carrying it plus two companion mutants whose signatures (collected by a short
--keep-going run of each) are in a triage file; found means a reproducer of at most 3 events whose
signature the port carrying the mutant alone shows.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

UPSTREAM = Path(os.environ.get("SHADOWDIFF_UPSTREAM_FIXTURES", ROOT.parent / "shared" / "upstream-fixtures"))


def mutants(exe: Path) -> list[tuple[str, str]]:
    out = subprocess.run([str(exe), "--list-mutants"], capture_output=True, text=True, check=True).stdout
    return [(line.split("\t")[0], line.split("\t")[1]) for line in out.splitlines() if line.strip()]


def fuzz_one(name: str, seed: int, budget: float, max_steps: int, deadline: float,
             seeds_from: str | None = None) -> dict[str, Any]:  # fmt: skip
    from shadowdiff_doge import defaults

    from shadowdiff.search.fuzz import FuzzOptions, ReplayOracle, fuzz
    from shadowdiff.search.seeds import SeededStrategies, seed_scenarios
    from shadowdiff.shadow.client import SubprocessReducer

    argv = [str(defaults.MUTANT_EXE), "--msgpack", "--mutant", name]
    domain = defaults.domain()

    def make() -> SubprocessReducer:
        return SubprocessReducer(argv, domain=domain, deadline=deadline)

    oracle = ReplayOracle(make(), defaults.default_authoritative(), "lockstep", domain.default_rules(), make)
    options = FuzzOptions(seed, 1_000_000, max_steps, budget, False, "lockstep", 30.0)
    try:
        strategies: Any = defaults.strategies()
        if seeds_from:  # fuzz --from: walks also start from the file's real states
            strategies = SeededStrategies(strategies, seed_scenarios([seeds_from], domain))
        report = fuzz(strategies, oracle, options, defaults.default_authoritative(),
                      defaults.shrink_hooks(), defaults.expected)  # fmt: skip
    finally:
        oracle.shadow.close()
    if not report.reproducers:
        return {"mutant": name, "found": False, "examples": report.stats.examples}
    rep = report.reproducers[0]
    return {
        "mutant": name, "found": True, "examples": rep.example + 1, "seconds": rep.found_after_s,
        "events": len(rep.scenario.inputs), "signature": rep.signature,
    }  # fmt: skip


def upstream_exposes(name: str, deadline: float) -> bool:
    from shadowdiff_doge import defaults

    from shadowdiff.core.engine import Replay, ReplayOptions
    from shadowdiff.runtime.corpus import read_items
    from shadowdiff.shadow.client import SubprocessReducer

    argv = [str(defaults.MUTANT_EXE), "--msgpack", "--mutant", name]
    shadow = SubprocessReducer(argv, domain=defaults.domain(), deadline=deadline)
    try:
        result = Replay(shadow, defaults.default_authoritative(), ReplayOptions()).run(read_items([UPSTREAM]))
    finally:
        shadow.close()
    return bool(result.divergence_count or result.failure_count)


def row(args: tuple[str, int, float, int, float]) -> dict[str, Any]:
    name, seed, budget, max_steps, deadline = args
    out = fuzz_one(name, seed, budget, max_steps, deadline)
    out["upstream"] = upstream_exposes(name, deadline)
    return out


def seeded_row(args: tuple[str, int, float, int, float, str]) -> dict[str, Any]:
    return fuzz_one(*args)


# -- detection with known bugs present ---------------------------------------------------------------

# Companions: mutants with narrow signatures of their own (a from_dict default, an invariant string, a
# regime spelling); each mutant is fuzzed carrying two of them, whose signatures are in a triage file.
COMPANIONS = ("cycle_default_zero", "invariant_typo", "regime_case_sensitive")


def _oracle(names: list[str], deadline: float) -> Any:
    from shadowdiff_doge import defaults

    from shadowdiff.search.fuzz import ReplayOracle
    from shadowdiff.shadow.client import SubprocessReducer

    argv = [str(defaults.MUTANT_EXE), "--msgpack", "--mutant", ",".join(names)]
    domain = defaults.domain()

    def make() -> SubprocessReducer:
        return SubprocessReducer(argv, domain=domain, deadline=deadline)

    return ReplayOracle(make(), defaults.default_authoritative(), "lockstep", domain.default_rules(), make)


def companion_signatures(name: str, seed: int, budget: float, max_steps: int, deadline: float) -> list[str]:
    """Every signature a --keep-going fuzz of ``name`` alone files within ``budget`` (its triage entries)."""
    from shadowdiff_doge import defaults

    from shadowdiff.search.fuzz import FuzzOptions, fuzz

    oracle = _oracle([name], deadline)
    options = FuzzOptions(seed, 1_000_000, max_steps, budget, True, "lockstep", 10.0)
    try:
        report = fuzz(defaults.strategies(), oracle, options, defaults.default_authoritative(),
                      defaults.shrink_hooks(), defaults.expected)  # fmt: skip
    finally:
        oracle.shadow.close()
    return sorted(r.signature for r in report.reproducers)


def fuzz_with_known(args: tuple[str, list[str], list[str], int, float, int, float]) -> dict[str, Any]:
    """Fuzz ``name`` + two companions with the companions' signatures known; found = a reproducer of at
    most 3 events whose signature the port carrying ``name`` alone shows."""
    name, companions, known_sigs, seed, budget, max_steps, deadline = args
    from shadowdiff_doge import defaults

    from shadowdiff.core.triage import Entry, Triage
    from shadowdiff.search.fuzz import FuzzOptions, fuzz

    known = Triage(tuple(Entry(sig, "companion mutant", "open") for sig in known_sigs))
    oracle = _oracle([name, *companions], deadline)
    alone = _oracle([name], deadline)
    options = FuzzOptions(seed, 1_000_000, max_steps, budget, True, "lockstep", 20.0)
    hit: dict[str, Any] = {}

    def own(rep: Any) -> None:
        if hit or len(rep.scenario.inputs) > 3:
            return
        if rep.signature in {f.signature for f in alone.findings(rep.scenario)}:
            hit.update(seconds=rep.found_after_s, examples=rep.example + 1, events=len(rep.scenario.inputs),
                       signature=rep.signature)  # fmt: skip

    try:
        report = fuzz(defaults.strategies(), oracle, options, defaults.default_authoritative(),
                      defaults.shrink_hooks(), defaults.expected, on_reproducer=own, known=known)  # fmt: skip
    finally:
        oracle.shadow.close()
        alone.shadow.close()
    return {"mutant": name, "companions": companions, "found": bool(hit), "new": len(report.reproducers),
            "known_seen": sum(report.known_seen.values()), "total_examples": report.stats.examples,
            **hit}  # fmt: skip


def _any_event(signature: str) -> str:
    parts = signature.split("|")
    return "|".join([parts[0], "*", *parts[2:]]) if len(parts) >= 3 else signature


def main_with_known(args: argparse.Namespace, catalogue: list[tuple[str, str]]) -> int:
    wanted = set(args.mutants.split(",")) if args.mutants else None
    chosen = [n for n, _ in catalogue if wanted is None or n in wanted]
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        sigs = dict(zip(COMPANIONS, pool.map(
            companion_signatures, COMPANIONS, [args.seed] * 3, [args.known_budget] * 3,
            [args.max_steps] * 3, [args.deadline] * 3,
        ), strict=True))  # fmt: skip
        jobs = []
        for name in chosen:
            companions = [c for c in COMPANIONS if c != name][:2]
            # triaged as an operator would: the companion's kind and path on any event
            known = sorted({_any_event(s) for c in companions for s in sigs[c]})
            jobs.append((name, companions, known, args.seed, args.budget, args.max_steps, args.deadline))
        rows = list(pool.map(fuzz_with_known, jobs))
    print(f"detection with known bugs present: seed {args.seed}, {args.budget:g}s per mutant (--keep-going "
          f"--known), companions' signatures from {args.known_budget:g}s of --keep-going each:")  # fmt: skip
    for c in COMPANIONS:
        print(f"  {c}: {', '.join(sigs[c]) or '-'}")
    header = f"{'mutant':28} {'with known':44} {'found':5} {'seconds':>8} {'examples':>8} {'events':>6}"
    header += "  signature"
    print(header)
    print("-" * len(header))
    for r in rows:
        found = "y" if r["found"] else "n"
        seconds = f"{r['seconds']:.2f}" if r["found"] else "-"
        examples = str(r["examples"]) if r["found"] else f"({r['total_examples']})"
        events = str(r["events"]) if r["found"] else "-"
        print(f"{r['mutant']:28} {'+'.join(r['companions']):44} {found:5} {seconds:>8} {examples:>8} "
              f"{events:>6}  {r.get('signature', '')}")  # fmt: skip
    found_rows = [r for r in rows if r["found"]]
    print("-" * len(header))
    print(f"found {len(found_rows)}/{len(rows)} as their own reproducer (<= 3 events) within "
          f"{args.budget:g}s each with two known bugs present")  # fmt: skip
    return 0 if len(found_rows) == len(rows) else 1


def main(argv: list[str] | None = None) -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=60.0, help="search seconds per mutant")
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--deadline", type=float, default=0.5)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--mutants", help="comma-separated names (default: all)")
    parser.add_argument(
        "--from", dest="from_file", metavar="FILE",
        help="also fuzz each mutant starting from FILE's states (fuzz --from, e.g. a bot_runtime.json), "
        "same budget, and print that beside",
    )  # fmt: skip
    parser.add_argument("--with-known", action="store_true",
                        help="detection with known bugs present: each mutant plus two companions "
                        "whose signatures are in a triage file")  # fmt: skip
    parser.add_argument(
        "--known-budget",
        type=float,
        default=20.0,
        help="--with-known: seconds of --keep-going to collect each companion's signatures",
    )
    args = parser.parse_args(argv)
    from shadowdiff_doge.domain import MUTANT_EXE

    if not MUTANT_EXE.exists():
        print(f"build the port first: bash {ROOT / 'adapters/doge/haskell/build.sh'}", file=sys.stderr)
        return 2
    catalogue = mutants(MUTANT_EXE)
    if args.with_known:
        return main_with_known(args, catalogue)
    wanted = set(args.mutants.split(",")) if args.mutants else None
    chosen = [(n, c) for n, c in catalogue if wanted is None or n in wanted]
    jobs = [(n, args.seed, args.budget, args.max_steps, args.deadline) for n, _ in chosen]
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = list(pool.map(row, jobs))
        seeded = list(pool.map(seeded_row, [(*j, args.from_file) for j in jobs])) if args.from_file else []
    category = dict(catalogue)
    print(f"seed {args.seed}, search budget {args.budget:g}s per mutant, max {args.max_steps} events/example")
    header = (
        f"{'mutant':28} {'category':15} {'found':5} {'examples':>8} {'seconds':>8} {'events':>6}"
        "  upstream  signature"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        found = "y" if r["found"] else "n"
        seconds = f"{r['seconds']:.2f}" if r["found"] else "-"
        events = str(r["events"]) if r["found"] else "-"
        up = "y" if r["upstream"] else "n"
        print(f"{r['mutant']:28} {category[r['mutant']]:15} {found:5} {r['examples']:>8} {seconds:>8} "
              f"{events:>6}  {up:8}  {r.get('signature', '')}")  # fmt: skip
    found_rows = [r for r in rows if r["found"]]
    sizes = [r["events"] for r in found_rows]
    print("-" * len(header))
    if seeded:
        print(f"\nstarting from the states of {args.from_file} as well (fuzz --from), same budget:")
        print(f"{'mutant':28} {'synthetic':9} {'--from':6} {'examples':>8} {'seconds':>8} {'events':>6}")
        for plain, r in zip(rows, seeded, strict=True):
            if r["found"]:
                print(f"{r['mutant']:28} {'y' if plain['found'] else 'n':9} {'y':6} {r['examples']:>8} "
                      f"{r['seconds']:>8.2f} {r['events']:>6}")  # fmt: skip
            else:
                print(f"{r['mutant']:28} {'y' if plain['found'] else 'n':9} {'n':6} {r['examples']:>8}")
        found_rows = [p for p, r in zip(rows, seeded, strict=True) if p["found"] or r["found"]]
    print(f"found {len(found_rows)}/{len(rows)} within {args.budget:g}s each; "
          f"median shrunk reproducer: {statistics.median(sizes) if sizes else '-'} events; "
          f"upstream fixtures alone expose {sum(r['upstream'] for r in rows)}/{len(rows)}")  # fmt: skip
    return 0 if len(found_rows) == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
