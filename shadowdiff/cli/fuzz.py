"""The ``fuzz`` and ``shrink`` commands (cli.main adds them to the command group).

The domain (reference reducer, default shadow, strategies, shrink hooks, the ``expected`` block) is the
one the group's ``--domain`` names (shadowdiff.cli.domains); the helpers shared with ``replay --shrink``
are in shadowdiff.cli.common.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import attrs
import click

from shadowdiff.cli.common import oracle_for, read_known, shrink_into, write_outputs
from shadowdiff.cli.domains import with_domain
from shadowdiff.cli.exits import EXIT_CLEAN, EXIT_FOUND, fail
from shadowdiff.core.domain import Domain
from shadowdiff.core.engine import MODES, Replay
from shadowdiff.core.triage import Triage
from shadowdiff.model.errors import ShadowdiffError
from shadowdiff.runtime.corpus import scenario_items, use_domain
from shadowdiff.search.fuzz import FuzzOptions, FuzzReport, ReplayOracle, Reproducer, fuzz, render

__all__ = ["DEFAULT_EXAMPLES", "fuzz_command", "register", "shrink_command"]

DEFAULT_OUT = "corpora/regressions"
DEFAULT_EXAMPLES = 2000
UNCAPPED = 1_000_000_000  # keep-going with a time budget: the budget, not a count, ends the search


_COMMON = [
    click.option(
        "--shadow",
        metavar='"CMD ARGS"',
        help="Shadow executable and arguments. Default: the reference Haskell doge-core-exe --msgpack.",
    ),
    click.option(
        "--authoritative",
        metavar="MODULE|PATH",
        help="Upstream-compatible Python module. Default: the reference reducer.",
    ),
    click.option("--codec", type=click.Choice(["msgpack", "jsonl"]), default="msgpack", show_default=True),
    click.option(
        "--mode",
        type=click.Choice(MODES),
        default="lockstep",
        show_default=True,
        help="lockstep: each step from the authoritative pre-state; free: each side evolves.",
    ),
    click.option(
        "--deadline",
        type=float,
        default=0.5,
        show_default=True,
        help="Seconds the shadow may take per request (small, so hangs cost little).",
    ),
    click.option(
        "--shrink-budget",
        type=float,
        default=30.0,
        show_default=True,
        help="Seconds spent shrinking each case.",
    ),
    click.option("-q", "--quiet", is_flag=True, help="Print only the summary lines."),
    click.option(
        "--known",
        "known_path",
        type=click.Path(dir_okay=False),
        help="Triage file (TOML or JSON): the signatures it covers are known, not findings; "
        "the search goes on past them and shrinks towards the new ones only.",
    ),
    click.option(
        "--numeric-equality",
        is_flag=True,
        help="Compare ints and floats by value on every path (the bot's own ==) instead of type for type.",
    ),
    click.option(
        "--strict-types",
        is_flag=True,
        help="Whole-state shadows (jsonl) too: an int and the equal float differ (by default they agree).",
    ),
]


def _common(fn: Any) -> Any:
    for option in reversed(_COMMON):
        fn = option(fn)
    return fn


@click.command(name="fuzz")
@_common
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same cases, same files.")
@click.option(
    "--examples",
    type=click.IntRange(1),
    default=None,
    help=f"Scenarios to generate at most [default: {DEFAULT_EXAMPLES}; with --keep-going and a time "
    "budget, no cap: the budget decides].",
)
@click.option(
    "--max-steps", type=click.IntRange(0), default=8, show_default=True, help="Events per scenario at most."
)
@click.option(
    "--time-budget",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds to search (shrinking not included); 0 for no limit.",
)
@click.option(
    "--keep-going",
    is_flag=True,
    help="Collect one reproducer per distinct signature until the "
    "budget runs out, instead of stopping at the first.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=DEFAULT_OUT,
    show_default=True,
    help="Directory the reproducers are written to.",
)
@click.option("--note", default="", help="Text to put in each reproducer's shadowdiff.note.")
@click.option(
    "--from",
    "from_paths",
    multiple=True,
    type=click.Path(exists=True),
    help="Also start walks from the states in FILE (repeatable): a bot_runtime.json (every saved slot), "
    "a recorded log (every snapshot), a scenario or a findings file. About half the walks start from "
    "them; reproducers keep (a shrunk part of) the real pre-state, say so in their note, and are "
    "written 0600.",
)
@click.option(
    "--runtime-env",
    type=click.Path(dir_okay=False),
    help="TOML file of the bot's environment values for a bot_runtime.json given to --from.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False),
    help="Write the reproducers' replay report as JSON.",
)
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False), help="Write a self-contained HTML report."
)
@click.option(
    "--junit",
    "junit_path",
    type=click.Path(dir_okay=False),
    help="Write JUnit XML (a test case per signature found).",
)
@with_domain
def fuzz_command(shadow: str | None, authoritative: str | None, codec: str, mode: str, deadline: float,
                 shrink_budget: float, quiet: bool, known_path: str | None, seed: int,
                 examples: int | None, max_steps: int,
                 time_budget: float, keep_going: bool, out_dir: str, note: str, from_paths: tuple[str, ...],
                 runtime_env: str | None, report_path: str | None, html_path: str | None,
                 junit_path: str | None, numeric_equality: bool = False,
                 strict_types: bool = False, *, domain: Domain) -> None:  # fmt: skip
    """Generate state-guided scenarios until the shadow diverges from the authoritative reducer; shrink
    each new divergence and write it as a scenario file (fixture format, with an expected block).

    \b
    Examples:
      shadowdiff fuzz --seed 1
      shadowdiff fuzz --seed 7 --keep-going --time-budget 300 --out /tmp/found
      shadowdiff fuzz --shadow "./doge-core-exe --msgpack" --examples 500 --max-steps 20
      shadowdiff fuzz --mode free --shadow "python -m shadowdiff_doge.pyserver --msgpack"
      shadowdiff fuzz --from logs/bot_runtime.json --keep-going --time-budget 120

    \b
    Exit codes: 0 nothing found; 1 a divergence or shadow failure found (reproducers
    written); 2 bad usage or bad input.
    """
    try:
        known = read_known(known_path)
        domain = domain.with_runtime_env(runtime_env)
        oracle, shown = oracle_for(
            domain, shadow, authoritative, codec, deadline, mode, numeric_equality, strict_types
        )
        strategies = _strategies(domain, from_paths)
    except ShadowdiffError as exc:
        fail(exc)
    if examples is None:
        examples = UNCAPPED if keep_going and time_budget else DEFAULT_EXAMPLES
    options = FuzzOptions(seed, examples, max_steps, time_budget or None, keep_going, mode, shrink_budget)
    text = f"{note}; shadow: {shown}" if note else f"shadow: {shown}"

    def show(rep: Reproducer) -> None:
        if quiet:
            click.echo(f"found {rep.signature} -> {rep.path}")
            return
        click.echo("")
        for line in render(rep, oracle, domain):
            click.echo(line)

    try:
        generator = domain.authority(authoritative)
        hooks = domain.shrink_hooks()
        report = fuzz(
            strategies, oracle, options, generator, hooks, domain.expected, text, Path(out_dir), show, known
        )
        if report_path or html_path or junit_path:
            _write_reports(
                report, oracle, shown, seed, mode, codec, report_path, html_path, junit_path, known
            )
    except ShadowdiffError as exc:
        fail(exc)
    finally:
        oracle.shadow.close()
    stats = report.stats
    click.echo(
        f"shadowdiff fuzz: seed {seed}, {stats.examples} examples, {report.runs} replays, "
        f"{stats.elapsed_s:.1f}s, stopped: {stats.stopped}; {len(report.reproducers)} signature(s) found"
        + (f" (new: not in {known_path})" if known is not None else "")
    )
    if known is not None:
        seen = report.known_seen
        click.echo(
            f"known: {len(seen)} triaged signature(s) seen in {sum(seen.values())} example(s), not reported"
        )
        for pattern in report.fixed_seen:
            click.echo(f"known: {pattern} is marked fixed in {known_path} but was seen again")
    sys.exit(EXIT_FOUND if report.reproducers else EXIT_CLEAN)


def _strategies(domain: Domain, from_paths: tuple[str, ...]) -> Any:
    """The domain's strategies, seeded with the states of the ``--from`` files when there are any
    (reproducers are written 0600 whatever they start from: runtime.private)."""
    if not from_paths:
        return domain.strategies()
    from shadowdiff.search.seeds import SeededStrategies, seed_scenarios

    use_domain(domain)
    seeds = seed_scenarios(from_paths, domain)
    return SeededStrategies(domain.strategies(), seeds)


def _write_reports(report: FuzzReport, oracle: ReplayOracle, shown: str, seed: int, mode: str,
                   codec: str, report_path: str | None, html_path: str | None,
                   junit_path: str | None, known: Triage | None = None) -> None:  # fmt: skip
    """The shrunk reproducers replayed together: one report, the same schema as ``replay``'s."""
    from shadowdiff.reporting.text import build_report

    replay = Replay(oracle.shadow, oracle.authoritative, attrs.evolve(oracle.options, known=known))
    for rep in report.reproducers:
        for item in scenario_items(rep.scenario, slot=rep.scenario.name):
            replay.feed(item)
    result = replay.finish()
    run = {"mode": mode, "codec": codec, "authoritative": "reference", "shadow": shown,
           "corpora": [f"shadowdiff fuzz --seed {seed}"], "sessions": oracle.shadow.sessions}  # fmt: skip
    write_outputs(build_report(result, run, True, known=known), report_path, html_path, junit_path)


