"""Offline replay on two cores: the authority records in one process, this one checks.

``relay`` starts the authority's process (``shadowdiff.runtime.authority``: it reads the corpus, runs the
in-process reducer and streams recorded-outcome records over a bounded pipe) and hands back what a
one-process replay takes: an authoritative reducer and the corpus's items. The reducer (``Relayed``)
only answers with what the stream carried for the item just read (the authority's normalised state on
a snapshot, its outcome on a step, its failure where it failed), so the engine runs exactly as it does
with the reducer in process, and the reports, findings files and exit codes are the same byte for byte
(tests/test_split.py holds both modes to that). The checker's work per step is then what
``--authoritative recorded`` costs, while the reducer runs on the other core.

The child dies with us (the kernel's parent-death signal on Linux; a closed pipe anywhere), ignores
the terminal's Ctrl-C (we drain and end it) and turns its own failures into records: a reducer that
raises is the one-process run's bad-input line at the same record; a child that dies is one line too.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from shadowdiff.core.reducer import Reducer, Step, UnsupportedOp
from shadowdiff.model.errors import ShadowdiffError
from shadowdiff.model.records import ContextChange, Gap, LogItem, PatchRecord, Record, Snapshot
from shadowdiff.model.values import Call, Context, Event, Outcome, StepResult, WireMap, input_from_wire
from shadowdiff.runtime.authority import PIPE_BYTES, child
from shadowdiff.runtime.corpus import Notices
from shadowdiff.wire.codec import make_unpacker

TWO_PROCESS_DEFAULT = True
"""Whether ``replay`` splits by default. Measured with bench/throughput.py on two otherwise idle cores
(ratios in one run, docs/benchmarks.md): two processes 29,839 events/s against one process reading the
same file 25,707 (1.16x). With both cores busy with other work the second process finds no core of its
own and the stream's encoding and decoding make it slower (0.15x against 0.23x the reducer alone):
``--one-process`` is the choice on a machine that has no core to spare."""
READ_BYTES = 1 << 18
F_SETPIPE_SZ = 1031  # Linux fcntl: a pipe's buffer size


class Relayed(Reducer):
    """The authoritative side of a checking process: each call answers with what the authority's
    process computed for the item being fed (set by ``relay`` just before the engine sees it)."""

    name = "relayed authority"

    def __init__(self) -> None:
        super().__init__()
        self.loaded: WireMap = {}
        self.outcome: StepResult | None = None
        self.fault: ShadowdiffError | None = None

    def _failed(self) -> None:
        if self.fault is not None:
            fault, self.fault = self.fault, None
            raise fault

    def open(self, slot: str, state: WireMap) -> None:
        self._failed()

    def get(self, slot: str) -> WireMap:
        return self.loaded

    def step(self, request: Step) -> StepResult:
        self._failed()
        assert self.outcome is not None
        return self.outcome

    def patch(self, slot: str, delta: WireMap) -> None:
        self._failed()

    def transition(
        self, state: WireMap, event: Event, context: Context, with_invariants: bool = False
    ) -> Outcome:
        raise UnsupportedOp("the relayed authority answers only the steps of its stream")

    def check_invariants(self, state: WireMap) -> list[str]:
        raise UnsupportedOp("the relayed authority answers only the steps of its stream")


SKIPPED = Record("", Event("", {}))
"""What ``relay`` yields for a step of a slot another ``--jobs`` worker checks."""


class Relay:
    """The authority's process and the items read back from it; a context manager (the child is
    ended, whatever happens, on leaving)."""

    def __init__(
        self,
        corpora: Sequence[str],
        authority: Reducer,
        worker: int = 0,
        workers: int = 1,
    ) -> None:
        self.authority = Relayed()
        read, write = os.pipe()
        with contextlib.suppress(OSError):
            fcntl.fcntl(write, F_SETPIPE_SZ, PIPE_BYTES)
        sys.stdout.flush()  # a forked child must not write our buffered output a second time
        sys.stderr.flush()
        parent = os.getpid()
        # a plain fork (a --jobs worker is a daemonic multiprocessing child, which may not start
        # another): the child inherits the reducer and the domain, nothing pickled
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child's side; its records are what the tests check)
            try:
                os.close(read)
                child(write, parent, list(corpora), authority, worker, workers)
            finally:
                os._exit(0)
        self.pid = pid
        self.exitcode: int | None = None
        os.close(write)
        self.fd = read

    def items(self, notices: Notices | None = None) -> Iterator[LogItem]:
        """The corpus's items, as ``read_items`` gives them (raising its ``BadInput`` where it would,
        telling ``notices`` of torn records where it would); ``SKIPPED`` for another worker's steps."""
        unpacker = make_unpacker()
        relayed = self.authority
        while True:
            chunk = os.read(self.fd, READ_BYTES)
            if not chunk:
                self._wait(5.0)
                raise ShadowdiffError(f"the authority's process ended early ({_exit(self.exitcode)})")
            unpacker.feed(chunk)
            for record in unpacker:
                kind = record["kind"]
                if kind == "step" or kind == "call":
                    if "where" in record:
                        yield _record(record)
                        continue
                    outcome = record["outcome"]
                    relayed.outcome = StepResult(outcome["actions"], outcome["delta"], outcome["violations"])
                    wire = record["input"]  # checked by the authority's reader already
                    item = (
                        Event(wire["type"], wire["payload"])
                        if kind == "step"
                        else Call(wire["call"], wire["args"])
                    )
                    yield Record(record["slot"], item, record["seq"], record.get("context"))
                elif kind == "skip":
                    yield SKIPPED
                elif kind == "snapshot":
                    relayed.loaded = record["loaded"]
                    yield _snapshot(record)
                elif kind == "patch" or kind == "context" or kind == "gap":
                    yield _record(record)
                elif kind == "fault":
                    relayed.fault = ShadowdiffError(record["what"], record["where"])
                    item = record["item"]
                    yield _snapshot(item) if item["kind"] == "snapshot" else _record(item)
                elif kind == "warning":
                    if notices is not None:
                        notices(record["message"])
                elif kind == "error":
                    raise ShadowdiffError(record["what"], record["where"])
                else:  # "end"
                    return

    def _wait(self, seconds: float) -> bool:
        """Reap the child if it ends within ``seconds``; True once it has."""
        deadline = time.monotonic() + seconds
        while self.exitcode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.exitcode = -1
                break
            if pid:
                self.exitcode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)  # a child blocked writing gets EPIPE and leaves
        if not self._wait(2.0):
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
            self._wait(60.0)

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _snapshot(record: Mapping[str, Any]) -> Snapshot:
    return Snapshot(record["slot"], record["state"], Context.from_wire(record["context"]), "", record["raw"])


