"""A child process on three non-blocking pipes, and the framings spoken over them.

The process layer knows bytes, deadlines and exits; the framings turn bytes into objects
(msgpack back to back, or JSON lines); the protocol on top lives in ``client.py``. Writes and reads
happen on the caller's thread without blocking: requests are buffered and written whenever the pipe
takes them, answers are read whenever they are there, so both sides never stall on full pipes.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import select
import shlex
import signal
import subprocess
import time
from collections.abc import Sequence
from typing import Any

import msgpack

from shadowdiff.wire.codec import make_unpacker

READ_CHUNK = 1 << 16
WAIT_SLICE = 0.25
WRITE_THRESHOLD = 1 << 15
MAX_ANSWER_BYTES = 64 << 20  # one answer from the shadow (any claimed length past it is refused)


class FramingError(Exception):
    """Bytes on the shadow's stdout that are not a well-formed stream of protocol objects."""


class MsgpackFraming:
    """Splits the stream into the raw bytes of each object without decoding it (msgpack's ``skip``
    walks an object's structure without building it): a caller that expects a known answer compares
    bytes and decodes only what differs. ``decode`` turns one raw object into its value."""

    name = "msgpack"

    def __init__(self) -> None:
        self._unpacker = make_unpacker(MAX_ANSWER_BYTES)
        self._packer = msgpack.Packer(use_bin_type=True)
        self._pending = b""  # bytes of an object not yet complete
        self._boundary = 0  # stream offset where they start (tell() moves into a partial object)
        self.broken: FramingError | None = None

    def encode(self, value: Any) -> bytes:
        out: bytes = self._packer.pack(value)
        return out

    def feed(self, data: bytes) -> list[bytes]:
        """The raw objects ``data`` completes; the objects before a bad byte are returned first, and the
        error is raised by the next call (answers that arrived whole are never lost to garbage)."""
        if self.broken is not None:
            raise self.broken
        unpacker = self._unpacker
        base = self._boundary
        buf = self._pending + data if self._pending else data
        try:
            unpacker.feed(data)
        except msgpack.BufferFull:
            self.broken = FramingError(f"an answer over {MAX_ANSWER_BYTES:,} bytes at byte {base}")
            raise self.broken from None
        out: list[bytes] = []
        start = 0
        try:
            while True:
                unpacker.skip()
                end = unpacker.tell() - base
                out.append(buf[start:end])
                start = end
        except msgpack.OutOfData:
            pass
        except (msgpack.exceptions.ExtraData, ValueError, msgpack.exceptions.StackError) as exc:
            detail = f" ({exc})" if str(exc) else ""
            self.broken = FramingError(f"stdout is not msgpack at byte {base + start}{detail}")
            if not out:
                raise self.broken from exc
        self._pending = buf[start:]
        self._boundary = base + start
        return out

    @staticmethod
    def decode(raw: bytes) -> Any:
        try:
            return msgpack.unpackb(raw, raw=False, strict_map_key=False)
        except (ValueError, TypeError, msgpack.exceptions.ExtraData, msgpack.exceptions.StackError) as exc:
            raise FramingError(f"stdout is not msgpack: {exc}") from exc


