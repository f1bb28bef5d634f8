"""Triage files: which signatures are already known, why, and how to reproduce them.

A triage file lists entries, each a signature *pattern* (exact, or a glob where ``*`` matches any run
of characters and ``?`` one character; the ``[*]`` of a generalised path is always literal), an
explanation, a status and the path of a reproducer::

    [[known]]
    signature = "transition.state|FillEvent|orders[*].*"
    explanation = "the port rounds fills half-up"
    status = "open"            # open | accepted | fixed
    reproducer = "corpora/regressions/fill-rounding.json"

or the same as JSON (``{"known": [{...}, ...]}``). The gate's older form, a map ``signature ->
explanation``, reads as entries with status ``open``.

A divergence is *known* when every one of its signatures matches an entry that is ``open`` or
``accepted``; a signature matching only a ``fixed`` entry is not known (the bug is back) and is reported
as such. Pure: text in, values out; files are read by the callers.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from shadowdiff.model.errors import BadInput

STATUSES = ("open", "accepted", "fixed")
TODO = "TODO"


def _compile(pattern: str) -> re.Pattern[str]:
    parts = []
    for piece in pattern.split("[*]"):
        out = []
        for char in piece:
            out.append(".*" if char == "*" else "." if char == "?" else re.escape(char))
        parts.append("".join(out))
    return re.compile(re.escape("[*]").join(parts) + r"\Z", re.DOTALL)


def is_glob(pattern: str) -> bool:
    return "*" in pattern.replace("[*]", "") or "?" in pattern


@attrs.frozen
class Entry:
    signature: str
    explanation: str = TODO
    status: str = "open"
    reproducer: str | None = None
    _regex: re.Pattern[str] = attrs.field(init=False, repr=False, eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_regex", _compile(self.signature))

    def matches(self, signature: str) -> bool:
        return signature == self.signature or bool(self._regex.match(signature))

    @property
    def covers(self) -> bool:
        """True when a match makes a divergence known (open or accepted; a fixed bug seen is news)."""
        return self.status != "fixed"

    @property
    def explained(self) -> bool:
        text = self.explanation.strip()
        return bool(text) and not text.upper().startswith(TODO)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "signature": self.signature,
            "explanation": self.explanation,
            "status": self.status,
        }
        if self.reproducer is not None:
            out["reproducer"] = self.reproducer
        return out


@attrs.frozen
class Triage:
    entries: tuple[Entry, ...] = ()

    def match(self, signature: str) -> Entry | None:
        """The entry for ``signature``: an exact one first, else the first glob that matches."""
        for entry in self.entries:
            if entry.signature == signature:
                return entry
        for entry in self.entries:
            if entry.matches(signature):
                return entry
        return None

    def known(self, signature: str) -> bool:
        entry = self.match(signature)
        return entry is not None and entry.covers

    def covers(self, signatures: Iterable[str]) -> bool:
        """True when every signature is known (an empty set is not)."""
        sigs = list(signatures)
        return bool(sigs) and all(self.known(s) for s in sigs)

    def unknown(self, signatures: Iterable[str]) -> list[str]:
        return [s for s in signatures if not self.known(s)]

    def fixed_seen(self, signatures: Iterable[str]) -> list[Entry]:
        """The ``fixed`` entries these signatures match (the bug is back, or the entry is wrong)."""
        out: list[Entry] = []
        for sig in signatures:
            entry = self.match(sig)
            if entry is not None and entry.status == "fixed" and entry not in out:
                out.append(entry)
        return out

    def explanation(self, signatures: Iterable[str]) -> str | None:
        """The joined explanations when every signature is known and explained, else None."""
        notes: list[str] = []
        for sig in signatures:
            entry = self.match(sig)
            if entry is None or not entry.covers or not entry.explained:
                return None
            if entry.explanation not in notes:
                notes.append(entry.explanation)
        return "; ".join(notes) if notes else None

    def __len__(self) -> int:
        return len(self.entries)


def _entry(raw: Any, where: str) -> Entry:
    if not isinstance(raw, Mapping):
        raise BadInput("a triage entry must be a table/object", where=where)
    unknown = sorted(set(raw) - {"signature", "explanation", "status", "reproducer"})
    if unknown:
        raise BadInput(f"unknown key {unknown[0]!r} in a triage entry", where=where)
    signature, explanation = raw.get("signature"), raw.get("explanation", TODO)
    status, reproducer = raw.get("status", "open"), raw.get("reproducer")
    if not isinstance(signature, str) or not signature:
        raise BadInput("a triage entry needs a non-empty string 'signature'", where=where)
    if not isinstance(explanation, str):
        raise BadInput(f"{signature!r}: 'explanation' must be a string", where=where)
    if status not in STATUSES:
        raise BadInput(f"{signature!r}: status {status!r} is not one of {', '.join(STATUSES)}", where=where)
    if reproducer is not None and not isinstance(reproducer, str):
        raise BadInput(f"{signature!r}: 'reproducer' must be a path string", where=where)
    return Entry(signature, explanation, str(status), reproducer)


def loads(text: str, where: str = "triage") -> Triage:
    """A triage file's text (JSON or TOML) as a ``Triage``; ``BadInput`` naming ``where`` if malformed."""
    document: Any
    head = text.lstrip()
    if head.startswith("{") or (head.startswith("[") and not head.startswith("[[")):
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise BadInput(f"not JSON ({exc})", where=where) from exc
    else:
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise BadInput(f"neither JSON nor TOML ({exc})", where=where) from exc
    if isinstance(document, list):
        document = {"known": document}
    if not isinstance(document, dict):
        raise BadInput("a triage file is a table with [[known]] entries", where=where)
    if "known" in document:
        raw = document["known"]
        if not isinstance(raw, list):
            raise BadInput("'known' must be a list of entries", where=where)
        entries = [_entry(item, f"{where}: entry {i + 1}") for i, item in enumerate(raw)]
    else:  # the gate's older form: signature -> explanation
        entries = []
        for signature, note in document.items():
            if not isinstance(note, str) or not note.strip():
                raise BadInput(f"triage of {signature!r} must be a non-empty explanation", where=where)
            entries.append(Entry(str(signature), note))
    return Triage(tuple(entries))


