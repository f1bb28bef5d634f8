"""The ``fuzz`` and ``shrink`` commands; ``register(group)`` adds them to the main CLI.

The domain's wiring (reference reducer, reference executable, strategies, shrink hooks, the
``expected`` block) comes from ``shadowdiff_doge.defaults``, imported only when a command runs.
"""

from __future__ import annotations

import importlib
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import attrs
import click

from shadowdiff.core.diff import run_rules
from shadowdiff.core.engine import MODES, Replay
from shadowdiff.core.shrink import shrink_scenario
from shadowdiff.core.triage import Triage
from shadowdiff.model.errors import BadInput, ShadowdiffError, ShadowSetupError
from shadowdiff.model.records import ContextChange, Gap, PatchRecord, Record, Snapshot
from shadowdiff.model.values import Context, Input, Scenario, WireMap
from shadowdiff.runtime.corpus import (
    expand,
    load_scenario,
    read_items,
    scenario_items,
    use_domain,
    write_scenario,
)
from shadowdiff.search.fuzz import (
    FuzzOptions,
    FuzzReport,
    ReplayOracle,
    Reproducer,
    fuzz,
    render,
    reproducer_filename,
    reproducer_scenario,
)
from shadowdiff.shadow.client import SubprocessReducer

EXIT_CLEAN, EXIT_FOUND, EXIT_BAD = 0, 1, 2
DEFAULTS = "shadowdiff_doge.defaults"
DEFAULT_OUT = "corpora/regressions"
DEFAULT_EXAMPLES = 2000
UNCAPPED = 1_000_000_000  # keep-going with a time budget: the budget, not a count, ends the search


def _fail(message: str) -> NoReturn:
    click.echo(f"shadowdiff: error: {message}", err=True)
    sys.exit(EXIT_BAD)


def _defaults() -> Any:
    return importlib.import_module(DEFAULTS)


def read_known(path: str | None) -> Triage | None:
    from shadowdiff.cli.main import read_known as read  # cli imports this module: import when a command runs

    return read(path)


def _wiring(
    shadow: str | None,
    authoritative: str | None,
    codec: str,
    deadline: float,
    mode: str,
    numeric: bool = False,
    strict_types: bool = False,
) -> tuple[Any, ReplayOracle, str]:
    """The domain defaults, an oracle over the shadow (restarted fresh if it gives up) and the shadow's
    display name (relative, so reproducer notes do not depend on where the tree is checked out)."""
    d = _defaults()
    if shadow is None:
        if not d.DEFAULT_EXE.exists():
            raise ShadowSetupError(
                f"the reference shadow {d.DEFAULT_EXE} is not built; build it with: bash {d.BUILD_SCRIPT}"
            )
        argv: list[str] = d.default_shadow_command()
        if codec == "jsonl":
            argv = [argv[0], "--server"]
    else:
        argv = shlex.split(shadow)
    shown = " ".join([Path(argv[0]).name, *argv[1:]])
    domain = d.domain()
    use_domain(domain)  # the domain's own corpus formats (bot_runtime.json) can be shrunk too

    def make() -> SubprocessReducer:
        return SubprocessReducer(argv, codec=codec, domain=domain, deadline=deadline)

    rules = run_rules(domain.default_rules(), numeric=numeric, strict_types=strict_types)
    oracle = ReplayOracle(make(), d.default_authoritative(authoritative), mode, rules, make)
    return d, oracle, shown


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
def fuzz_command(shadow: str | None, authoritative: str | None, codec: str, mode: str, deadline: float,
                 shrink_budget: float, quiet: bool, known_path: str | None, seed: int,
                 examples: int | None, max_steps: int,
                 time_budget: float, keep_going: bool, out_dir: str, note: str, from_paths: tuple[str, ...],
                 runtime_env: str | None, report_path: str | None, html_path: str | None,
                 junit_path: str | None, numeric_equality: bool = False,
                 strict_types: bool = False) -> None:  # fmt: skip
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
        d, oracle, shown = _wiring(
            shadow, authoritative, codec, deadline, mode, numeric_equality, strict_types
        )
        strategies = _strategies(d, from_paths, runtime_env)
    except ShadowdiffError as exc:
        _fail(str(exc))
    if examples is None:
        examples = UNCAPPED if keep_going and time_budget else DEFAULT_EXAMPLES
    options = FuzzOptions(seed, examples, max_steps, time_budget or None, keep_going, mode, shrink_budget)
    text = f"{note}; shadow: {shown}" if note else f"shadow: {shown}"

    def show(rep: Reproducer) -> None:
        if quiet:
            click.echo(f"found {rep.signature} -> {rep.path}")
            return
        click.echo("")
        for line in render(rep, oracle, d.domain()):
            click.echo(line)

    try:
        generator = d.default_authoritative(authoritative)
        hooks = d.shrink_hooks()
        report = fuzz(
            strategies, oracle, options, generator, hooks, d.expected, text, Path(out_dir), show, known
        )
        if report_path or html_path or junit_path:
            _write_reports(
                report, oracle, shown, seed, mode, codec, report_path, html_path, junit_path, known
            )
    except ShadowdiffError as exc:
        _fail(str(exc))
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


