"""Replay across processes: slots are independent, so each worker replays its share of them.

A lockstep (or free) replay keeps nothing between slots but counters, so the slots of a corpus can be
dealt out to N worker processes, each with its own authoritative reducer and its own shadow process.
Every worker reads the whole stream (reading is cheap next to checking) and feeds the engine only the
records of its slots; for the others it only counts steps, so step numbers in every report are those of
the one-process run. The workers' results are merged into one ``ReplayResult`` in step order, their
findings files into one file, and the report is the same as a one-process run's except for timings
(the test suite holds it to that).

Slots go to workers in order of first appearance (slot k to worker k mod N), so a corpus with fewer
slots than workers leaves the rest idle. The split needs nothing but a record's slot, so the same deal
fits one day onto machines under an engine such as Ray or Dask.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import multiprocessing.connection
import os
import signal
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from shadowdiff.core.engine import Replay, ReplayOptions, ReplayResult
from shadowdiff.core.reducer import Reducer
from shadowdiff.model.errors import ShadowdiffError
from shadowdiff.model.records import LogItem, Record
from shadowdiff.runtime.authority import owned
from shadowdiff.runtime.corpus import read_items
from shadowdiff.runtime.private import open_private
from shadowdiff.runtime.signals import stop_on_interrupt
from shadowdiff.runtime.split import SKIPPED, Relay
from shadowdiff.wire.codec import dumps_json

Factory = Callable[[], Reducer]
Progress = Callable[[int], None]


def replay_share(
    corpora: Sequence[str],
    shadow: Reducer,
    authoritative: Reducer | None,
    options: ReplayOptions,
    worker: int,
    workers: int,
    on_finding: Callable[[dict[str, Any]], None] | None = None,
    on_progress: Progress | None = None,
    interrupted_before: Callable[[], bool] = lambda: False,
    split: bool = False,
) -> tuple[ReplayResult, list[dict[str, str]], list[str]]:
    """One worker's part: the result, bad-input errors (the stream stops there for every worker) and
    warnings met on the way. ``interrupted_before``: a Ctrl-C came while the worker was starting.
    ``split``: an in-process authority runs in a process of its own (runtime.split), which reads the
    corpus and steps only this worker's slots."""
    notices: list[str] = []
    with contextlib.ExitStack() as stack:
        shares: Iterable[tuple[bool, LogItem]]
        if split and authoritative is not None:
            relay = stack.enter_context(Relay(corpora, authoritative, worker, workers))
            authoritative = relay.authority
            shares = ((item is not SKIPPED, item) for item in relay.items(notices.append))
        else:
            shares = owned(read_items(corpora, notices=notices.append), worker, workers)
        result, errors = _replay_share(shares, shadow, authoritative, options, on_finding, on_progress,
                                       interrupted_before)  # fmt: skip
    return result, errors, notices


def _replay_share(
    shares: Iterable[tuple[bool, LogItem]],
    shadow: Reducer,
    authoritative: Reducer | None,
    options: ReplayOptions,
    on_finding: Callable[[dict[str, Any]], None] | None,
    on_progress: Progress | None,
    interrupted_before: Callable[[], bool],
) -> tuple[ReplayResult, list[dict[str, str]]]:
    errors: list[dict[str, str]] = []
    replay = Replay(shadow, authoritative, options, on_finding)
    fed = 0
    with stop_on_interrupt(replay.stop, escalate=False):
        if interrupted_before():
            replay.stop()
        try:
            for mine, item in shares:
                if replay.stopped:
                    break
                if mine:
                    replay.feed(item)
                    fed += 1
                    if on_progress is not None and not fed & 1023:
                        on_progress(fed)
                elif isinstance(item, Record):
                    replay.skip_step()
        except ShadowdiffError as exc:
            errors.append({"where": exc.where or "", "message": exc.what})
        result = replay.finish()
    if on_progress is not None:
        on_progress(fed)
    return result, errors


def run_parallel(
    corpora: Sequence[str],
    make_shadow: Factory,
    make_authoritative: Callable[[], Reducer | None],
    options: ReplayOptions,
    workers: int,
    findings: Path | None = None,
    on_progress: Progress | None = None,
    split: bool = False,
) -> tuple[ReplayResult, list[dict[str, str]], list[str]]:
    """Replay with ``workers`` processes; the merged result, errors and warnings. ``split``: each
    worker's in-process authority runs in a process of its own (N authority/checker pairs)."""
    context = multiprocessing.get_context("fork")  # the workers inherit the factories, nothing pickled
    started = time.perf_counter()
    progress = context.Array("q", workers, lock=False)
    with tempfile.TemporaryDirectory(prefix="shadowdiff-jobs-") as scratch:
        parts = [Path(scratch) / f"findings-{k}.jsonl" for k in range(workers)]
        pipes: list[Connection] = []
        procs = []
        for k in range(workers):
            receive, send = context.Pipe(duplex=False)
            proc = context.Process(
                target=_worker,
                args=(send, corpora, make_shadow, make_authoritative, options, k, workers,
                      parts[k] if findings else None, progress, split),
                name=f"shadowdiff-worker-{k}",
                daemon=True,
            )  # fmt: skip
            proc.start()
            send.close()
            pipes.append(receive)
            procs.append(proc)

        def interrupt() -> None:  # the workers stop, drain and report; a `kill -INT` reaches only us
            for proc in procs:
                if proc.pid is not None:
                    with contextlib.suppress(OSError):
                        os.kill(proc.pid, signal.SIGINT)

        try:
            with stop_on_interrupt(interrupt):
                outcomes = _collect(pipes, procs, progress, on_progress)
        finally:
            for proc in procs:
                if proc.is_alive():
                    proc.terminate()
                proc.join()
        if findings is not None:
            _merge_findings(parts, findings)
    results = [o[0] for o in outcomes]
    merged = merge_results(results, options.max_kept)
    merged.elapsed_s = time.perf_counter() - started
    errors = _unique([e for o in outcomes for e in o[1]])
    warned = list(dict.fromkeys(w for o in outcomes for w in o[2]))
    merged.errors.extend(errors)  # as one process adds them: the engine's own first, then bad input
    return merged, errors, warned