def _toml_str(value: str) -> str:
    """A TOML basic string: backslash, quote and control characters escaped, the rest as is."""
    out = []
    for char in value:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def dumps_toml(triage: Triage) -> str:
    lines = [
        "# shadowdiff triage file: one [[known]] entry per signature (pattern: exact or glob, * and ?).",
        "# status: open (known, unfixed) | accepted (will not fix) | fixed (seeing it again is news).",
        "",
    ]
    for entry in triage.entries:
        lines.append("[[known]]")
        for key, value in entry.to_wire().items():
            lines.append(f"{key} = {_toml_str(str(value))}")
        lines.append("")
    return "\n".join(lines)


def from_records(
    records: Iterable[Mapping[str, Any]], reproducers: Mapping[str, str] | None = None
) -> Triage:
    """Entries (status open, explanation TODO) for every signature in findings records, report
    divergences/failures or clusters (each with ``signature`` and maybe ``signatures``)."""
    reproducers = reproducers or {}
    seen: dict[str, Entry] = {}
    for record in records:
        sigs: list[str] = []
        many = record.get("signatures")
        if isinstance(many, list):
            sigs += [s for s in many if isinstance(s, str)]
        one = record.get("signature")
        if isinstance(one, str) and one not in sigs:
            sigs.insert(0, one)
        repro = record.get("reproducer")
        for sig in sigs:
            if sig not in seen:
                path = reproducers.get(sig) or (repro if isinstance(repro, str) else None)
                seen[sig] = Entry(sig, TODO, "open", path)
    return Triage(tuple(seen.values()))


def from_report(report: Mapping[str, Any], reproducers: Mapping[str, str] | None = None) -> Triage:
    """Entries from a JSON report: its divergences, failures and clusters."""
    records: list[Mapping[str, Any]] = []
    for key in ("divergences", "failures", "clusters"):
        items = report.get(key)
        if isinstance(items, list):
            records += [x for x in items if isinstance(x, Mapping)]
    return from_records(records, reproducers)


def merged(old: Triage, new: Triage) -> Triage:
    """``old`` with the entries of ``new`` whose signature it does not match yet."""
    extra = tuple(e for e in new.entries if old.match(e.signature) is None)
    return Triage(old.entries + extra)


def summary(triage: Triage | None, known_clusters: Sequence[Mapping[str, Any]]) -> list[str]:
    """Lines naming the known clusters seen and the entry that explains each."""
    if triage is None:
        return []
    out = []
    for cluster in known_clusters:
        entry = triage.match(str(cluster["signature"]))
        status = entry.status if entry else "?"
        out.append(f"{cluster['count']:>7,}  known ({status})  {cluster['signature']}")
    return out
