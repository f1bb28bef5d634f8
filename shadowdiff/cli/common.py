"""What several commands share: reading ``--known``, writing reports, wiring a shadow and an oracle from a
domain, and shrinking the scenarios of a file (``shrink``, ``replay --shrink``).

Nothing here exits: problems are raised as :class:`~shadowdiff.model.errors.ShadowdiffError` and each
command turns them into its error line and exit code (shadowdiff.cli.exits). Both cli.main and cli.fuzz
import this module; it imports neither.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from shadowdiff.core.diff import run_rules
from shadowdiff.core.domain import Domain
from shadowdiff.core.shrink import shrink_scenario
from shadowdiff.core.triage import Triage
from shadowdiff.core.triage import loads as triage_loads
from shadowdiff.model.errors import BadInput
from shadowdiff.model.records import ContextChange, Gap, PatchRecord, Record, Snapshot
from shadowdiff.model.values import Context, Input, Scenario, WireMap
from shadowdiff.runtime.corpus import expand, load_scenario, read_items, use_domain, write_scenario
from shadowdiff.runtime.private import write_private
from shadowdiff.search.fuzz import ReplayOracle, Reproducer, render, reproducer_filename, reproducer_scenario
from shadowdiff.wire.codec import dumps_json

__all__ = [
    "KNOWN_HELP",
    "known_line",
    "oracle_for",
    "read_known",
    "scenarios_in",
    "shrink_into",
    "write_outputs",
]

KNOWN_HELP = (
    "Triage file (TOML or JSON, see docs/formats.md): divergences whose every signature it covers "
    "are counted apart as known; the exit code and verdict are about the others."
)


def read_known(path: str | None) -> Triage | None:
    """The triage file at ``path`` (``--known``), read at the edge; None without one."""
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot read the triage file: {exc.strerror}", where=path) from exc
    except UnicodeDecodeError as exc:
        raise BadInput(f"not UTF-8 text ({exc.reason})", where=path) from exc
    return triage_loads(text, path)


def known_line(report: dict[str, Any], path: str | None) -> str | None:
    """One line saying how many known divergences and failures a run saw (None without --known)."""
    if not path:
        return None
    s, known = report["summary"], report.get("known", {})
    line = (
        f"known: {s['known_divergences']} divergence(s) and {s['known_failures']} failure(s) triaged in "
        f"{path} ({len(known.get('clusters', []))} signature(s) of {known.get('entries', 0)} entries)"
    )
    fixed = known.get("fixed_seen_again", [])
    if fixed:
        line += f"; seen again though marked fixed: {', '.join(fixed)}"
    return line


def write_outputs(report: dict[str, Any], report_path: str | None, html_path: str | None,
                  junit_path: str | None) -> None:  # fmt: skip
    """The report as JSON, HTML and JUnit where asked; BadInput naming a path that cannot be written."""
    if report_path:
        _write(report_path, dumps_json(report, indent=2, sort_keys=True) + "\n")
    if html_path:
        from shadowdiff.reporting.html import render_report

        _write(html_path, render_report(report))
    if junit_path:
        from shadowdiff.reporting.junit import junit_xml

        _write(junit_path, junit_xml(report))


def _write(path: str, text: str) -> None:
    try:
        write_private(Path(path), text)  # reports quote the bot's states: 0600, new directories 0700
    except OSError as exc:
        raise BadInput(f"cannot write: {exc.strerror}", where=path) from exc


def oracle_for(
    domain: Domain,
    shadow: str | None,
    authoritative: str | None,
    codec: str,
    deadline: float,
    mode: str,
    numeric: bool = False,
    strict_types: bool = False,
) -> tuple[ReplayOracle, str]:
    """An oracle over the shadow (restarted fresh if it gives up) and the domain's authority, and the
    shadow's display name (relative, so reproducer notes do not depend on where the tree is)."""
    from shadowdiff.shadow.client import SubprocessReducer

    argv = domain.shadow_command(codec) if shadow is None else shlex.split(shadow)
    shown = " ".join([Path(argv[0]).name, *argv[1:]])
    use_domain(domain)  # the domain's own corpus formats (bot_runtime.json) can be shrunk too

    def make() -> SubprocessReducer:
        return SubprocessReducer(argv, codec=codec, domain=domain, deadline=deadline)

    rules = run_rules(domain.default_rules(), numeric=numeric, strict_types=strict_types)
    return ReplayOracle(make(), domain.authority(authoritative), mode, rules, make), shown


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


def shrink_into(domain: Domain, scenario: str, shadow: str | None, authoritative: str | None, codec: str,
                mode: str, deadline: float, shrink_budget: float, quiet: bool, signature: str | None,
                out_path: str | None, known: Triage | None = None, *, numeric: bool = False,
                strict_types: bool = False) -> set[str]:  # fmt: skip
    """Shrink every distinct signature the scenarios in ``scenario`` show (or just ``signature``),
    print each reproducer, write it under ``out_path``; the signatures done. With ``known``, the first
    signature of each scenario that the triage file does not cover. Raises ShadowdiffError."""
    oracle, _shown = oracle_for(domain, shadow, authoritative, codec, deadline, mode, numeric, strict_types)
    try:
        cases = list(scenarios_in(scenario))
        private = domain.holds_private([scenario])
        done: set[str] = set()
        for case in cases:
            found = {f.signature: f for f in oracle.findings(case)}
            new = [sig for sig in found if known is None or not known.known(sig)]
            wanted = [signature] if signature else new[:1]
            for sig in wanted:
                if sig not in found or sig in done:
                    continue
                done.add(sig)
                result = shrink_scenario(case, sig, oracle, mode, domain.shrink_hooks(), shrink_budget)
                note = f"shrunk by shadowdiff shrink from {Path(scenario).name}"
                if private:
                    note += (
                        "; its initial state is (a shrunk part of) a real saved state: it may hold real "
                        "orders and txids, keep it private (shadowdiff uploads nothing)"
                    )
                rep_scenario = reproducer_scenario(
                    result.shrunk, found[sig], mode, note, oracle, domain.expected
                )
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
                    for line in render(rep, oracle, domain):
                        click.echo(line)
                if out_path and Path(out_path).suffix == ".json":
                    break
    finally:
        oracle.shadow.close()
    return done
