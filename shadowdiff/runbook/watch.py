"""Sample a bot's (or the sidecar's) ``/api/status`` into JSONL, the runbook's curl-and-jq loop as code.

One line per poll, flushed as soon as it is written, so a watch killed at any moment leaves every sample
it took on disk::

    {"ts": "2026-11-23T12:00:00.000Z", "seq": 1, "source": "http://127.0.0.1:8080/api/status",
     "mode": ..., "top_phase": ..., "state_machine_shadow": {...}, "provenance": {...}}

A poll that fails (refused, timed out, HTTP error, not JSON) becomes a *gap sample*
``{"ts", "seq", "source", "gap": true, "error"}``: the gap is evidence too, so it is written, never raised.

The pure parts (durations, URLs, turning a status document into a sample, finding where an existing file
left off) take no I/O; :func:`watch` is the loop, with the clock, the sleep and the fetch injectable.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import attrs

from shadowdiff.model.errors import BadInput, UsageError
from shadowdiff.runtime.private import open_private

__all__ = [
    "Poll",
    "WatchSummary",
    "fetch_status",
    "format_ts",
    "gap_sample",
    "next_seq",
    "parse_duration",
    "sample_from_status",
    "status_url",
    "watch",
]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(text: str) -> float:
    """Seconds in "60s", "5m", "48h", "1.5s", "2d", "250ms"; a bare number is seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise UsageError(f"not a duration: {text!r} (examples: 60s, 5m, 48h, 1.5s)")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise UsageError(f"duration must be positive: {text!r}")
    return seconds


def status_url(url: str) -> str:
    """The status endpoint for a base URL; a URL already ending in ``/api/status`` is kept."""
    if not re.match(r"^https?://", url):
        raise UsageError(f"not an http(s) URL: {url!r}")
    stripped = url.rstrip("/")
    return stripped if stripped.endswith("/api/status") else stripped + "/api/status"


def format_ts(epoch: float) -> str:
    """UTC, millisecond resolution, ``Z`` suffix: sortable as text and read back by ``fromisoformat``."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def sample_from_status(
    status: Mapping[str, Any], *, ts: str, seq: int, source: str, provenance: Mapping[str, Any]
) -> dict[str, Any]:
    """The runbook's projection of a status document, plus where and when it was read.

    A status document that itself says it is synthetic (a demo or test stand-in) marks the sample
    synthetic whatever the watcher was told, so demo data cannot pass as production evidence.
    """
    own = status.get("provenance")
    prov = dict(provenance)
    if isinstance(own, Mapping) and own.get("synthetic") is True:
        prov["synthetic"] = True
    if isinstance(own, Mapping):  # the status's own process identity: the gate checks it does not change
        identity = {
            k: own[k] for k in ("instance", "pid", "started") if isinstance(own.get(k), str | int | float)
        }
        if identity:
            prov["status"] = identity
    shadow = status.get("state_machine_shadow")
    return {
        "ts": ts,
        "seq": seq,
        "source": source,
        "mode": status.get("mode"),
        "top_phase": status.get("top_phase"),
        "state_machine_shadow": dict(shadow) if isinstance(shadow, Mapping) else None,
        "provenance": prov,
    }


def gap_sample(*, ts: str, seq: int, source: str, error: str) -> dict[str, Any]:
    return {"ts": ts, "seq": seq, "source": source, "gap": True, "error": error}


def next_seq(tail: bytes) -> int:
    """The seq to continue with, given the last bytes of an existing ``--out`` file (0 when empty).

    Only complete lines count: a line cut short by a killed writer has no trailing newline and is
    ignored here (and truncated by :func:`watch` before it appends).
    """
    complete = tail[: tail.rfind(b"\n") + 1]
    for raw in reversed(complete.splitlines()):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("seq"), int):
            return int(record["seq"]) + 1
    return 1 if complete.strip() else 0


MAX_STATUS_BYTES = 16 << 20


@attrs.frozen
class Poll:
    """What one fetch gave: a status document or the reason there is none."""

    status: Mapping[str, Any] | None
    error: str | None = None


def fetch_status(url: str, timeout: float) -> Poll:
    """GET ``url`` and parse a JSON object; every failure becomes ``Poll(error=...)``, none is raised."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(MAX_STATUS_BYTES + 1)  # a hostile endpoint cannot fill our memory
    except urllib.error.HTTPError as exc:
        return Poll(None, f"HTTP {exc.code}: {exc.reason}")
    except urllib.error.URLError as exc:
        return Poll(None, f"unreachable: {exc.reason}")
    except (TimeoutError, OSError) as exc:
        return Poll(None, f"unreachable: {exc}")
    if len(body) > MAX_STATUS_BYTES:
        return Poll(None, f"a status over {MAX_STATUS_BYTES:,} bytes")
    try:
        document = json.loads(body)
    except ValueError as exc:
        return Poll(None, f"not JSON: {exc}")
    except RecursionError:
        return Poll(None, "not JSON: nested too deeply")
    if not isinstance(document, dict):
        return Poll(None, f"not a JSON object: {type(document).__name__}")
    return Poll(document)


