"""The runbook as commands: ``watch``, ``gate``, ``evidence build`` and ``evidence verify``.

cli.main adds them to its group. This is an edge: it reads files and argv, prints, and turns
:class:`~shadowdiff.model.errors.ShadowdiffError` into the one error line of every command,
``shadowdiff: error: WHERE: WHAT``, and its exit code (shadowdiff.cli.exits), never a traceback. The gate
weighs the hot-path events of the group's ``--domain``.
"""

from __future__ import annotations

import functools
import json
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, ParamSpec, TypeVar

import click

from shadowdiff.cli.domains import with_domain
from shadowdiff.cli.exits import EXIT_FOUND, GATE_EXIT, fail, fail_on
from shadowdiff.core.domain import Domain
from shadowdiff.model.errors import ShadowdiffError
from shadowdiff.runbook import evidence, gate, render, watch

__all__ = ["register"]

P = ParamSpec("P")
R = TypeVar("R")
_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _one_line_errors(command: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ShadowdiffError as exc:
            fail(exc)
        except OSError as exc:
            fail_on(exc)

    return wrapper


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")


@click.command(
    "watch",
    epilog="""\b
Examples:
  shadowdiff watch http://127.0.0.1:8080 --out shadow-window.jsonl
  shadowdiff watch http://bot:8080/api/status --every 30s --duration 2h
  shadowdiff watch http://127.0.0.1:9100 --every 1s --duration 5m --synthetic   # a demo

\b
Each line: {"ts", "seq", "source", "mode", "top_phase", "state_machine_shadow", "provenance"}.
A failed poll writes {"ts", "seq", "source", "gap": true, "error"} and the watch goes on.
Running again with the same --out appends and continues seq. Ctrl-C stops after the line in hand.""",
)
@click.argument("url")
@click.option("--every", default="60s", show_default=True, help="Time between polls (60s, 5m, 1.5s).")
@click.option("--duration", default="48h", show_default=True, help="Stop after this long (48h, 30m).")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="JSONL file to append to [stdout]."
)
@click.option("--timeout", default=None, help="Per-poll timeout [the smaller of --every and 10s].")
@click.option("--synthetic", is_flag=True, help="Mark the samples as demo/test data (never evidence).")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue --out (also one the runbook's curl | jq loop wrote, without seq: its line count "
    "goes on); this is what an existing --out always does, the flag only insists that it exists.",
)
@_one_line_errors
def watch_command(
    url: str,
    every: str,
    duration: str,
    out: Path | None,
    timeout: str | None,
    synthetic: bool,
    resume: bool = False,
) -> None:
    """Poll URL/api/status and append one JSONL sample per poll (the runbook's telemetry loop)."""
    if resume and (out is None or not out.exists()):
        raise click.UsageError("--resume needs an existing --out file")
    stop = threading.Event()

    def interrupted(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = (
        signal.signal(signal.SIGINT, interrupted)
        if threading.current_thread() is threading.main_thread()
        else None
    )
    try:
        summary = watch.watch(
            url,
            every=watch.parse_duration(every),
            duration=watch.parse_duration(duration),
            out=None if out else sys.stdout,
            out_path=str(out) if out else None,
            stop=stop,
            synthetic=synthetic,
            timeout=watch.parse_duration(timeout) if timeout else None,
        )
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    how = "interrupted" if summary.interrupted else "done"
    click.echo(
        f"watch {how}: {summary.samples} samples, {summary.gaps} gaps,"
        f" seq {summary.first_seq}..{summary.last_seq}",
        err=True,
    )


@click.command(
    "gate",
    epilog="""\b
Examples:
  shadowdiff gate shadow-window.jsonl
  shadowdiff gate day1.jsonl day2.jsonl --findings findings.jsonl --triage triage.toml
  shadowdiff gate w.jsonl --policy strict.toml --report gate.json --markdown gate.md --html gate.html

\b
Criteria: coverage (window length, holes, shadow on and checks growing), shadow_failures
(start-up only = REVIEW, later = FAIL), divergences (repeating on a hot-path event of the domain, e.g.
doge's FillEvent/PriceTick/TimerTick, = FAIL, else REVIEW until every cluster is triaged). Counter
resets split the window into segments.
Verdict: ACCEPT when all pass or exactly one REVIEW has an action; REJECT on any FAIL; else EXTEND.
Triage file: JSON {"signature": "explanation"} or TOML "signature" = "explanation".
Policy: TOML, see shadowdiff/default_policy.toml for every key and its default.
Exit codes: 0 ACCEPT, 1 REJECT, 3 EXTEND, 2 bad usage or bad input.""",
)
@click.argument("samples", nargs=-1, required=True, type=_FILE)
@click.option("--findings", type=_FILE, help="Findings JSONL (clusters by signature).")
@click.option("--triage", type=_FILE, help="Signature -> explanation (JSON or TOML).")
@click.option("--policy", type=_FILE, help="Thresholds (TOML) [the runbook's defaults].")
@click.option("--known", type=_FILE, help="Triage file ([[known]] entries): explained entries with a "
              "reproducer triage the clusters they cover.")  # fmt: skip
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), help="Write the result as JSON.")
@click.option(
    "--markdown", type=click.Path(dir_okay=False, path_type=Path), help="Write the result as Markdown."
)
@click.option(
    "--html", "html_out", type=click.Path(dir_okay=False, path_type=Path), help="Write an HTML report."
)
@_one_line_errors
@with_domain
def gate_command(
    samples: tuple[Path, ...],
    findings: Path | None,
    triage: Path | None,
    policy: Path | None,
    known: Path | None,
    report: Path | None,
    markdown: Path | None,
    html_out: Path | None,
    *,
    domain: Domain,
) -> None:
    """Judge a window of status samples against the runbook's criteria: ACCEPT, EXTEND or REJECT."""
    result = gate.judge(
        evidence.load_samples(samples),
        evidence.load_findings(findings) if findings else (),
        evidence.load_triage(triage) if triage else {},
        evidence.load_policy_file(policy),
        evidence.load_known(known),
        domain,
    )
    if report:
        _write(report, json.dumps(result.to_dict(), sort_keys=True, indent=2) + "\n")
    if markdown:
        _write(markdown, render.render_gate_markdown(result))
    if html_out:
        _write(html_out, render.render_gate(result))
    click.echo(f"verdict: {result.verdict}")
    for criterion in result.criteria:
        action = f" [action: {criterion.action}]" if criterion.action else ""
        click.echo(f"  {criterion.status:<6} {criterion.name}: {criterion.figure}{action}")
    sys.exit(GATE_EXIT[result.verdict])