def _worker(
    send: Connection,
    corpora: Sequence[str],
    make_shadow: Factory,
    make_authoritative: Callable[[], Reducer | None],
    options: ReplayOptions,
    worker: int,
    workers: int,
    findings: Path | None,
    progress: Any,
    split: bool,
) -> None:
    def on_progress(fed: int) -> None:
        progress[worker] = fed

    early: list[int] = []  # a Ctrl-C while the shadow starts: the share stops before its first record
    signal.signal(signal.SIGINT, lambda signum, frame: early.append(signum))
    try:
        sink = findings.open("w", encoding="utf-8") if findings else None
        try:

            def on_finding(record: dict[str, Any]) -> None:
                assert sink is not None
                sink.write(dumps_json(record) + "\n")

            shadow = make_shadow()
            with shadow:
                outcome = replay_share(corpora, shadow, make_authoritative(), options, worker, workers,
                                       on_finding if sink else None, on_progress,
                                       lambda: bool(early), split)  # fmt: skip
        finally:
            if sink is not None:
                sink.close()
        send.send(("ok", outcome))
    except ShadowdiffError as exc:
        send.send(("error", str(exc)))
    except BaseException as exc:  # reported by the parent in one line; the trace goes to stderr
        traceback.print_exc()
        send.send(("error", f"worker {worker} stopped: {type(exc).__name__}: {exc}"))
    finally:
        send.close()


def _collect(
    pipes: list[Connection], procs: list[Any], progress: Any, on_progress: Progress | None
) -> list[tuple[ReplayResult, list[dict[str, str]], list[str]]]:
    outcomes: dict[int, Any] = {}
    waiting = dict(enumerate(pipes))
    while waiting:
        ready = multiprocessing.connection.wait(list(waiting.values()), timeout=0.2)
        for k, pipe in list(waiting.items()):
            if pipe not in ready:
                continue
            try:
                status, payload = pipe.recv()
            except EOFError:
                procs[k].join()
                raise ShadowdiffError(f"worker {k} died ({_exit(procs[k].exitcode)})") from None
            if status != "ok":
                raise ShadowdiffError(str(payload))
            outcomes[k] = payload
            del waiting[k]
        if on_progress is not None:
            on_progress(sum(progress))
    return [outcomes[k] for k in range(len(pipes))]


def _exit(code: int | None) -> str:
    if code is None:
        return "no exit status"
    return f"signal {-code}" if code < 0 else f"exit code {code}"


def merge_results(results: Sequence[ReplayResult], max_kept: int) -> ReplayResult:
    """One result from the workers' results, as a one-process run would have given it."""
    merged = ReplayResult()
    for r in results:
        merged.divergences.extend(r.divergences)
        merged.failures.extend(r.failures)
        merged.breaches.extend(r.breaches)
        merged.clusters.merge(r.clusters)
        merged.known_clusters.merge(r.known_clusters)
        merged.by_kind.update(r.by_kind)
        merged.failures_by_kind.update(r.failures_by_kind)
        for key, value in r.counts.items():
            if key != "steps":  # every worker counts every step of the stream
                merged.counts[key] += value
        _add(merged.authoritative_checks, r.authoritative_checks)
        _add(merged.shadow_checks, r.shadow_checks)
        merged.slots += r.slots
        merged.shadow_restarts += r.shadow_restarts
        merged.unchecked += r.unchecked
        merged.interrupted = merged.interrupted or r.interrupted
    # every worker counts the stream's steps up to where it stopped; interrupted, they stop at
    # different places, and only the steps before the earliest are covered for every slot
    positions = [r.counts["steps"] for r in results]
    merged.counts["steps"] = (min if merged.interrupted else max)(positions, default=0)
    merged.errors = _unique([e for r in results for e in r.errors])
    merged.divergences.sort(key=lambda d: (d.step, d.slot, d.kind))
    merged.failures.sort(key=lambda f: (f.step, f.slot))
    merged.breaches.sort(key=lambda b: (b["step"], b["slot"]))
    del merged.divergences[max_kept:], merged.failures[max_kept:], merged.breaches[max_kept:]
    return merged


def _add(into: dict[str, int], more: dict[str, int]) -> None:
    for key, value in more.items():
        into[key] = into.get(key, 0) + value


def _unique(errors: list[dict[str, str]]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for error in errors:
        if error not in out:
            out.append(error)
    return out


def _merge_findings(parts: list[Path], findings: Path) -> None:
    """The workers' findings appended to the user's file in step order (as one process writes them)."""
    lines: list[tuple[int, int, str]] = []
    for k, part in enumerate(parts):
        with contextlib.suppress(FileNotFoundError), part.open(encoding="utf-8") as f:
            for n, line in enumerate(f):
                step = json.loads(line).get("step", 0)
                lines.append((int(step) if isinstance(step, int) else 0, k * (1 << 40) + n, line))
    lines.sort()
    with open_private(findings, "a") as out:
        out.writelines(line for _, _, line in lines)