def _record(record: Mapping[str, Any]) -> LogItem:
    kind, where = record["kind"], record.get("where", "")
    if kind == "step" or kind == "call":
        return Record(record["slot"], input_from_wire(record["input"]), record["seq"], record.get("context"),
                      None, where)  # fmt: skip
    if kind == "patch":
        return PatchRecord(record["slot"], record["delta"], where)
    if kind == "context":
        return ContextChange(record["slot"], record["context"], where)
    return Gap(record["slot"], record["dropped"], record["reason"])


def _exit(code: int | None) -> str:
    if code is None:
        return "no exit status"
    return f"signal {-code}" if code < 0 else f"exit code {code}"


@contextlib.contextmanager
def relay(
    corpora: Sequence[str], authority: Reducer | None, enabled: bool = True
) -> Iterator[tuple[Reducer | None, Callable[[Notices], Iterator[LogItem]] | None]]:
    """``(authority, items)`` for a replay: with ``enabled``, the relayed authority and the items read
    back from the process that runs ``authority`` (a fork of this one: it runs the very reducer made
    here); otherwise ``(authority, None)``: read the corpus here. A recorded authority (None) always
    runs in this process: there is nothing to split."""
    if not enabled or authority is None:
        yield authority, None
        return
    with Relay(corpora, authority) as child_side:
        yield child_side.authority, child_side.items