@attrs.frozen
class WatchSummary:
    samples: int
    gaps: int
    first_seq: int | None
    last_seq: int | None
    interrupted: bool


def _prepare_append(path: str) -> int:
    """Drop a half-written last line (a killed writer) and return the seq to continue from."""
    if not os.path.exists(path):
        return 1
    with open(path, "rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - 65536))
        tail = handle.read()
        if size > len(tail) and b"\n" not in tail:
            raise BadInput("last line is longer than 64 KiB; not a watch file?", where=path)
        cut = tail.rfind(b"\n") + 1
        if cut < len(tail):
            handle.truncate(size - (len(tail) - cut))
        following = next_seq(tail)
        if _last_line_has_seq(tail[:cut]):
            return max(1, following)
        # The runbook's own loop writes no seq: there the line number is the seq, so continue the count.
        handle.seek(0)
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    return max(1, lines + 1, following)


def _last_line_has_seq(complete: bytes) -> bool:
    for raw in reversed(complete.splitlines()):
        if not raw.strip():
            return False
        try:
            record = json.loads(raw)
        except ValueError:
            return False
        return isinstance(record, dict) and isinstance(record.get("seq"), int)
    return False


def watch(
    url: str,
    *,
    every: float,
    duration: float,
    out: TextIO | None = None,
    out_path: str | None = None,
    stop: threading.Event | None = None,
    synthetic: bool = False,
    timeout: float | None = None,
    fetch: Callable[[str, float], Poll] = fetch_status,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> WatchSummary:
    """Poll ``url``'s status every ``every`` seconds for ``duration`` seconds, one line per poll.

    Polls are on a fixed grid (0, every, 2*every, ... up to and including ``duration``), so a window
    asked for as 48 h spans 48 h; a slow poll skips grid points rather than drifting. Setting ``stop``
    ends the watch after the line in hand. Write to ``out_path`` (appended, seq continued) or ``out``.
    """
    if every <= 0 or duration <= 0:
        raise UsageError("--every and --duration must be positive")
    source = status_url(url)
    stop = stop if stop is not None else threading.Event()
    poll_timeout = timeout if timeout is not None else max(0.5, min(every, 10.0))
    seq = _prepare_append(out_path) if out_path is not None else 1
    provenance = {
        "source": source,
        "host": socket.gethostname(),
        "started": format_ts(clock()),
        "tool": "shadowdiff watch",
        "synthetic": synthetic,
    }
    # the samples are evidence holding the bot's figures: 0600, like recorded logs and findings
    handle = open_private(Path(out_path), "a") if out_path is not None else out
    if handle is None:
        raise UsageError("watch needs out or out_path")
    samples = gaps = 0
    first_seq: int | None = None
    last_identity: Any = None
    start = monotonic()
    tick = 0
    try:
        while True:
            ts = format_ts(clock())
            poll = fetch(source, poll_timeout)
            if poll.status is not None:
                record = sample_from_status(poll.status, ts=ts, seq=seq, source=source, provenance=provenance)
                identity = record["provenance"].get("status")
                if identity is not None and last_identity is not None and identity != last_identity:
                    record["restart"] = True  # the restart marker: this watcher saw the process change
                last_identity = identity if identity is not None else last_identity
                samples += 1
            else:
                record = gap_sample(ts=ts, seq=seq, source=source, error=poll.error or "no status")
                gaps += 1
            handle.write(json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n")
            handle.flush()
            first_seq = seq if first_seq is None else first_seq
            seq += 1
            if stop.is_set():
                break
            elapsed = monotonic() - start
            tick = max(tick + 1, int(elapsed // every) + 1)
            if tick * every > duration + 1e-9:
                break
            if stop.wait(max(0.0, start + tick * every - monotonic())):
                break
    finally:
        if out_path is not None:
            handle.close()
    return WatchSummary(samples, gaps, first_seq, None if first_seq is None else seq - 1, stop.is_set())