def _strategies(d: Any, from_paths: tuple[str, ...], runtime_env: str | None) -> Any:
    """The domain's strategies, seeded with the states of the ``--from`` files when there are any (what
    is written from then on is created 0600: those states may be production's)."""
    if not from_paths:
        return d.strategies()
    from shadowdiff.search.seeds import SeededStrategies, seed_scenarios

    domain = d.domain()
    if runtime_env:
        from shadowdiff_doge.runtime import load_env

        domain.runtime_env = load_env(runtime_env)
    use_domain(domain)
    seeds = seed_scenarios(from_paths, domain)
    os.umask(0o077)
    return SeededStrategies(d.strategies(), seeds)


def _write_reports(report: FuzzReport, oracle: ReplayOracle, shown: str, seed: int, mode: str,
                   codec: str, report_path: str | None, html_path: str | None,
                   junit_path: str | None, known: Triage | None = None) -> None:  # fmt: skip
    """The shrunk reproducers replayed together: one report, the same schema as ``replay``'s."""
    from shadowdiff.cli.main import write_outputs
    from shadowdiff.reporting.text import build_report

    replay = Replay(oracle.shadow, oracle.authoritative, attrs.evolve(oracle.options, known=known))
    for rep in report.reproducers:
        for item in scenario_items(rep.scenario, slot=rep.scenario.name):
            replay.feed(item)
    result = replay.finish()
    run = {"mode": mode, "codec": codec, "authoritative": "reference", "shadow": shown,
           "corpora": [f"shadowdiff fuzz --seed {seed}"], "sessions": oracle.shadow.sessions}  # fmt: skip
    write_outputs(build_report(result, run, True, known=known), report_path, html_path, junit_path)


