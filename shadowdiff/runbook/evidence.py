"""The sign-off package: build a bundle directory from machine-made inputs, and verify it later.

A bundle holds the telemetry as recorded, the per-segment count summary, the gate verdict (JSON and
Markdown), triage notes with one entry per cluster, the HTML report, the environment, and
``SHA256SUMS`` (the format ``sha256sum -c`` reads) with a CSV copy. Building twice from the same inputs on
the same host gives the same bytes: nothing in it records when it was built, only what it covers.

Evidence is machine-generated only: every status sample and finding must carry its ``provenance``, and
input marked ``"synthetic": true`` (demo or test data) is refused unless ``allow_synthetic``, which the
bundle then says in ``environment.json``, the verdict and the report.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import platform
import re
import shutil
import socket
import sys
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import attrs

from shadowdiff.core.domain import Domain
from shadowdiff.core.triage import Triage
from shadowdiff.core.triage import loads as triage_loads
from shadowdiff.model.errors import BadInput, UsageError
from shadowdiff.reporting import html
from shadowdiff.runbook import gate, render
from shadowdiff.runtime.private import private_dir, tighten

__all__ = [
    "Bundle",
    "Verification",
    "build_bundle",
    "load_determinism",
    "load_findings",
    "load_known",
    "load_policy_file",
    "load_samples",
    "load_triage",
    "verify_bundle",
]

SUMS = "SHA256SUMS"
SUMS_CSV = "SHA256SUMS.csv"
_SUM_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


def _lines(path: Path) -> Iterator[str]:
    try:
        with path.open(encoding="utf-8") as handle:
            yield from handle
    except OSError as exc:
        raise BadInput(exc.strerror or str(exc), where=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise BadInput(f"not UTF-8 text ({exc.reason})", where=str(path)) from exc


def load_samples(paths: Sequence[Path]) -> Iterator[dict[str, Any]]:
    """Status samples from JSONL files in order, each checked so a bad one is named by file and line."""
    for path in paths:
        for where, record in gate.read_samples(_lines(path), str(path)):
            gate.parse_sample(record, where)
            yield record


def load_findings(path: Path) -> Iterator[dict[str, Any]]:
    for where, record in gate.read_json_objects(_lines(path), str(path)):
        if not isinstance(record.get("signature"), str) or not isinstance(record.get("kind"), str):
            raise BadInput("a finding needs a string 'signature' and 'kind'", where=where)
        yield record


def load_triage(path: Path) -> dict[str, str]:
    """Signature -> explanation, from a JSON object or a TOML file of quoted keys."""
    text = "".join(_lines(path))
    document: Any
    if text.lstrip().startswith("{"):
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise BadInput(f"not JSON ({exc})", where=str(path)) from exc
        except RecursionError:
            raise BadInput("not JSON (nested too deeply)", where=str(path)) from None
    else:
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise BadInput(f"neither a JSON object nor TOML ({exc})", where=str(path)) from exc
        except RecursionError:
            raise BadInput("not TOML (nested too deeply)", where=str(path)) from None
    if not isinstance(document, dict):
        raise BadInput("triage must map signature -> explanation", where=str(path))
    for signature, note in document.items():
        if not isinstance(note, str) or not note.strip():
            raise BadInput(f"triage of {signature!r} must be a non-empty explanation", where=str(path))
    return {str(k): str(v) for k, v in document.items()}


def load_known(path: Path | None) -> Triage | None:
    """A triage file (``--known``, shadowdiff/triage.py); None without one."""
    return triage_loads("".join(_lines(path)), str(path)) if path is not None else None


def load_policy_file(path: Path | None) -> gate.Policy:
    return gate.Policy() if path is None else gate.load_policy("".join(_lines(path)), str(path))


def load_determinism(path: Path) -> dict[str, Any]:
    """A determinism result: ``{"identical": bool, "runs": [{"pythonhashseed": str, "sha256": str}]}``."""
    try:
        document = json.loads("".join(_lines(path)))
    except ValueError as exc:
        raise BadInput(f"not JSON ({exc})", where=str(path)) from exc
    except RecursionError:
        raise BadInput("not JSON (nested too deeply)", where=str(path)) from None
    runs = document.get("runs") if isinstance(document, dict) else None
    if (
        not isinstance(document, dict)
        or not isinstance(document.get("identical"), bool)
        or not isinstance(runs, list)
        or not all(isinstance(r, dict) and {"pythonhashseed", "sha256"} <= r.keys() for r in runs)
    ):
        raise BadInput(
            'expected {"identical": bool, "runs": [{"pythonhashseed", "sha256"}]}', where=str(path)
        )
    return document


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


RUNBOOK_KEYS = frozenset({"ts", "mode", "top_phase", "state_machine_shadow"})


def _runbook_line(record: Mapping[str, Any]) -> bool:
    """A line of the runbook's own ``curl | jq '{ts, mode, top_phase, state_machine_shadow}'`` loop.

    That loop is machine-made too, it only has no room for provenance: its lines are taken as they are
    (the seq that :func:`~shadowdiff.runbook.gate.read_samples` adds is ours), and the bundle names the
    loop as their source.
    """
    return set(record) - {"seq"} == RUNBOOK_KEYS


def _synthetic_and_provenance(records: Iterable[Mapping[str, Any]], name: str, gaps_ok: bool) -> list[str]:
    """Where synthetic records are; a record with no provenance at all is not machine-made evidence."""
    found = []
    for index, record in enumerate(records, start=1):
        provenance = record.get("provenance")
        if not isinstance(provenance, Mapping):
            if gaps_ok and (record.get("gap") is True or _runbook_line(record)):
                continue
            raise BadInput(
                "no provenance: evidence must be machine-generated (record with `shadowdiff watch`)",
                where=f"{name} record {index}",
            )
        if provenance.get("synthetic") is True:
            found.append(f"{name} record {index}")
    return found


def _version() -> str:
    try:
        return metadata.version("shadowdiff")
    except metadata.PackageNotFoundError:
        package = sys.modules.get("shadowdiff")
        return str(getattr(package, "__version__", "unknown")) + " (not installed)"


@attrs.frozen
class Bundle:
    directory: Path
    verdict: str
    files: tuple[str, ...]


def _dump(data: Any) -> str:
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _triage_notes(result: gate.GateResult, reproducers: Mapping[str, str]) -> str:
    lines = ["# Triage notes", "", f"Gate verdict: {result.verdict}. One entry per cluster.", ""]
    if not result.clusters:
        lines.append("No clusters: nothing diverged and nothing failed in this window.")
    for cluster in result.clusters:
        reproducer = cluster.reproducer or reproducers.get(cluster.signature)
        lines += [
            f"## `{cluster.signature}`",
            "",
            f"- kind: {cluster.kind}; event: {cluster.event_type}{' (hot path)' if cluster.hot_path else ''}",
            f"- count: {cluster.count} (from the {cluster.source})",
            f"- first: {cluster.first}; last: {cluster.last}",
            f"- reproducer: {reproducer or 'none yet (run `shadowdiff shrink` on the findings)'}",
            f"- explanation: {cluster.triage or 'TODO: explain, or fix and re-run the gate'}",
            "",
        ]
    return "\n".join(lines)


def _reproducer_index(directory: Path) -> dict[str, Path]:
    """Signature -> scenario file, from the ``shadowdiff.signature`` key reproducers carry."""
    index: dict[str, Path] = {}
    for path in sorted(directory.rglob("*.json")):
        try:
            signature = json.loads(path.read_text(encoding="utf-8")).get("shadowdiff", {}).get("signature")
        except (ValueError, AttributeError, OSError, RecursionError):
            continue
        if isinstance(signature, str):
            index.setdefault(signature, path)
    return index


def build_bundle(
    directory: Path,
    *,
    samples: Sequence[Path],
    findings: Path | None = None,
    triage: Path | None = None,
    policy: Path | None = None,
    known: Path | None = None,
    replay_report: Path | None = None,
    determinism: Path | None = None,
    reproducers: Path | None = None,
    shadow_exe: Path | None = None,
    allow_synthetic: bool = False,
    domain: Domain | None = None,
) -> Bundle:
    """Judge the window (hot paths: the policy's, else ``domain``'s) and write the bundle into
    ``directory`` (which must be new or empty)."""
    if not samples:
        raise UsageError("evidence needs at least one samples file (--samples)")
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise UsageError("must be a new or empty directory", where=str(directory))
    sample_records = list(load_samples(samples))
    finding_records = list(load_findings(findings)) if findings else []
    synthetic = _synthetic_and_provenance(sample_records, "samples", gaps_ok=True)
    synthetic += _synthetic_and_provenance(finding_records, "findings", gaps_ok=False)
    if synthetic and not allow_synthetic:
        raise UsageError(
            f"synthetic input ({synthetic[0]}, {len(synthetic)} in all): demo or test data is not evidence; "
            "pass --allow-synthetic to build a bundle marked as such"
        )
    report = None
    if replay_report is not None:
        try:
            report = json.loads("".join(_lines(replay_report)))
        except ValueError as exc:
            raise BadInput(f"not JSON ({exc})", where=str(replay_report)) from exc
        except RecursionError:
            raise BadInput("not JSON (nested too deeply)", where=str(replay_report)) from None
        if not isinstance(report, dict) or not isinstance(report.get("summary"), dict):
            raise BadInput("not a replay report (no summary)", where=str(replay_report))
    determinism_doc = load_determinism(determinism) if determinism else None
    if shadow_exe is not None and not shadow_exe.is_file():
        raise UsageError("shadow executable not found", where=str(shadow_exe))
    triage_map = load_triage(triage) if triage else {}
    known_file = load_known(known)
    result = gate.judge(
        sample_records, finding_records, triage_map, load_policy_file(policy), known_file, domain
    )

    private_dir(directory)  # 0700 from the start: nobody else can reach the files while they are written
    written: list[str] = []

    def write(name: str, text: str) -> None:
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8", newline="\n")
        written.append(name)

    with (directory / "telemetry.jsonl").open("wb") as out:
        for path in samples:
            data = path.read_bytes()
            out.write(data if data.endswith(b"\n") or not data else data + b"\n")
    written.append("telemetry.jsonl")
    if findings is not None:
        shutil.copyfile(findings, directory / "findings.jsonl")
        written.append("findings.jsonl")
    if known is not None:  # the triage file the verdict rests on, byte for byte
        name = "known" + (known.suffix if known.suffix in (".toml", ".json") else ".toml")
        shutil.copyfile(known, directory / name)
        written.append(name)
    copied: dict[str, str] = {}
    if reproducers is not None:
        for signature, path in sorted(_reproducer_index(reproducers).items()):
            name = f"reproducers/{path.relative_to(reproducers).as_posix()}"
            write(name, path.read_text(encoding="utf-8"))
            copied[signature] = name
    counts = {
        "segments": [
            {
                "segment": s.index,
                "seqs": [s.first_seq, s.last_seq],
                "start": s.start,
                "end": s.end,
                "total_divergences": {"max": s.max["total_divergences"], "last": s.last["total_divergences"]},
                "shadow_failures": {"max": s.max["shadow_failures"], "last": s.last["shadow_failures"]},
            }
            for s in result.segments
        ],
        "window": dict(result.window),
    }
    write("counts.json", _dump(counts))
    verdict = result.to_dict() | {"allow_synthetic": allow_synthetic}
    write("gate.json", _dump(verdict))
    write("gate.md", render.render_gate_markdown(result))
    write("triage.md", _triage_notes(result, copied))
    write("report.html", render.render_gate(result))
    if report is not None:
        write("replay-report.json", _dump(report))
        write("replay.html", html.render_report(report))
    if determinism_doc is not None:
        write("determinism.json", _dump(determinism_doc))
    sources = sorted(
        {str(r["provenance"].get("source")) for r in sample_records if isinstance(r.get("provenance"), dict)}
        | ({"the runbook's curl | jq loop"} if any(_runbook_line(r) for r in sample_records) else set())
    )
    environment = {
        "shadowdiff": _version(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "host": socket.gethostname(),
        "shadow_executable": {
            "path": str(shadow_exe.resolve()) if shadow_exe else None,
            "sha256": _sha256(shadow_exe) if shadow_exe else None,
        },
        "time_span": {k: result.window[k] for k in ("start", "end", "hours")},
        "sources": sources,
        "inputs": {
            "samples": [str(p) for p in samples],
            "findings": str(findings) if findings else None,
            "triage": str(triage) if triage else None,
            "policy": str(policy) if policy else "default",
            "known": str(known) if known else None,
            "replay_report": str(replay_report) if replay_report else None,
            "determinism": str(determinism) if determinism else None,
        },
        "allow_synthetic": allow_synthetic,
        "synthetic_inputs": synthetic[:20],
        "synthetic_count": len(synthetic),
    }
    write("environment.json", _dump(environment))
    _write_sums(directory)
    tighten(directory)  # the bot's telemetry and findings: files 0600, directories 0700
    return Bundle(directory, result.verdict, tuple(sorted(written)))


def _bundle_files(directory: Path) -> list[str]:
    names = (p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
    return sorted(name for name in names if name not in (SUMS, SUMS_CSV))


def _write_sums(directory: Path) -> None:
    rows = [
        (name, _sha256(directory / name), (directory / name).stat().st_size)
        for name in _bundle_files(directory)
    ]
    (directory / SUMS).write_text(
        "".join(f"{digest}  {name}\n" for name, digest, _ in rows), encoding="utf-8"
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", "sha256", "bytes"])
    writer.writerows(rows)
    (directory / SUMS_CSV).write_text(buffer.getvalue(), encoding="utf-8")


@attrs.frozen
class Verification:
    changed: tuple[str, ...]
    missing: tuple[str, ...]
    extra: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.extra)

    def lines(self) -> list[str]:
        found = [("changed", self.changed), ("missing", self.missing), ("extra", self.extra)]
        return [f"{what}: {name}" for what, names in found for name in names]


def verify_bundle(directory: Path) -> Verification:
    """Compare every file against ``SHA256SUMS`` (and the CSV copy against it)."""
    sums_path = directory / SUMS
    if not sums_path.is_file():
        raise BadInput(f"no {SUMS}: not an evidence bundle", where=str(directory))
    expected: dict[str, str] = {}
    for number, line in enumerate(_lines(sums_path), start=1):
        match = _SUM_LINE.match(line.rstrip("\n"))
        if match is None or os.path.isabs(match.group(2)) or ".." in Path(match.group(2)).parts:
            raise BadInput("not a sha256sum line", where=f"{sums_path}:{number}")
        expected[match.group(2)] = match.group(1)
    present = set(_bundle_files(directory))
    changed = sorted(
        name for name in expected.keys() & present if _sha256(directory / name) != expected[name]
    )
    missing = sorted(expected.keys() - present)
    extra = sorted(present - expected.keys())
    csv_path = directory / SUMS_CSV
    if not csv_path.is_file():
        missing.append(SUMS_CSV)
    else:
        try:
            rows = list(csv.reader(_lines(csv_path)))
        except csv.Error:
            rows = []
        if {tuple(row[:2]) for row in rows[1:]} != set(expected.items()):
            changed.append(SUMS_CSV)
    return Verification(tuple(changed), tuple(missing), tuple(extra))
