"""The authority's half of a two-process replay: read the corpus, run the reducer, stream the outcomes.

The child process of ``shadowdiff.runtime.split``. It reads the corpus, runs the authoritative reducer
on every step and writes recorded-outcome records (docs/formats.md, "Event logs": the records a live
tap makes, each step carrying ``outcome``: the authority's delta by identity, its actions and
violations) to a pipe, msgpack back to back, in batches. The checking process replays them against the
shadow as ``--authoritative recorded`` does. The pipe is an OS pipe: when the checker falls behind,
the writes block, so the child never runs more than the pipe's buffer and one batch ahead.

A few record kinds beyond the log's carry what a one-process run would have seen at that point of the
stream, so both modes report byte for byte the same:

- ``snapshot`` has ``loaded``, the authority's reading of the state (its ``from_dict``, back to wire
  form: the engine's mirror) beside ``state`` as the corpus holds it, and ``raw``;
- ``fault`` (``what``, ``where``, ``item``): the authority failed on that item (its ``from_dict`` or its
  reducer raised): the checker raises it where the in-process authority would have;
- ``warning`` (``message``): the reader warned (a torn last record) while reaching the next item;
- ``error`` (``what``, ``where``): the corpus is bad here (the reader raised): the stream ends;
- ``skip``: a step of a slot another ``--jobs`` worker checks (counted, not sent);
- ``end``: the stream is complete.

A record for a slot the authority never opened carries ``where``, so the checker's engine refuses it
with its own words. Nothing here prints: the checker reports.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import msgpack

from shadowdiff.core.reducer import Reducer, Step
from shadowdiff.model.errors import ShadowdiffError
from shadowdiff.model.records import ContextChange, Gap, LogItem, PatchRecord, Record, Snapshot
from shadowdiff.model.values import Call, Context, StepResult
from shadowdiff.runtime.corpus import read_items

BATCH_BYTES = 1 << 16
"""A batch is written once it holds this many bytes (one write: fewer wake-ups on both sides)."""
PIPE_BYTES = 1 << 20
"""The pipe's buffer, asked of the kernel (it may give less): how far the authority may run ahead."""


def owned(items: Iterable[LogItem], worker: int, workers: int) -> Iterator[tuple[bool, LogItem]]:
    """Each item with whether it belongs to ``worker``: slot k (in order of first appearance) belongs
    to worker k mod ``workers``; items without a slot (a tap's global gap count) to worker 0."""
    owner: dict[str, int] = {}
    for item in items:
        slot = getattr(item, "slot", None)
        if slot is None:
            yield worker == 0, item
            continue
        who = owner.get(slot)
        if who is None:
            who = owner[slot] = len(owner) % workers
        yield who == worker, item


