"""Corpus readers and writers: scenario JSON files, JSONL and msgpack event logs, findings files.

Everything is streamed: a log is read record by record, so memory stays flat however long it is. A
reader yields what it could read and raises ``BadInput`` (naming the file and line, or byte offset) at
the first thing it cannot, so a caller has already replayed every valid record before it. Formats:
docs/formats.md.

Hostile input is bounded (docs/robustness.md): one record (a JSONL line, a msgpack object) is at most
``MAX_RECORD_BYTES``, a scenario file at most ``MAX_SCENARIO_BYTES``, a gzip file may not decompress to
more than ``MAX_GZIP_RATIO`` times its size (past ``GZIP_SLACK_BYTES``), and nesting deeper than the
parsers' own limits is refused: each as ``BadInput`` naming the place, never a traceback.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import attrs
import msgpack

from shadowdiff.core.domain import Domain
from shadowdiff.model.errors import BadInput
from shadowdiff.model.records import ContextChange, Gap, LogItem, PatchRecord, Record, Snapshot
from shadowdiff.model.values import Context, Scenario, StepResult, WireMap, input_from_wire
from shadowdiff.runtime.private import write_private
from shadowdiff.wire.codec import dumps_json, make_unpacker, packb
from shadowdiff.wire.format import header_error, log_header

LOG_SUFFIXES = (".jsonl", ".jsonl.gz", ".msgpack", ".msgpack.gz", ".mpk", ".mpk.gz")
READ_CHUNK = 1 << 16
MAX_RECORD_BYTES = 64 << 20
MAX_SCENARIO_BYTES = 256 << 20
MAX_GZIP_RATIO = 200
GZIP_SLACK_BYTES = 64 << 20
UNREADABLE = (OSError, EOFError, zlib.error)  # what a damaged (gzip) stream raises while read


def parse_json(text: str | bytes, where: str) -> Any:
    """``json.loads`` with every way it can fail as BadInput naming ``where`` (and the line)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        line = f":{exc.lineno}" if exc.lineno > 1 else ""
        raise BadInput(f"not valid JSON: {exc.msg}", f"{where}{line}") from None
    except UnicodeDecodeError as exc:
        raise BadInput(f"not UTF-8 text (byte {exc.start})", where) from None
    except RecursionError:
        raise BadInput("nested too deeply", where) from None


class _Bounded:
    """A gzip stream that refuses to decompress to more than ``MAX_GZIP_RATIO`` times the file's size."""

    def __init__(self, stream: gzip.GzipFile, path: Path, compressed: int) -> None:
        self.stream = stream
        self.path = path
        self.limit = max(GZIP_SLACK_BYTES, MAX_GZIP_RATIO * compressed)
        self.out = 0

    def _count(self, data: bytes) -> bytes:
        self.out += len(data)
        if self.out > self.limit:
            raise BadInput(
                f"decompresses to over {self.limit:,} bytes ({MAX_GZIP_RATIO}x its size): a gzip bomb?",
                str(self.path),
            )
        return data

    def read(self, n: int = -1) -> bytes:
        return self._count(self.stream.read(n))

    def readline(self, limit: int = -1) -> bytes:
        return self._count(self.stream.readline(limit))

    def close(self) -> None:
        self.stream.close()

    def __enter__(self) -> _Bounded:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Notices = Callable[[str], None]
"""Where a reader reports what it skipped without stopping (a log that ends in the middle of a record,
because its writer died: the partial record is skipped): one line each, naming the place."""


