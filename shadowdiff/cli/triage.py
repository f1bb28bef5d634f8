"""The ``triage`` command: write a triage file from what a run found, or check one's reproducers.

``shadowdiff triage report.json --out known.toml`` lists every signature of a JSON report (or a findings
file, or reproducer scenarios) as an entry with status ``open`` and explanation ``TODO``; an existing
``--out`` file keeps its entries and gains the new ones. ``shadowdiff triage --check known.toml`` replays
each entry's reproducer against the shadow and says which still reproduce, which no longer do (fixed, or
the entry is stale) and which are marked fixed but reproduce.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from shadowdiff.cli.common import oracle_for
from shadowdiff.cli.domains import with_domain
from shadowdiff.cli.exits import EXIT_CLEAN, EXIT_FOUND, fail
from shadowdiff.core import triage as tr
from shadowdiff.core.domain import Domain
from shadowdiff.model.errors import BadInput, ShadowdiffError
from shadowdiff.runtime.corpus import load_scenario


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot read: {exc.strerror}", where=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise BadInput(f"not UTF-8 text ({exc.reason})", where=str(path)) from exc


def reproducer_index(paths: list[Path]) -> dict[str, str]:
    """Signature -> reproducer path, from the ``shadowdiff.signature`` note reproducers carry."""
    index: dict[str, str] = {}
    for root in paths:
        files = sorted(root.rglob("*.json")) if root.is_dir() else [root]
        for path in files:
            try:
                note = json.loads(path.read_text(encoding="utf-8")).get("shadowdiff", {})
            except (ValueError, AttributeError, OSError, UnicodeDecodeError):
                continue
            sig = note.get("signature") if isinstance(note, dict) else None
            if isinstance(sig, str):
                index.setdefault(sig, str(path))
    return index


def entries_from(source: Path, reproducers: dict[str, str]) -> tr.Triage:
    """The entries a report (.json with a summary), a reproducer scenario or directory, or a findings
    file (.jsonl, one record a line) names."""
    if source.is_dir():
        index = reproducer_index([source])
        return tr.from_records([{"signature": s, "reproducer": p} for s, p in index.items()], reproducers)
    text = _read(source)
    if source.suffix == ".json":
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise BadInput(f"not JSON ({exc})", where=str(source)) from exc
        if isinstance(document, dict) and isinstance(document.get("summary"), dict):
            return tr.from_report(document, reproducers)
        note = document.get("shadowdiff") if isinstance(document, dict) else None
        if isinstance(note, dict) and isinstance(note.get("signature"), str):
            return tr.from_records([{"signature": note["signature"], "reproducer": str(source)}], reproducers)
        raise BadInput("neither a JSON report nor a reproducer scenario", where=str(source))
    records: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise BadInput(f"not a JSON line ({exc})", where=f"{source}:{number}") from exc
        if not isinstance(record, dict) or not isinstance(record.get("signature"), str):
            raise BadInput("a finding needs a string 'signature'", where=f"{source}:{number}")
        records.append(record)
    return tr.from_records(records, reproducers)


@click.command(name="triage")
@click.argument("sources", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("known.toml"),
    show_default=True,
    help="The triage file to write (kept entries are never changed; new signatures are added).",
)
@click.option(
    "--reproducers",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Reproducer scenarios (files or directories) whose signature note fills in 'reproducer'.",
)
@click.option(
    "--check",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Instead: replay each entry's reproducer against the shadow and say which are stale or fixed.",
)
@click.option("--shadow", metavar='"CMD ARGS"', help="Shadow for --check. Default: the reference port.")
@click.option("--authoritative", metavar="MODULE|PATH", help="Authoritative for --check.")
@click.option("--codec", type=click.Choice(["msgpack", "jsonl"]), default="msgpack", show_default=True)
@click.option("--deadline", type=float, default=2.0, show_default=True, help="Seconds per shadow request.")
@with_domain
def triage_command(sources: tuple[Path, ...], out: Path, reproducers: tuple[Path, ...], check: Path | None,
                   shadow: str | None, authoritative: str | None, codec: str,
                   deadline: float, *, domain: Domain) -> None:  # fmt: skip
    """Write a triage file (--known FILE) from SOURCES: JSON reports, findings files (.jsonl) or
    reproducer scenarios; every signature becomes an entry with status open and explanation TODO.
    With --check FILE, replay each entry's reproducer instead.

    \b
    Examples:
      shadowdiff triage report.json --reproducers corpora/regressions --out known.toml
      shadowdiff triage findings.jsonl --out known.toml
      shadowdiff triage --check known.toml --shadow "./doge-core-exe --msgpack"

    \b
    Exit codes: 0 written (or every reproducer agrees with its entry); 1 --check found stale
    entries, or entries marked fixed that reproduce; 2 bad usage or bad input.
    """
    try:
        if check is not None:
            sys.exit(_check(domain, check, shadow, authoritative, codec, deadline))
        if not sources:
            raise click.UsageError("give a report, findings file or reproducers to triage (or --check FILE)")
        index = reproducer_index(list(reproducers))
        found = tr.Triage()
        for source in sources:
            found = tr.merged(found, entries_from(source, index))
        old = tr.loads(_read(out), str(out)) if out.exists() else tr.Triage()
        new = tr.merged(old, found)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(tr.dumps_toml(new), encoding="utf-8")
        except OSError as exc:
            raise BadInput(f"cannot write: {exc.strerror}", where=str(out)) from exc
    except ShadowdiffError as exc:
        fail(exc)
    click.echo(
        f"wrote {out}: {len(new)} entries ({len(new) - len(old)} new, status open, explanation TODO: "
        "explain each, then pass it as --known)"
    )


def _check(domain: Domain, path: Path, shadow: str | None, authoritative: str | None, codec: str,
           deadline: float) -> int:  # fmt: skip
    known = tr.loads(_read(path), str(path))
    oracle, shown = oracle_for(domain, shadow, authoritative, codec, deadline, "lockstep")
    bad = 0
    try:
        for entry in known.entries:
            if not entry.reproducer:
                click.echo(f"no reproducer   {entry.signature}")
                continue
            repro = Path(entry.reproducer)
            if not repro.is_absolute() and not repro.exists():
                repro = path.parent / repro
            if not repro.exists():
                bad += 1
                click.echo(f"missing         {entry.signature}: {entry.reproducer} does not exist")
                continue
            shown_sigs = [f.signature for f in oracle.findings(load_scenario(repro))]
            reproduces = any(entry.matches(s) for s in shown_sigs)
            if reproduces and entry.status == "fixed":
                bad += 1
                click.echo(f"fixed, but seen {entry.signature}: {repro} still shows it")
            elif reproduces:
                click.echo(f"reproduces      {entry.signature}")
            elif entry.status == "fixed":
                click.echo(f"fixed           {entry.signature}: {repro} no longer shows it")
            else:
                bad += 1
                click.echo(
                    f"stale           {entry.signature}: {repro} no longer shows it (fixed? mark it "
                    'status = "fixed", or the entry is stale)'
                )
    finally:
        oracle.shadow.close()
    click.echo(f"shadowdiff triage --check: {len(known)} entries against {shown}; {bad} need attention")
    return EXIT_FOUND if bad else EXIT_CLEAN


def register(group: click.Group) -> None:
    group.add_command(triage_command)