class _Writer:
    """Packs records into one buffer and writes it to ``fd`` a batch at a time (blocking: back-pressure)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.packer = msgpack.Packer(use_bin_type=True, autoreset=False)

    def write(self, record: Any) -> None:
        self.packer.pack(record)
        if self.packer.getbuffer().nbytes >= BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        view = self.packer.getbuffer()
        done = 0
        while done < len(view):
            done += os.write(self.fd, view[done:])
        view.release()
        self.packer.reset()


def stream(
    corpora: Sequence[str],
    authority: Reducer,
    write: Callable[[Any], None],
    worker: int = 0,
    workers: int = 1,
) -> None:
    """Read ``corpora``, step ``authority`` through them, and ``write`` one record per item, as the
    engine would meet them (checks in the engine's order: the slot first, then the authority)."""
    contexts: dict[str, Context] = {}
    told: list[str] = []  # torn records the reader told of while reaching the next item

    def tell() -> None:
        for message in told:  # a one-process run tells of them at the same point
            write({"kind": "warning", "message": message})
        told.clear()

    try:
        for mine, item in owned(read_items(corpora, notices=told.append), worker, workers):
            tell()
            if mine:
                write(_record(item, authority, contexts))
            elif isinstance(item, Record):
                write(_SKIP)
    except ShadowdiffError as exc:
        tell()
        write({"kind": "error", "what": exc.what, "where": exc.where})
        return
    tell()
    write(_END)


_SKIP = {"kind": "skip"}
_END = {"kind": "end"}


def _record(item: LogItem, authority: Reducer, contexts: dict[str, Context]) -> dict[str, Any]:
    if isinstance(item, Record):
        context = contexts.get(item.slot)
        if context is None:
            return _unknown(item)
        if item.context:
            context = contexts[item.slot] = context.updated(item.context)
        out: dict[str, Any] = {"kind": "call" if isinstance(item.input, Call) else "step",
                               "slot": item.slot, "seq": item.seq, "input": item.input.to_wire()}  # fmt: skip
        if item.context:
            out["context"] = item.context
        try:
            result: StepResult = authority.step(Step(item.slot, item.input, context, True))
        except ShadowdiffError as exc:  # as Replay._authoritative_step words it
            return _fault(out, exc.what, item.where if exc.where is None else exc.where)
        except Exception as exc:  # the reducer itself raised (DOGE_REDUCER.md 9): bad input
            return _fault(out, _raised(exc), item.where)
        out["outcome"] = {"actions": result.actions, "delta": result.delta, "violations": result.violations}
        return out
    if isinstance(item, Snapshot):
        out = {"kind": "snapshot", "slot": item.slot, "state": item.state, "context": item.context.to_wire(),
               "raw": item.raw}  # fmt: skip
        try:
            authority.open(item.slot, item.state)
            out["loaded"] = authority.get(item.slot)
        except ShadowdiffError as exc:
            return _fault(out, exc.what, exc.where)
        except Exception as exc:
            return _fault(out, _raised(exc), item.where or None)
        contexts[item.slot] = item.context
        return out
    if isinstance(item, PatchRecord):
        if item.slot not in contexts:
            return _unknown(item)
        out = {"kind": "patch", "slot": item.slot, "delta": item.delta}
        try:
            authority.patch(item.slot, item.delta)
        except ShadowdiffError as exc:
            return _fault(out, exc.what, exc.where)
        except Exception as exc:
            return _fault(out, _raised(exc), item.where or None)
        return out
    if isinstance(item, ContextChange):
        context = contexts.get(item.slot)
        if context is None:
            return _unknown(item)
        contexts[item.slot] = context.updated(item.changes)
        return {"kind": "context", "slot": item.slot, "context": item.changes}
    assert isinstance(item, Gap)
    return {"kind": "gap", "slot": item.slot, "dropped": item.dropped, "reason": item.reason}


def _raised(exc: Exception) -> str:
    return f"the authoritative reducer raised {type(exc).__name__}: {exc}"


def _fault(out: dict[str, Any], what: str, where: str | None) -> dict[str, Any]:
    return {"kind": "fault", "what": what, "where": where, "item": out}


def _unknown(item: Record | PatchRecord | ContextChange) -> dict[str, Any]:
    """An item of a slot never opened: the checker's engine refuses it (naming ``where``)."""
    if isinstance(item, Record):
        return {"kind": "step", "slot": item.slot, "seq": item.seq, "input": item.input.to_wire(),
                "where": item.where}  # fmt: skip
    if isinstance(item, PatchRecord):
        return {"kind": "patch", "slot": item.slot, "delta": item.delta, "where": item.where}
    return {"kind": "context", "slot": item.slot, "context": item.changes, "where": item.where}


def die_with(parent: int) -> None:
    """Linux: the kernel kills this process when ``parent`` ends (however it ends); elsewhere the
    pipe does (the next write fails once the reader is gone)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent ended before the line above
        os._exit(1)


def child(
    fd: int,
    parent: int,
    corpora: Sequence[str],
    authority: Reducer,
    worker: int = 0,
    workers: int = 1,
) -> None:
    """The child process's body: ``fd`` is the pipe's write end. Every outcome, even a crash of ours,
    ends the stream with a record the checker can report in one line."""
    die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the checker takes Ctrl-C, drains and ends us
    writer = _Writer(fd)
    try:
        try:
            stream(corpora, authority, writer.write, worker, workers)
        except ShadowdiffError as exc:
            writer.write({"kind": "error", "what": exc.what, "where": exc.where})
        except Exception as exc:
            writer.write({"kind": "error", "what": f"the authority process failed: {type(exc).__name__}: "
                          f"{exc}", "where": None})  # fmt: skip
        writer.flush()
    except BrokenPipeError:  # the checker stopped reading (it has what it needs, or it ended)
        pass
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
        sys.stdout.flush()