def is_log(path: Path) -> bool:
    return path.name.endswith(LOG_SUFFIXES)


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """Files named, and every scenario or log below a directory named, sorted by path."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and (p.suffix == ".json" or is_log(p)))
            if not found:
                raise BadInput("no scenario (*.json) or log files in this directory", str(path))
            out.extend(found)
        elif path.exists():
            out.append(path)
        else:
            raise BadInput("no such file or directory", str(path))
    return out


_domains: list[Domain] = []


def use_domain(domain: Domain) -> None:
    """Read ``domain``'s own ``.json`` corpus formats (``Domain.json_corpus``) from now on, in this
    process and in the workers it forks (replacing an earlier domain of the same class)."""
    _domains[:] = [d for d in _domains if type(d) is not type(domain)] + [domain]


def context_start(domain: Domain | None = None) -> Context | None:
    """The context a slot read from a corpus starts from, before the corpus says otherwise: ``domain``'s
    blank context (its call parameters at their defaults, ``Domain.blank_context``); without one, that of
    the domain last given to ``use_domain`` (every command gives its own). None when no domain is known:
    a context is then taken as the corpus has it (``slot_context``)."""
    if domain is None and not _domains:
        return None
    return _domain(domain).blank_context()


def slot_context(value: Mapping[str, Any] | None, start: Context | None) -> Context:
    """A slot's context from a corpus' context map: ``start`` with the keys it declares replaced (a
    config of the slot's own), or, with no ``start`` (no domain known), every key as the map has it."""
    value = {} if value is None else value
    if start is None:
        return Context.from_wire(value)
    return start.updated({"config": {}, **value})


def _domain(domain: Domain | None) -> Domain:
    """``domain``, else the one last given to ``use_domain``, else a domain of no parameters."""
    if domain is not None:
        return domain
    return _domains[-1] if _domains else Domain()


# a scenario file's own keys; the rest of its top level is the context (the config and the parameters)
SCENARIO_KEYS = frozenset({"name", "config", "initial_state", "events", "expected", "shadowdiff"})


def read_items(
    paths: Iterable[str | Path], domain: Domain | None = None, notices: Notices | None = None
) -> Iterator[LogItem]:
    """All records of all the named corpora, in order. Scenario files are slots named after their
    scenario (after their path when two share a name); a ``.json`` file in a domain's own format (e.g.
    the DOGE bot's ``bot_runtime.json``) gives the slots the domain reads from it, renamed the same way
    when taken. ``domain``: the domain to ask (default: those given to ``use_domain``); ``notices``:
    told of each torn last record skipped (default: skipped silently)."""
    names: set[str] = set()
    domains = [domain] if domain is not None else list(_domains)
    for path in expand(paths):
        if path.suffix == ".json":
            data = _read_json(path)
            for candidate in domains:
                items = candidate.json_corpus(data, str(path))
                if items is not None:
                    yield from _unique_slots(items, names, str(path))
                    break
            else:
                scenario = scenario_from_wire(data, str(path), default_name=path.stem, domain=domain)
                slot = scenario.name if scenario.name not in names else f"{scenario.name}@{path}"
                names.add(slot)
                yield from scenario_items(scenario, str(path), slot)
        else:
            yield from read_file(path, notices, domain)


def _unique_slots(items: Iterable[LogItem], names: set[str], where: str) -> Iterator[LogItem]:
    renamed: dict[str, str] = {}
    for item in items:
        slot = getattr(item, "slot", None)
        if slot is None:
            yield item
            continue
        if slot not in renamed:
            renamed[slot] = slot if slot not in names else f"{slot}@{where}"
            names.add(renamed[slot])
        yield item if renamed[slot] == slot else attrs.evolve(item, slot=renamed[slot])


def read_file(path: Path, notices: Notices | None = None, domain: Domain | None = None) -> Iterator[LogItem]:
    if path.name.endswith((".msgpack", ".msgpack.gz", ".mpk", ".mpk.gz")):
        yield from read_msgpack_log(path, notices, domain)
    elif path.name.endswith((".jsonl", ".jsonl.gz")):
        yield from read_jsonl(path, notices, domain)
    elif path.suffix == ".json":
        yield from read_items([path], domain)
    else:
        raise BadInput("unknown corpus type (expected .json, .jsonl[.gz] or .msgpack[.gz])", str(path))


# -- scenarios ---------------------------------------------------------------------------------------
def load_scenario(path: Path, domain: Domain | None = None) -> Scenario:
    return scenario_from_wire(_read_json(path), str(path), default_name=path.stem, domain=domain)


def _read_json(path: Path) -> Any:
    try:
        size = path.stat().st_size
        if size > MAX_SCENARIO_BYTES:
            raise BadInput(
                f"a JSON file of {size:,} bytes (over {MAX_SCENARIO_BYTES:,}): use a log", str(path)
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read: {exc.strerror}", str(path)) from exc
    return parse_json(raw, str(path))


def scenario_from_wire(
    data: Any, where: str, default_name: str = "scenario", domain: Domain | None = None
) -> Scenario:
    """A scenario file's content; its context holds ``config`` and the domain's call parameters, each
    from the file or at its default (``context_start``)."""
    if not isinstance(data, Mapping):
        raise BadInput("a scenario must be a JSON object", where)
    for key in ("initial_state", "events"):
        if key not in data:
            raise BadInput(f"a scenario needs {key!r}", where)
    if not isinstance(data["initial_state"], Mapping):
        raise BadInput("'initial_state' must be an object", where)
    if not isinstance(data["events"], list):
        raise BadInput("'events' must be a list", where)
    start = context_start(domain)
    for key in ("config", *(_domain(domain).context_maps() if start is not None else ())):
        if data.get(key) is not None and not isinstance(data[key], Mapping):
            raise BadInput(f"{key!r} must be an object", where)
    inputs = []
    for i, raw in enumerate(data["events"]):
        try:
            inputs.append(input_from_wire(raw))
        except ValueError as exc:
            raise BadInput(str(exc), f"{where}: events[{i}]") from exc
    if start is None:  # no domain known: every key the scenario format does not name
        params = {key: value for key, value in data.items() if key not in SCENARIO_KEYS}
    else:
        params = {key: data.get(key, value) for key, value in start.params.items()}
    context = Context(dict(data.get("config") or {}), params)
    meta = data.get("shadowdiff")
    return Scenario(
        name=str(data.get("name") or default_name),
        context=context,
        initial_state=dict(data["initial_state"]),
        inputs=tuple(inputs),
        expected=data.get("expected"),
        meta=dict(meta) if isinstance(meta, Mapping) else {},
    )


def scenario_items(scenario: Scenario, where: str = "", slot: str | None = None) -> Iterator[LogItem]:
    name = slot or scenario.name
    yield Snapshot(name, scenario.initial_state, scenario.context, where)
    for i, item in enumerate(scenario.inputs):
        yield Record(name, item, i, None, None, f"{where}: events[{i}]")


def write_scenario(scenario: Scenario, path: Path) -> None:
    """A scenario file, 0600 in 0700 directories (runtime.private): a reproducer may start from a real
    saved state."""
    write_private(path, dumps_json(scenario.to_wire(), indent=2) + "\n")


# -- logs --------------------------------------------------------------------------------------------
def _open_binary(path: Path) -> IO[bytes]:
    try:
        raw = path.open("rb")
        size = path.stat().st_size
    except OSError as exc:
        raise BadInput(f"cannot read: {exc.strerror}", str(path)) from exc
    if path.name.endswith(".gz"):
        return _Bounded(gzip.GzipFile(fileobj=raw), path, size)  # type: ignore[return-value]
    return raw


def read_jsonl(path: Path, notices: Notices | None = None, domain: Domain | None = None) -> Iterator[LogItem]:
    """A JSONL log, or a findings file (lines with ``pre_state``)."""
    with _open_binary(path) as stream:
        reader = RecordReader(str(path), context_start(domain))
        number = 0
        while True:
            try:
                line = stream.readline(MAX_RECORD_BYTES + 1)
            except UNREADABLE as exc:
                raise BadInput(f"cannot read on: {exc}", f"{path}:{number + 1}") from exc
            if not line:
                return
            number += 1
            where = f"{path}:{number}"
            if len(line) > MAX_RECORD_BYTES:
                raise BadInput(f"a line over {MAX_RECORD_BYTES:,} bytes", where)
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                if not line.endswith(b"\n"):
                    if notices is not None:
                        notices(f"{where}: torn last record skipped")
                    return
                raise BadInput(f"not valid JSON: {exc.msg}", where) from exc
            except UnicodeDecodeError as exc:
                raise BadInput(f"not UTF-8 text (byte {exc.start} of the line)", where) from exc
            except RecursionError:
                raise BadInput("nested too deeply", where) from None
            yield from reader.item(value, where)


def read_msgpack_log(
    path: Path, notices: Notices | None = None, domain: Domain | None = None
) -> Iterator[LogItem]:
    with _open_binary(path) as stream:
        unpacker = make_unpacker(MAX_RECORD_BYTES)
        reader = RecordReader(str(path), context_start(domain))
        offset = 0
        boundary = 0  # where the next record starts (unpacker.tell() moves into a record cut short)
        while True:
            try:
                chunk = stream.read(READ_CHUNK)
            except UNREADABLE as exc:
                raise BadInput(f"cannot read on: {exc}", f"{path}: byte {offset}") from exc
            if not chunk:
                break
            try:
                unpacker.feed(chunk)
            except msgpack.BufferFull:
                raise BadInput(
                    f"a record over {MAX_RECORD_BYTES:,} bytes", f"{path}: byte {boundary}"
                ) from None
            while True:
                try:
                    value = unpacker.unpack()
                except msgpack.OutOfData:
                    break
                except (ValueError, TypeError, msgpack.exceptions.StackError) as exc:
                    # TypeError: a map key msgpack can decode but Python cannot hash (a list, a map)
                    raise BadInput(f"not msgpack: {exc}", f"{path}: byte {boundary}") from exc
                start, boundary = boundary, unpacker.tell()
                yield from reader.item(value, f"{path}: byte {start}")
            offset += len(chunk)
        if boundary < offset and notices is not None:
            notices(f"{path}: byte {boundary}: torn last record skipped ({offset - boundary} bytes)")


class RecordReader:
    """Turns log (or findings) records, one decoded value at a time, into replay items, checking each
    one's shape (``item`` raises ``BadInput`` naming ``where``). One reader per file: the first record
    must be the header. Used by the file readers here and by whatever reads records from elsewhere (the
    sidecar reads its own log as it grows). ``start``: the context a slot's record fills in (the domain's
    parameters at their defaults; default: ``context_start()``, which is None, every key as the record
    has it, when no domain is known)."""

    def __init__(self, name: str, start: Context | None = None) -> None:
        self.name = name
        self.start = context_start() if start is None else start
        self.findings = 0
        self.first = True

    def item(self, value: Any, where: str) -> Iterator[LogItem]:
        if not isinstance(value, Mapping):
            raise BadInput("a record must be a map", where)
        first, self.first = self.first, False
        if "pre_state" in value and "signature" in value:  # a findings line (its kind is a divergence kind)
            yield from self._finding(value, where)
            return
        kind = value.get("kind")
        if first and kind != "header":
            raise BadInput("a log starts with a 'header' record", where)
        try:
            if kind == "header":
                problem = header_error(value)
                if problem:
                    raise BadInput(problem, where)
                for slot, spec in _map(value, "slots").items():
                    spec = spec if isinstance(spec, Mapping) else {}
                    yield Snapshot(str(slot), _map(spec, "state"), self._context(spec.get("context")), where)
            elif kind == "snapshot":
                yield Snapshot(_slot(value), _map(value, "state"), self._context(value.get("context")), where)
            elif kind == "context":
                yield ContextChange(_slot(value), _map(value, "context"), where)
            elif kind in ("step", "call"):
                if kind == "step":
                    item = input_from_wire(value.get("event"))
                else:
                    item = input_from_wire({"call": value.get("call"), "args": value.get("args", {})})
                outcome = value.get("outcome")
                context = value.get("context")
                if context is not None and not isinstance(context, Mapping):
                    raise ValueError("'context' must be a map")
                yield Record(_slot(value), item, value.get("seq"), dict(context) if context else None,
                             _outcome(outcome), where)  # fmt: skip
            elif kind == "patch":
                yield PatchRecord(_slot(value), _map(value, "delta"), where)
            elif kind == "gap":
                gap_slot = value.get("slot")
                yield Gap(None if gap_slot is None else str(gap_slot), int(value.get("dropped", 0)),
                          str(value.get("reason", "")), where)  # fmt: skip
            elif kind == "meta":
                return
            else:
                raise BadInput(f"unknown record kind {kind!r}", where)
        except (ValueError, TypeError) as exc:
            if isinstance(exc, BadInput):
                raise
            raise BadInput(str(exc), where) from exc

    def _context(self, value: Any) -> Context:
        if value is not None and not isinstance(value, Mapping):
            raise ValueError("'context' must be a map")
        return slot_context(value, self.start)

    def _finding(self, value: Mapping[str, Any], where: str) -> Iterator[LogItem]:
        self.findings += 1
        if value.get("event") is None:
            return  # a load divergence or a failure on open: nothing to step
        slot = f"{self.name}#{self.findings}"
        try:
            item = input_from_wire(value["event"])
            yield Snapshot(slot, _map(value, "pre_state"), self._context(value.get("context")), where)
        except ValueError as exc:
            raise BadInput(str(exc), where) from exc
        yield Record(slot, item, value.get("seq"), None, None, where)


def _slot(value: Mapping[str, Any]) -> str:
    slot = value.get("slot")
    if slot is None:
        raise ValueError("record has no 'slot'")
    return str(slot)


def _map(value: Mapping[str, Any], key: str) -> WireMap:
    got = value.get(key)
    if not isinstance(got, Mapping):
        raise ValueError(f"'{key}' must be a map")
    return dict(got)


def _outcome(value: Any) -> StepResult | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not isinstance(value.get("delta", {}), Mapping):
        raise ValueError("'outcome' must be a map with a 'delta' map")
    violations = value.get("violations")
    return StepResult(list(value.get("actions", [])), dict(value.get("delta", {})), violations)


class LogWriter:
    """Writes log records (msgpack or JSONL, gzip by file name); a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        raw = self.path.open("wb")
        self._stream: IO[bytes] = (
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if self.path.name.endswith(".gz") else raw  # type: ignore[assignment]
        )
        self._raw = raw
        self._json = ".jsonl" in self.path.name
        self.records = 0

    def write(self, record: Mapping[str, Any]) -> None:
        if self._json:
            self._stream.write(dumps_json(record).encode("utf-8") + b"\n")
        else:
            self._stream.write(packb(record))
        self.records += 1

    def header(self, slots: Mapping[str, Mapping[str, Any]], provenance: Mapping[str, Any]) -> None:
        self.write(log_header(slots, provenance))

    def close(self) -> None:
        self._stream.close()
        if self._stream is not self._raw:
            self._raw.close()

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
