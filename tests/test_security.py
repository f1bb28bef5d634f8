"""Nobody else gets in: the TCP tap listener's token, private files and directories, loopback-only HTTP.

Real processes throughout: a sidecar subprocess, the simulated bot under the tap, raw sockets playing a
hostile local process, and real HTTP requests on loopback.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from conftest import PY_SERVER, ROOT
from shadowdiff_doge.corpusgen import generate
from test_sidecar import ENV, run_bot, shadow_command

from shadowdiff import tap
from shadowdiff.wire.codec import packb

TOKEN = "s3cret-token-0123456789abcdef"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def token_file(tmp_path: Path, text: str = TOKEN, perm: int = 0o600) -> Path:
    path = tmp_path / "token"
    path.write_text(text + "\n")
    path.chmod(perm)
    return path


class Side:
    """A sidecar subprocess on any listen address; its ready line parsed."""

    def __init__(self, tmp_path: Path, listen: str, *extra: str) -> None:
        self.record = tmp_path / "rec" / "logs"
        self.findings = tmp_path / "out" / "findings.jsonl"
        argv = [sys.executable, "-m", "shadowdiff", "sidecar", "--listen", listen,
                "--shadow", shadow_command(tmp_path), "--http", "127.0.0.1:0", "--record", str(self.record),
                "--findings", str(self.findings), *extra]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                                     cwd=ROOT)  # fmt: skip
        assert self.proc.stdout is not None and self.proc.stderr is not None
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read()
        ready = json.loads(line)
        self.address, self.http = ready["listen"], ready["http"]
        self.port = int(self.http.rsplit(":", 1)[1])

    def status(self) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        conn.request("GET", "/api/status")
        body = conn.getresponse().read()
        conn.close()
        loaded: dict[str, Any] = json.loads(body)
        return loaded

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=30)


@contextlib.contextmanager
def side(tmp_path: Path, listen: str, *extra: str) -> Iterator[Side]:
    running = Side(tmp_path, listen, *extra)
    try:
        yield running
    finally:
        if running.proc.poll() is None:
            running.stop()


def settle(s: Side, received: int, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = s.status()
        cov = status["coverage"]
        done = cov["received"] >= received and cov["lag_records"] == 0
        if done or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def hostile_tap(address: str, hello: dict[str, Any]) -> Any:
    """A local process speaking the tap protocol by hand: hello, then a frame of records regardless."""
    _, (host, port) = tap.parse_address(address)
    with socket.create_connection((host, port), timeout=5) as sock:
        tap.send_frame(sock, packb(hello))
        try:
            reply = tap.recv_frame(sock, 1 << 16)
            records = b"".join(packb(r) for r in generate(20, slots=1, seed=5) if r["kind"] != "header")
            tap.send_frame(sock, records)
            time.sleep(0.2)
        except OSError:
            return None
        return msgpack.unpackb(reply, raw=False) if reply else None


def test_a_tcp_sidecar_counts_nothing_from_a_tap_without_the_token(tmp_path: Path) -> None:
    secret = token_file(tmp_path)
    with side(tmp_path, "tcp:127.0.0.1:0", "--token-file", str(secret)) as s:
        assert s.address.startswith("tcp:127.0.0.1:")
        # hostile local processes: no token, a wrong one, a prefix of the right one, a non-string
        for hello in ({}, {"token": "wrong"}, {"token": TOKEN[:-1]}, {"token": 7}):
            reply = hostile_tap(s.address, {"kind": "hello", "protocol": 1, **hello})
            assert reply is None or reply.get("ok") is False
        # the real tap, but without the secret in its environment
        bot = run_bot(s.address, 0.5, 200, seed=3)
        time.sleep(0.5)
        status = s.status()
        assert status["coverage"]["received"] == 0 and status["coverage"]["checked"] == 0
        assert status["taps"]["refused"] >= 5
        assert status["state_machine_shadow"]["transition_checks"] == 0
        # the same bot with the secret: every record counted and checked
        ENV[tap.ENV_TOKEN_FILE] = str(secret)  # run_bot's environment
        try:
            bot = run_bot(s.address, 0.5, 200, seed=3)
        finally:
            del ENV[tap.ENV_TOKEN_FILE]
        status = settle(s, bot["transitions"] + bot["calls"])
        cov = status["coverage"]
        assert cov["received"] == bot["transitions"] + bot["calls"]
        assert cov["checked"] + cov["skipped_by_sidecar"] + cov["unchecked"] == cov["received"]
        # and a hand-made tap with the right token gets in too
        assert hostile_tap(s.address, {"kind": "hello", "protocol": 1, "token": TOKEN}) == {
            "ok": True,
            "snapshots": True,
        }


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--listen", "tcp:127.0.0.1:0"], "a TCP listener needs a secret: --token-file"),
        (["--listen", "tcp:127.0.0.1:0", "--token-file", "PERM644"], "must be 0600: chmod 600"),
        (["--listen", "tcp:127.0.0.1:0", "--token-file", "SHORT"], "at least 16 characters"),
        (["--listen", "tcp:127.0.0.1:0", "--token-file", "/nonexistent/t"], "cannot read the token file"),
        (["--listen", "unix:OPENDIR/tap.sock"], "the socket's directory must be ours and 0700, not 0755"),
    ],
)
def test_unsafe_listener_setups_are_refused_in_one_line(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    loose = token_file(tmp_path, perm=0o644)
    short = tmp_path / "short"
    short.write_text("abc\n")
    short.chmod(0o600)
    opendir = tmp_path / "open"
    opendir.mkdir()
    opendir.chmod(0o755)
    args = [a.replace("PERM644", str(loose)).replace("SHORT", str(short)).replace("OPENDIR", str(opendir))
            for a in args]  # fmt: skip
    argv = [sys.executable, "-m", "shadowdiff", "sidecar", *args, "--shadow", "true"]
    done = subprocess.run(argv, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("shadowdiff: error: ") and expected in line and "Traceback" not in line


def test_recorded_logs_findings_and_the_socket_directory_are_private(tmp_path: Path) -> None:
    sock = tmp_path / "new" / "sockdir" / "tap.sock"
    mutant = " ".join([*PY_SERVER, "--msgpack"])
    with side(tmp_path, f"unix:{sock}", "--shadow", mutant) as s:
        bot = run_bot(s.address, 0.3, 200, seed=2)
        settle(s, bot["transitions"] + bot["calls"])
        assert mode(sock.parent) == 0o700 and mode(sock.parent.parent) == 0o700
        assert mode(sock) == 0o600
        samples = tmp_path / "watch" / "samples.jsonl"  # the gate's evidence, sampled from the sidecar
        argv = [sys.executable, "-m", "shadowdiff", "watch", s.http, "--every", "0.2s", "--duration", "0.4s",
                "--out", str(samples)]  # fmt: skip
        assert subprocess.run(argv, env=ENV, cwd=ROOT, timeout=60, capture_output=True).returncode == 0
        assert mode(samples) == 0o600 and mode(samples.parent) == 0o700
    assert mode(s.record) == 0o700 and mode(s.record.parent) == 0o700
    logs = list(s.record.iterdir())
    assert logs and all(mode(p) == 0o600 for p in logs)
    assert mode(s.findings) == 0o600 and mode(s.findings.parent) == 0o700


def test_replay_findings_and_reports_and_evidence_bundles_are_private(tmp_path: Path, upstream: Path) -> None:
    from conftest import MISBEHAVING

    out = tmp_path / "out" / "deeper"
    mutant = " ".join([*MISBEHAVING, "--mutate-price-at", "2"])
    done = subprocess.run(
        [sys.executable, "-m", "shadowdiff", "replay", str(upstream), "--shadow", mutant, "--findings",
         str(out / "f.jsonl"), "--report", str(out / "r.json"), "--html", str(out / "r.html"), "--junit",
         str(out / "r.xml")], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    for name in ("f.jsonl", "r.json", "r.html", "r.xml"):
        assert mode(out / name) == 0o600, name
    assert mode(out) == 0o700 and mode(out.parent) == 0o700
    samples = tmp_path / "samples.jsonl"
    from test_gate import window  # the gate tests' clean window of samples

    samples.write_text("".join(json.dumps(r) + "\n" for r in window()))
    bundle = tmp_path / "bundle"
    built = subprocess.run(
        [sys.executable, "-m", "shadowdiff", "evidence", "build", str(bundle), "--samples", str(samples),
         "--allow-synthetic"],
        capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert built.returncode in (0, 1, 3), built.stderr
    files = [p for p in bundle.rglob("*")]
    assert files and mode(bundle) == 0o700
    assert all(mode(p) == (0o700 if p.is_dir() else 0o600) for p in files)


def _raw_http(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_http_answers_only_loopback_host_headers_and_never_echoes_the_request(tmp_path: Path) -> None:
    with side(tmp_path, f"unix:{tmp_path / 'tap.sock'}") as s:
        port = s.port
        for host in ("127.0.0.1", f"127.0.0.1:{port}", "localhost", f"LOCALHOST:{port}", f"[::1]:{port}"):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/status", headers={"Host": host})
            response = conn.getresponse()
            assert response.status == 200, host
            assert json.loads(response.read())["mode"] == "sidecar"
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "localhost.evil",
                     "127.0.0.2", "0.0.0.0", "", "127.0.0.1:80:80", "localhost@evil"):  # fmt: skip
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/metrics", headers={"Host": host})
            response = conn.getresponse()
            body = response.read()
            assert response.status == 403, host
            assert (host.encode() not in body) if host else True
        no_host = _raw_http(port, b"GET /api/status HTTP/1.0\r\n\r\n")
        assert no_host.startswith(b"HTTP/1.0 403")
        two_hosts = _raw_http(port, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n"
                              b"Connection: close\r\n\r\n")  # fmt: skip
        assert two_hosts.startswith(b"HTTP/1.0 403")
        marker = b"XyZzY<script>"
        for request in (
            b"GET /" + marker + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            b"GET /x HTTP/9." + marker + b"\r\nHost: localhost\r\n\r\n",
            b"POST" + marker + b" / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            b"DELETE /" + marker + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            b"GET /" + b"A" * 70000 + marker + b" HTTP/1.1\r\n\r\n",
        ):
            answer = _raw_http(port, request)
            assert answer.startswith((b"HTTP/1.", b"400 ")), answer[:80]  # a bad version: a bare status
            assert b"XyZzY" not in answer and b"<script>" not in answer
        assert s.status()["coverage"]["received"] == 0


def test_a_tap_that_connects_and_says_nothing_is_dropped(tmp_path: Path) -> None:
    """A silent connection cannot hold a sidecar thread forever (the hello has a time bound)."""
    with side(tmp_path, f"unix:{tmp_path / 'tap.sock'}") as s:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(tmp_path / "tap.sock"))
            sock.settimeout(30)
            assert sock.recv(16) == b""  # closed by the sidecar after its hello bound
        assert s.status()["taps"]["connected"] == 0