@click.group("evidence")
def evidence_group() -> None:
    """Build and verify the sign-off package (hashed, machine-generated evidence)."""


@evidence_group.command(
    "build",
    epilog="""\b
Examples:
  shadowdiff evidence build signoff/ --samples shadow-window.jsonl --shadow-exe /opt/doge-core-exe
  shadowdiff evidence build signoff/ --samples w.jsonl --findings f.jsonl --triage triage.toml \\
      --replay-report replay.json --determinism determinism.json --reproducers repro/

\b
Writes: telemetry.jsonl, counts.json, gate.json, gate.md, triage.md, report.html, environment.json,
[findings.jsonl, replay-report.json, replay.html, determinism.json, reproducers/], SHA256SUMS
(check with `sha256sum -c SHA256SUMS`) and SHA256SUMS.csv. Input marked synthetic is refused unless
--allow-synthetic, which the bundle then records. Exit code: the gate's (0 ACCEPT, 1 REJECT, 3 EXTEND).""",
)
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--samples", multiple=True, required=True, type=_FILE, help="Status samples JSONL (repeatable)."
)
@click.option("--findings", type=_FILE, help="Findings JSONL.")
@click.option("--triage", type=_FILE, help="Signature -> explanation (JSON or TOML).")
@click.option("--policy", type=_FILE, help="Gate thresholds (TOML).")
@click.option("--known", type=_FILE, help="Triage file ([[known]] entries); copied into the bundle.")
@click.option("--replay-report", type=_FILE, help="A replay report JSON to include (and render).")
@click.option("--determinism", type=_FILE, help='Determinism result JSON {"identical", "runs"}.')
@click.option(
    "--reproducers", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Reproducer dir."
)
@click.option(
    "--shadow-exe", type=_FILE, envvar="DOGE_CORE_EXE", help="The shadow executable [$DOGE_CORE_EXE]."
)
@click.option("--allow-synthetic", is_flag=True, help="Accept demo/test data (recorded in the bundle).")
@_one_line_errors
@with_domain
def evidence_build(directory: Path, samples: tuple[Path, ...], *, domain: Domain, **options: Any) -> None:
    """Judge the window and write the hashed sign-off bundle into DIRECTORY (new or empty)."""
    bundle = evidence.build_bundle(directory, samples=samples, domain=domain, **options)
    click.echo(
        f"wrote {len(bundle.files)} files + SHA256SUMS to {bundle.directory}: verdict {bundle.verdict}"
    )
    sys.exit(GATE_EXIT[bundle.verdict])


@evidence_group.command(
    "verify",
    epilog="""\b
Example:
  shadowdiff evidence verify signoff/      # exit 0: every hash matches
Otherwise prints `changed: FILE`, `missing: FILE` or `extra: FILE` for each and exits 1.""",
)
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_one_line_errors
def evidence_verify(directory: Path) -> None:
    """Check every file of a bundle against its SHA256SUMS."""
    result = evidence.verify_bundle(directory)
    for line in result.lines():
        click.echo(line)
    if not result.ok:
        sys.exit(EXIT_FOUND)
    click.echo(f"ok: {directory}")


def register(group: click.Group) -> None:
    """Add ``watch``, ``gate`` and ``evidence`` to the main CLI group."""
    group.add_command(watch_command)
    group.add_command(gate_command)
    group.add_command(evidence_group)