@click.command(name="shrink")
@click.argument("scenario", type=click.Path(exists=True))
@_common
@click.option("--signature", help="Shrink for this signature (default: the first the scenario shows).")
@click.option(
    "--out",
    "out_path",
    type=click.Path(),
    help="Write the reproducer here (a .json file, or a directory for one file per signature).",
)
@with_domain
def shrink_command(scenario: str, shadow: str | None, authoritative: str | None, codec: str, mode: str,
                   deadline: float, shrink_budget: float, quiet: bool, known_path: str | None,
                   signature: str | None, out_path: str | None, numeric_equality: bool = False,
                   strict_types: bool = False, *, domain: Domain) -> None:  # fmt: skip
    """Shrink a failing SCENARIO (a scenario .json, a findings .jsonl, or a one-slot log) to the
    smallest case that still shows the same signature, and print it as a table of steps.

    \b
    Examples:
      shadowdiff shrink corpora/regressions/some-case.json --shadow "./doge-core-exe --msgpack"
      shadowdiff shrink findings.jsonl --out shrunk/
      shadowdiff shrink long.jsonl.gz --signature "transition.state|FillEvent|cycle_a" --out case.json

    \b
    Exit codes: 0 the scenario shows nothing to shrink; 1 shrunk (a divergence or
    failure reproduced); 2 bad usage or bad input.
    """
    try:
        known = read_known(known_path)
        done = shrink_into(
            domain, scenario, shadow, authoritative, codec, mode, deadline, shrink_budget, quiet, signature,
            out_path, known, numeric=numeric_equality, strict_types=strict_types,
        )  # fmt: skip
    except ShadowdiffError as exc:
        fail(exc)
    if signature and not done:
        fail(f"no scenario in {scenario} shows {signature!r}")
    if not done:
        click.echo("nothing to shrink: the scenario shows no divergence and no shadow failure")
    sys.exit(EXIT_FOUND if done else EXIT_CLEAN)


def register(group: click.Group) -> None:
    """Add ``fuzz`` and ``shrink`` to the main command group."""
    group.add_command(fuzz_command)
    group.add_command(shrink_command)
