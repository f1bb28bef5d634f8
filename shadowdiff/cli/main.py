"""The shadowdiff command line: the only place that prints or exits.

The group takes ``--domain NAME`` (shadowdiff.cli.domains) and every command gets that domain; the
commands of the other cli modules are added here, plainly. Exit codes and the error style of every
command: shadowdiff.cli.exits.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from shadowdiff import __version__
from shadowdiff.cli import fuzz as fuzz_cli
from shadowdiff.cli import runbook as runbook_cli
from shadowdiff.cli import sidecar as sidecar_cli
from shadowdiff.cli import triage as triage_cli
from shadowdiff.cli.common import KNOWN_HELP, known_line, read_known, shrink_into, write_outputs
from shadowdiff.cli.domains import domain_option, with_domain
from shadowdiff.cli.exits import (
    EXIT_BAD,
    EXIT_CLEAN,
    EXIT_CODES,
    EXIT_EXTEND,
    EXIT_FOUND,
    EXIT_INTERRUPTED,
    EXIT_NONDETERMINISTIC,
    error_line,
    fail,
    warn,
)
from shadowdiff.core.diff import run_rules
from shadowdiff.core.domain import Domain
from shadowdiff.core.engine import MODES, Replay, ReplayOptions, ReplayResult
from shadowdiff.core.reducer import Reducer, Shadow
from shadowdiff.model.errors import ShadowdiffError, UsageError
from shadowdiff.model.records import LogItem, Record
from shadowdiff.reporting.text import build_report, summary_lines
from shadowdiff.runtime.corpus import Notices, read_items, use_domain
from shadowdiff.runtime.private import open_private
from shadowdiff.runtime.rulesfile import load_rules
from shadowdiff.runtime.signals import interrupts_delivered, stop_on_interrupt
from shadowdiff.runtime.split import TWO_PROCESS_DEFAULT
from shadowdiff.wire.codec import dumps_json

if TYPE_CHECKING:
    from shadowdiff.shadow.client import SubprocessReducer

EPILOG = "\b\n" + textwrap.fill(
    "Exit codes: "
    + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES if code != EXIT_EXTEND)
    + ". With --twice, when both runs agree, the replay's own code.",
    78,
)


def make_authoritative(domain: Domain, spec: str | None) -> Reducer | None:
    """None for ``recorded`` (the log's own outcomes), else the domain's in-process authority."""
    if spec == "recorded":
        return None
    return domain.authority(None if spec == "reference" else spec)


def default_authority(corpora: Sequence[str]) -> tuple[str, str]:
    """The authority a replay takes when ``--authoritative`` is not given, and why.

    A log whose records carry outcomes is checked against them (what the bot, or the sidecar, saw live),
    anything else against the reference reducer; a corpus that mixes both kinds is refused (exit 2)
    rather than judged against an authority the user did not choose. The corpus is read once for this
    (streaming); ``--authoritative`` skips the look.
    """
    recorded = bare = 0
    first_recorded = first_bare = ""
    try:  # the replay itself tells of torn records and names bad ones
        for item in read_items(corpora):
            recorded, bare, first_recorded, first_bare = _tally(
                item, recorded, bare, first_recorded, first_bare
            )
    except ShadowdiffError as exc:
        if isinstance(exc, UsageError):
            raise
    if recorded:
        return "recorded", f"default: all {recorded:,} records carry recorded outcomes"
    return "reference", "default: the records carry no outcomes"


def _tally(item: LogItem, recorded: int, bare: int, first_recorded: str, first_bare: str
           ) -> tuple[int, int, str, str]:  # fmt: skip
    if isinstance(item, Record):
        if item.outcome is not None:
            recorded += 1
            first_recorded = first_recorded or item.where
        else:
            bare += 1
            first_bare = first_bare or item.where
        if recorded and bare:
            raise UsageError(
                f"the corpus mixes records with recorded outcomes ({first_recorded}) and without "
                f"({first_bare}): say which authority with --authoritative recorded (replay only "
                "logs that carry outcomes) or --authoritative MODULE|PATH"
            )
    return recorded, bare, first_recorded, first_bare


def describe_authority(domain: Domain, name: str) -> str:
    if name == "recorded":
        return "recorded outcomes (the log's own)"
    if name == "reference":
        return domain.describe_reference()
    return name


def make_shadow(
    command: str | None,
    codec: str,
    domain: Domain,
    deadline: float,
    sessions: bool | None,
    history: str = "whole",
    full_check_every: int = 5000,
) -> SubprocessReducer:
    from shadowdiff.shadow.client import SubprocessReducer

    argv: Sequence[str] | str = domain.shadow_command(codec) if command is None else command
    return SubprocessReducer(
        argv, codec=codec, domain=domain, deadline=deadline, use_sessions=sessions, history=history,
        full_check_every=full_check_every,
    )  # fmt: skip


def describe_history(shadow: Shadow) -> str:
    describe = getattr(shadow, "describe_history", None)
    return str(describe()) if callable(describe) else "sent whole with every request"


def _guarded(items: Iterator[LogItem], errors: list[dict[str, str]]) -> Iterator[LogItem]:
    """Stop at the first bad record, remembering it: everything before it is still replayed."""
    try:
        yield from items
    except ShadowdiffError as exc:
        errors.append({"where": exc.where or "", "message": exc.what})


class _Progress:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.perf_counter()

    def __call__(self, steps: int) -> None:
        if steps % 10_000 == 0:
            self.show(steps)

    def show(self, steps: int) -> None:
        if self.enabled:
            rate = steps / max(1e-9, time.perf_counter() - self.started)
            click.echo(f"\r  replayed {steps:,} steps ({rate:,.0f}/s)", nl=False, err=True)

    def done(self) -> None:
        if self.enabled:
            click.echo("\r" + " " * 60 + "\r", nl=False, err=True)


def run_replay(
    corpora: Sequence[str],
    shadow: Reducer,
    authoritative: Reducer | None,
    options: ReplayOptions,
    findings: Path | None = None,
    progress: bool = False,
    items: Callable[[Notices], Iterator[LogItem]] | None = None,
) -> tuple[ReplayResult, list[dict[str, str]]]:
    """``items``: the corpus's items (given where to tell of torn records) when another process reads
    it (runtime.split); None: read here."""
    errors: list[dict[str, str]] = []
    sink = open_private(findings, "a") if findings else None  # the bot's orders and P&L: 0600

    def on_finding(record: dict[str, Any]) -> None:
        assert sink is not None
        sink.write(dumps_json(record) + "\n")
        sink.flush()

    meter = _Progress(progress)
    replay = Replay(shadow, authoritative, options, on_finding if sink else None, meter)
    try:
        notices: list[str] = []
        try:
            with stop_on_interrupt(replay.stop):
                source = (
                    items(notices.append)
                    if items is not None
                    else read_items(corpora, notices=notices.append)
                )
                result = replay.run(_guarded(source, errors))
        except ShadowdiffError as exc:  # bad input met by the authoritative side mid-stream
            errors.append({"where": exc.where or "", "message": exc.what})
            result = replay.finish()
        for notice in notices:
            warn(notice)
    finally:
        meter.done()
        if sink:
            sink.close()
    result.errors.extend(errors)
    return result, errors


def run_jobs(
    jobs: int,
    corpora: Sequence[str],
    make_shadow_: Any,
    make_authoritative_: Any,
    options: ReplayOptions,
    findings: Path | None,
    progress: bool,
    split: bool = False,
) -> tuple[ReplayResult, list[dict[str, str]]]:
    """``run_replay`` over ``jobs`` worker processes (shadowdiff.runtime.parallel)."""
    from shadowdiff.runtime.parallel import run_parallel

    meter = _Progress(progress)
    try:  # the workers' summed progress arrives a few times a second, at no round number
        result, errors, warned = run_parallel(
            corpora, make_shadow_, make_authoritative_, options, jobs, findings, meter.show, split
        )
    finally:
        meter.done()
    for message in warned:
        warn(message)
    return result, errors


class _Commands(click.Group):
    """Every command: a Ctrl-C that reaches a command (rather than a replay's own drain) exits 130 with
    one line, never click's 'Aborted!' with exit 1, which scripts would read as 'divergences found'."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with interrupts_delivered():
                return super().invoke(ctx)
        except (KeyboardInterrupt, click.exceptions.Abort):
            click.echo("\nshadowdiff: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


@click.group(
    cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(__version__, prog_name="shadowdiff")
@domain_option
def main(domain_name: str | None) -> None:
    """Differential shadow testing: run a shadow reducer beside its authoritative twin, and find,
    explain and shrink every difference.

    \b
    Start here:
      shadowdiff replay                      the reference pair on the bundled corpus
      shadowdiff replay BOT/tests/fixtures/cross_language --shadow "doge-core-exe --server" --codec jsonl
      shadowdiff fuzz --seed 1               generate streams until the shadow diverges
      shadowdiff demo live                   the live sidecar against a simulated bot
    """


@main.command(epilog=EPILOG)
@click.argument("corpus", nargs=-1, type=click.Path())
@click.option(
    "--authoritative",
    metavar="MODULE|PATH|recorded",
    help="Upstream-compatible Python module (import name or .py path); 'recorded' checks "
    "against the outcomes a recorded log carries; 'reference' is the reference reducer. Default: "
    "'recorded' when every record carries an outcome, else the reference (a corpus mixing both is "
    "refused, exit 2).",
)
@click.option(
    "--shadow",
    metavar='"CMD ARGS"',
    help="Shadow executable and arguments. Default: the reference Haskell doge-core-exe.",
)
@click.option(
    "--codec",
    type=click.Choice(["msgpack", "jsonl"]),
    default="msgpack",
    show_default=True,
    help="msgpack: PROTOCOL.md; jsonl: the older JSON-lines --server transport.",
)
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="lockstep",
    show_default=True,
    help="lockstep: every step starts from the authoritative pre-state; free: each side "
    "evolves its own state (first divergence per slot).",
)
@click.option(
    "--resync",
    is_flag=True,
    help="Free mode: after a divergence copy the authoritative state to the shadow and go on.",
)
@click.option("--rules", type=click.Path(dir_okay=False), help="Comparison rules (TOML [[rule]] or JSON).")
@click.option(
    "--numeric-equality",
    is_flag=True,
    help="Compare ints and floats by value on every path (the bot's own ==; -0.0 == 0.0) instead of "
    "type for type and bit for bit.",
)
@click.option(
    "--strict-types",
    is_flag=True,
    help="Whole-state shadows (jsonl, --no-sessions) too: an int and the equal float differ (by default "
    "they agree there: a JSON writer may print 0.0 as 0, and the shadow re-reads what it is sent).",
)
@click.option(
    "--report", "report_path", type=click.Path(dir_okay=False), help="Write the full report as JSON."
)
@click.option(
    "--findings",
    type=click.Path(dir_okay=False),
    help="Append one self-contained JSONL record "
    "per divergence or failure (replayable with replay and shrink).",
)
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False), help="Write a self-contained HTML report."
)
@click.option(
    "--junit",
    "junit_path",
    type=click.Path(dir_okay=False),
    help="Write JUnit XML (a test case per cluster).",
)
@click.option("--fail-fast", is_flag=True, help="Stop at the first divergence or failure.")
@click.option(
    "--shrink",
    "shrink_dir",
    type=click.Path(file_okay=False),
    help="Shrink one reproducer per distinct signature into this directory.",
)
@click.option(
    "--deadline", type=float, default=10.0, show_default=True, help="Seconds the shadow may take per request."
)
@click.option("--window", type=int, default=256, show_default=True, help="Requests in flight to the shadow.")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Worker processes, each replaying a share of the slots with its own shadow (the report is "
    "the same; with --fail-fast each worker stops at its own first finding).",
)
@click.option(
    "--two-process/--one-process",
    "two_process",
    default=TWO_PROCESS_DEFAULT,
    show_default=True,
    help="--two-process: an in-process authority (the reference, or MODULE|PATH) runs in a second process "
    "that reads the corpus and streams its outcomes to this one, which checks (each --jobs worker "
    "gets its own); --one-process: both in this process. Same report either way.",
)
@click.option("--no-sessions", is_flag=True, help="Send whole states even if the shadow offers sessions.")
@click.option(
    "--history",
    type=click.Choice(["auto", "trim", "last", "whole"]),
    default="auto",
    show_default=True,
    help="Whole-state shadows: send the append-only history (completed_cycles) empty (trim), with its "
    "last record (last) or whole every time (whole). auto: trim for jsonl, whole otherwise. Trimmed, a "
    "replay stays linear and the whole state is still checked every --full-check-every steps and at "
    "the end.",
)
@click.option(
    "--full-check-every",
    type=click.IntRange(1),
    default=5000,
    show_default=True,
    help="With trimmed history: send a slot's whole state every N-th step.",
)
@click.option(
    "--deterministic", is_flag=True, help="Zero the timing fields of the report (for byte comparisons)."
)
@click.option(
    "--twice",
    is_flag=True,
    help="Run the replay twice in fresh processes with different "
    "PYTHONHASHSEED values and compare the reports byte for byte: exit 4 if they (or the exit "
    "codes) differ, else the replay's own exit code.",
)
@click.option(
    "--runtime-env",
    type=click.Path(dir_okay=False),
    help="TOML file of the bot's environment values (PAIR_REFRESH_PCT, S1_ORPHAN_AFTER_SEC, "
    "RECOVERY_ORDERS_ENABLED, ...) for a bot_runtime.json corpus; overrides the process environment.",
)
@click.option("--known", "known_path", type=click.Path(dir_okay=False), help=KNOWN_HELP)
@click.option("-q", "--quiet", is_flag=True, help="Print only the verdict line.")
@with_domain
def replay(corpus: tuple[str, ...], authoritative: str | None, shadow: str | None, codec: str, mode: str,
           resync: bool, rules: str | None, numeric_equality: bool, strict_types: bool,
           report_path: str | None, findings: str | None, html_path: str | None, junit_path: str | None,
           fail_fast: bool, shrink_dir: str | None,
           deadline: float, window: int, jobs: int, two_process: bool,
           no_sessions: bool, history: str, full_check_every: int, deterministic: bool, twice: bool,
           runtime_env: str | None, known_path: str | None, quiet: bool,
           *, domain: Domain) -> None:  # fmt: skip
    """Replay CORPUS (scenario .json files, directories of them, .jsonl/.msgpack logs, findings files,
    the bot's logs/bot_runtime.json) through the authoritative reducer and the shadow, and report every
    difference.

    A bot_runtime.json opens one slot per saved slot ("slot-<id> (<alias>)"), with the state exactly as
    saved: the shadow's reading of it is checked against the authority's from_dict (a load check per
    slot over msgpack; over jsonl the raw state goes with the next step), then one TimerTick at
    saved_at. The config is built from the file and the bot's environment (--runtime-env, the process
    environment, the bot's defaults; adapters/doge/runtime.py lists the names). Files written from it
    (findings, reports, reproducers) are created 0600: it holds real orders and txids.

    \b
    Examples:
      shadowdiff replay
      shadowdiff replay BOT/tests/fixtures/cross_language --report out/report.json
      shadowdiff replay prod.msgpack.gz --authoritative recorded --shadow "./doge-core-exe --msgpack"
      shadowdiff replay findings.jsonl --shadow "./doge-core-exe --server" --codec jsonl
      shadowdiff replay logs/bot_runtime.json --runtime-env bot-env.toml
    """
    if twice:
        from shadowdiff.runtime.determinism import run_twice

        argv = [a for a in sys.argv[1:] if a != "--twice"]
        outcome = run_twice(argv)
        stderr = outcome.pop("stderr", "")
        click.echo(dumps_json(outcome, indent=2))
        if outcome["identical"]:  # both runs agree: their own verdict decides, as a single run would
            if stderr:
                click.echo(stderr, err=True, nl=False)
            sys.exit(int(outcome["runs"][0]["exit_code"]))
        fail("the two runs differ (report or exit code): not deterministic", EXIT_NONDETERMINISTIC)
    try:
        corpora = list(corpus) or domain.bundled_corpus()
        domain = domain.with_runtime_env(runtime_env)
        use_domain(domain)  # what it writes from a runtime file is 0600 like everything else (private)
        # the user's rules first (first match wins: they can set a domain default back to exact)
        loaded_rules = load_rules(rules).plus(domain.default_rules()) if rules else domain.default_rules()
        loaded_rules = run_rules(loaded_rules, numeric=numeric_equality, strict_types=strict_types)
        if resync and mode != "free":
            raise click.UsageError("--resync only applies to --mode free (lockstep always resyncs)")
        known = read_known(known_path)
        if authoritative is None:
            if corpus:
                authoritative, authority_source = default_authority(corpora)
            else:  # the bundled sample mixes both kinds on purpose: it shows the reference pair
                authoritative, authority_source = "reference", "default for the bundled sample"
        else:
            authority_source = "--authoritative"
        auth = make_authoritative(domain, authoritative)
        if history == "auto":
            history = "trim" if codec == "jsonl" else "whole"
        shadow_reducer = make_shadow(
            shadow, codec, domain, deadline, False if no_sessions else None, history, full_check_every
        )
    except ShadowdiffError as exc:
        fail(exc)
    options = ReplayOptions(
        mode=mode, resync=resync, rules=loaded_rules, fail_fast=fail_fast, window=window, known=known
    )
    scratch = None
    if shrink_dir and not findings:  # shrinking starts from the self-contained findings records
        scratch = tempfile.TemporaryDirectory(prefix="shadowdiff-shrink-")
        findings = str(Path(scratch.name) / "findings.jsonl")
    try:
        if jobs > 1:
            shadow_name = shadow_reducer.describe()
            shadow_reducer.close()  # it proved the shadow starts; each worker starts its own
            result, errors = run_jobs(
                jobs, corpora, functools.partial(make_shadow, shadow, codec, domain, deadline,
                                                 False if no_sessions else None, history, full_check_every),
                functools.partial(make_authoritative, domain, authoritative), options,
                Path(findings) if findings else None, progress=not quiet and sys.stderr.isatty(),
                split=two_process,
            )  # fmt: skip
        else:
            from shadowdiff.runtime.split import relay

            with shadow_reducer, relay(corpora, auth, two_process) as (authority, items):
                result, errors = run_replay(
                    corpora, shadow_reducer, authority, options, Path(findings) if findings else None,
                    progress=not quiet and sys.stderr.isatty(), items=items,
                )  # fmt: skip
                shadow_name = shadow_reducer.describe()
    except ShadowdiffError as exc:
        fail(exc)
    run = {
        "mode": mode,
        "codec": codec,
        "authoritative": authoritative,
        "authority": f"{describe_authority(domain, authoritative)} [{authority_source}]",
        "shadow": shadow or domain.shadow_name,
        "corpora": corpora,
        "sessions": bool(getattr(shadow_reducer, "sessions", False)),
        "history": describe_history(shadow_reducer),
        "jobs": jobs,
    }
    if known_path:
        run["known"] = known_path
    report = build_report(result, run, deterministic=deterministic, bad_input=errors, known=known)
    try:
        write_outputs(report, report_path, html_path, junit_path)
    except ShadowdiffError as exc:
        fail(exc)
    if not quiet:
        click.echo(f"authority: {run['authority']}")
        click.echo(f"shadowdiff replay: {shadow_name}")
        click.echo(f"history: {run['history']}")
        for line in summary_lines(report):
            click.echo(line)
    for error in errors:
        click.echo(error_line(error["message"], error["where"] or None), err=True)
    if result.interrupted:
        click.echo(
            f"shadowdiff: interrupted after step {result.counts.get('steps', 0):,}: the report covers the "
            "steps before it",
            err=True,
        )
    verdict = report["summary"]["verdict"]
    if (
        shrink_dir
        and findings
        and Path(findings).exists()
        and verdict in ("diverged", "failed")
        and not (result.interrupted)
    ):
        module = (
            None if authoritative in ("recorded", "reference") else authoritative
        )  # shrunk runs need a reducer
        try:
            shrink_into(domain, findings, shadow, module, codec, mode, deadline, 30.0, quiet, None,
                        shrink_dir, known, numeric=numeric_equality, strict_types=strict_types)  # fmt: skip
        except ShadowdiffError as exc:
            fail(exc)
    if scratch is not None:
        scratch.cleanup()
    known_text = known_line(report, known_path)
    if known_text:
        click.echo(known_text)
    click.echo(f"verdict: {verdict}")
    if errors:
        sys.exit(EXIT_BAD)
    if result.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_CLEAN if verdict == "pass" else EXIT_FOUND)


for _command in (
    fuzz_cli.fuzz_command, fuzz_cli.shrink_command, runbook_cli.watch_command, runbook_cli.gate_command,
    runbook_cli.evidence_group, sidecar_cli.sidecar_command, sidecar_cli.tap_run, sidecar_cli.demo,
    triage_cli.triage_command,
):  # fmt: skip
    main.add_command(_command)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    main()