def scenarios_in(path: str) -> Iterator[Scenario]:
    """The scenarios a file holds: a scenario file is one; a findings file gives one per line; a log
    gives one per slot (from its snapshot through its steps; a log with patches or context changes
    needs cutting first, e.g. with ``replay --findings``)."""
    for file in expand([path]):
        if file.suffix == ".json":
            try:
                yield load_scenario(file)
                continue
            except BadInput:
                if not any(isinstance(i, Snapshot) for i in read_items([file])):
                    raise  # no domain reads it either (a domain's own format, e.g. bot_runtime.json)
        current: dict[str, tuple[WireMap, Context, list[Input]]] = {}
        order: list[str] = []
        for item in read_items([file]):
            if isinstance(item, Snapshot):
                if item.slot in current:
                    raise BadInput("a slot reopened mid-log: cut the log before shrinking", item.where)
                current[item.slot] = (item.state, item.context, [])
                order.append(item.slot)
            elif isinstance(item, Record):
                if item.context:
                    raise BadInput("a context change mid-log: cut the log before shrinking", item.where)
                current[item.slot][2].append(item.input)
            elif isinstance(item, PatchRecord | ContextChange):
                raise BadInput("a patch or context change: cut the log before shrinking", item.where)
            elif isinstance(item, Gap):
                continue
        for slot in order:
            state, context, inputs = current[slot]
            yield Scenario(slot, context, state, tuple(inputs))


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
def shrink_command(scenario: str, shadow: str | None, authoritative: str | None, codec: str, mode: str,
                   deadline: float, shrink_budget: float, quiet: bool, known_path: str | None,
                   signature: str | None, out_path: str | None, numeric_equality: bool = False,
                   strict_types: bool = False) -> None:  # fmt: skip
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
    except ShadowdiffError as exc:
        _fail(str(exc))
    done = shrink_into(
        scenario,
        shadow,
        authoritative,
        codec,
        mode,
        deadline,
        shrink_budget,
        quiet,
        signature,
        out_path,
        known,
        numeric=numeric_equality,
        strict_types=strict_types,
    )
    if signature and not done:
        _fail(f"no scenario in {scenario} shows {signature!r}")
    if not done:
        click.echo("nothing to shrink: the scenario shows no divergence and no shadow failure")
    sys.exit(EXIT_FOUND if done else EXIT_CLEAN)


def shrink_into(scenario: str, shadow: str | None, authoritative: str | None, codec: str, mode: str,
                deadline: float, shrink_budget: float, quiet: bool, signature: str | None,
                out_path: str | None, known: Triage | None = None, *, numeric: bool = False,
                strict_types: bool = False) -> set[str]:  # fmt: skip
    """Shrink every distinct signature the scenarios in ``scenario`` show (or just ``signature``),
    print each reproducer, write it under ``out_path``; the signatures done. With ``known``, the first
    signature of each scenario that the triage file does not cover."""
    try:
        d, oracle, _shown = _wiring(shadow, authoritative, codec, deadline, mode, numeric, strict_types)
        cases = list(scenarios_in(scenario))
    except ShadowdiffError as exc:
        _fail(str(exc))
    from shadowdiff_doge.runtime import holds_runtime, keep_private

    private = holds_runtime([scenario])
    if private:
        keep_private()
    done: set[str] = set()
    try:
        for case in cases:
            found = {f.signature: f for f in oracle.findings(case)}
            new = [sig for sig in found if known is None or not known.known(sig)]
            wanted = [signature] if signature else new[:1]
            for sig in wanted:
                if sig not in found or sig in done:
                    continue
                done.add(sig)
                result = shrink_scenario(case, sig, oracle, mode, d.shrink_hooks(), shrink_budget)
                note = f"shrunk by shadowdiff shrink from {Path(scenario).name}"
                if private:
                    note += (
                        "; its initial state is (a shrunk part of) a real saved state: it may hold real "
                        "orders and txids, keep it private (shadowdiff uploads nothing)"
                    )
                rep_scenario = reproducer_scenario(result.shrunk, found[sig], mode, note, oracle, d.expected)
                path = None
                if out_path:
                    target = Path(out_path)
                    path = target if target.suffix == ".json" else target / reproducer_filename(sig)
                    write_scenario(rep_scenario, path)
                rep = Reproducer(sig, found[sig].kind, rep_scenario, result, 0, 0.0, path)
                click.echo(
                    f"shrunk {result.steps_before} -> {result.steps_after} events ({result.calls} tried)"
                    + (f": {path}" if path else "")
                )
                if not quiet:
                    for line in render(rep, oracle, d.domain()):
                        click.echo(line)
                if out_path and Path(out_path).suffix == ".json":
                    break
    except ShadowdiffError as exc:
        _fail(str(exc))
    finally:
        oracle.shadow.close()
    return done


def register(group: click.Group) -> None:
    """Add ``fuzz`` and ``shrink`` to the main command group."""
    group.add_command(fuzz_command)
    group.add_command(shrink_command)