class JsonLinesFraming:
    name = "jsonl"

    def __init__(self) -> None:
        self._partial = b""
        self.broken: FramingError | None = None

    def encode(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode() + b"\n"

    @staticmethod
    def decode(raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise FramingError(f"stdout line is not JSON ({exc})") from exc

    def feed(self, data: bytes) -> list[Any]:
        if self.broken is not None:
            raise self.broken
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > MAX_ANSWER_BYTES:
            self.broken = FramingError(f"a stdout line over {MAX_ANSWER_BYTES:,} bytes")
            raise self.broken
        out = []
        for line in lines:
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except (ValueError, RecursionError) as exc:
                shown = line[:80].decode("utf-8", "replace")
                self.broken = FramingError(f"stdout line is not JSON ({exc}): {shown!r}")
                if not out:
                    raise self.broken from exc
                break
        return out


def make_framing(codec: str) -> MsgpackFraming | JsonLinesFraming:
    if codec == "msgpack":
        return MsgpackFraming()
    if codec == "jsonl":
        return JsonLinesFraming()
    raise ValueError(f"unknown codec {codec!r} (msgpack or jsonl)")


class ProcessGone(Exception):
    """The child closed its stdout or exited."""

    def __init__(self, exit_code: int | None) -> None:
        self.exit_code = exit_code
        super().__init__(f"exited with {describe_exit(exit_code)}")


def describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


class Process:
    """One running child with non-blocking stdin/stdout/stderr, killed and reaped on ``stop``."""

    def __init__(self, argv: Sequence[str] | str, codec: str, stderr_lines: int = 20) -> None:
        self.argv = shlex.split(argv) if isinstance(argv, str) else list(argv)
        self.codec = codec
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=stderr_lines)
        self._stderr_partial = b""
        self._out = bytearray()
        self._receives = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.hurry = False
        """Set (from a signal handler, say) to make every wait for answers return within a slice."""

    def start(self) -> None:
        self.framing = make_framing(self.codec)
        self._out.clear()
        self.stderr_tail.clear()
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            close_fds=True,
            start_new_session=True,  # a Ctrl-C at the terminal is ours to handle: we stop the child
        )
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self._stdin = self.proc.stdin.fileno()
        self._stdout = self.proc.stdout.fileno()
        self._stderr = self.proc.stderr.fileno()
        for fd in (self._stdin, self._stdout, self._stderr):
            os.set_blocking(fd, False)
        self._poller = select.poll()
        self._poller.register(self._stdout, select.POLLIN)
        self._poller.register(self._stderr, select.POLLIN)
        self._stdin_registered = False
        self._stdout_open = True

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send_raw(self, data: bytes) -> None:
        """Bytes already encoded in this process's framing."""
        self._out += data
        if len(self._out) >= WRITE_THRESHOLD:
            self._write()

    def send(self, value: Any) -> None:
        self._out += self.framing.encode(value)
        if len(self._out) >= WRITE_THRESHOLD:
            self._write()

    @property
    def buffered(self) -> int:
        return len(self._out)

    def flush(self) -> None:
        if self._out and self.proc is not None:
            self._write()

    def _write(self) -> None:
        try:
            written = os.write(self._stdin, self._out)
        except BlockingIOError:
            written = 0
        except BrokenPipeError as exc:
            raise ProcessGone(self._exit_code()) from exc
        if written:
            del self._out[:written]
        if self._out and not self._stdin_registered:
            self._poller.register(self._stdin, select.POLLOUT)
            self._stdin_registered = True
        elif not self._out and self._stdin_registered:
            self._poller.unregister(self._stdin)
            self._stdin_registered = False

    def receive(self, timeout: float) -> list[Any]:
        """Objects that arrived, waiting up to ``timeout`` seconds for the first (0: do not wait)."""
        got = self._read_stdout()
        if got or timeout <= 0:
            self._receives += 1
            if not self._receives & 63:  # keep the shadow's stderr pipe from filling, without a read per call
                self._drain_stderr()
            return got
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            if self.hurry:
                return []
            # waits in slices, so that an interrupt set meanwhile cuts a long wait short
            events = self._poller.poll(min(remaining, WAIT_SLICE) * 1000)
            for fd, _mask in events:
                if fd == self._stdin:
                    self._write()
                elif fd == self._stderr:
                    self._drain_stderr()
            got = self._read_stdout()
            if got:
                return got

    def _read_stdout(self) -> list[Any]:
        objects: list[Any] = []
        while True:
            try:
                data = os.read(self._stdout, READ_CHUNK)
            except BlockingIOError:
                return objects
            if not data:
                self._drain_stderr()
                if objects:
                    return objects
                raise ProcessGone(self._exit_code())
            objects.extend(self.framing.feed(data))
            if len(data) < READ_CHUNK:
                return objects

    def _drain_stderr(self) -> None:
        while True:
            try:
                data = os.read(self._stderr, READ_CHUNK)
            except (BlockingIOError, ValueError, OSError):
                return
            if not data:
                return
            lines = (self._stderr_partial + data).split(b"\n")
            self._stderr_partial = lines.pop()[-4096:]
            for line in lines:
                if line.strip():
                    self.stderr_tail.append(line.decode("utf-8", "replace")[:500])

    def _exit_code(self) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return None

    def tail(self) -> tuple[str, ...]:
        self._drain_stderr()
        return tuple(self.stderr_tail)

    def stop(self, grace: float = 1.0) -> int | None:
        """Close stdin (a polite EOF), wait ``grace`` seconds, then kill; always reap."""
        proc = self.proc
        if proc is None:
            return None
        self.proc = None
        pending, self._out = bytes(self._out), bytearray()
        code: int | None = None
        try:
            if grace > 0 and proc.poll() is None:
                try:  # what fits in the pipe, never a blocking write: a hung child reads nothing
                    if pending:
                        os.write(self._stdin, pending)
                except OSError:
                    pass
                proc.stdin.close()  # type: ignore[union-attr]
                with contextlib.suppress(subprocess.TimeoutExpired):
                    code = proc.wait(timeout=grace)
            if proc.poll() is None:
                proc.kill()
            code = proc.wait()
        finally:
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                try:
                    if stream is not None:
                        stream.close()
                except OSError:
                    pass
        return code
