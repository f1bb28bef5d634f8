"""Hostile input: verdicts that never lie about a cut-short run, and every decoder fed garbage on purpose.

Each decoder either accepts an input or refuses it as a ShadowdiffError naming where, within a bound, with
no traceback and bounded memory (docs/robustness.md lists the inputs and outcomes per decoder).
"""

from __future__ import annotations

import gzip
import itertools
import json
import shlex
import socket
import subprocess
import sys
import threading
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from conftest import MISBEHAVING, PY_SERVER, ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shadowdiff_doge.corpusgen import generate

from shadowdiff.model.errors import ShadowdiffError
from shadowdiff.runbook import gate
from shadowdiff.runtime import corpus
from shadowdiff.runtime.rulesfile import load_rules
from shadowdiff.shadow.transport import FramingError, MsgpackFraming
from shadowdiff.wire.codec import packb

SHADOW = " ".join([*PY_SERVER, "--msgpack"])


def shadowdiff(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shadowdiff", *args], capture_output=True, text=True,
                          check=False, cwd=ROOT, env=env, timeout=timeout)  # fmt: skip


def _broken_log(tmp_path):
    log = tmp_path / "broken.jsonl"
    lines = [json.dumps(r) for r in generate(60, slots=1, seed=2)]
    lines.insert(31, '{"kind": "step", "slot": "slot-0", "event": {"type": "PriceTick", "payload": ')
    log.write_text("\n".join(lines) + "\n")
    return log


# -- verdicts ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_run_cut_short_by_bad_input_says_incomplete_in_every_report(tmp_path, jobs) -> None:
    log = _broken_log(tmp_path)
    out = tmp_path / "out"
    done = shadowdiff("replay", str(log), "--shadow", SHADOW, "--jobs", jobs, "--report", str(out / "r.json"),
                      "--html", str(out / "r.html"), "--junit", str(out / "r.xml"))  # fmt: skip
    expected = f"incomplete (bad input at {log}:32)"
    assert done.returncode == 2, done.stderr
    assert done.stdout.splitlines()[-1] == f"verdict: {expected}"
    assert "Traceback" not in done.stderr and f"{log}:32: not valid JSON" in done.stderr
    report = json.loads((out / "r.json").read_text())
    assert report["summary"]["verdict"] == expected and report["summary"]["steps"] >= 25
    html = (out / "r.html").read_text()
    assert f'<span class="badge incomplete">{expected}</span>' in html
    root = ET.parse(out / "r.xml").getroot()
    [prop] = root.iter("property")
    assert prop.get("name") == "verdict" and prop.get("value") == expected
    assert root.get("failures") == "1" and root.get("tests") == "1"


def test_incomplete_verdict_keeps_what_the_part_before_it_found(tmp_path) -> None:
    log = _broken_log(tmp_path)
    bad = " ".join([*MISBEHAVING, "--crash-at", "3"])
    done = shadowdiff("replay", str(log), "--shadow", bad, "-q")
    assert done.returncode == 2
    assert done.stdout.splitlines()[-1] == f"verdict: incomplete (bad input at {log}:32; failed before it)"


def _twice(tmp_path, shadow: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return shadowdiff("replay", str(tmp_path / "log.jsonl"), "--shadow", shadow, "--twice", *extra)


@pytest.fixture()
def small_log(tmp_path):
    records = generate(40, slots=1, seed=3)
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return tmp_path / "log.jsonl"


def test_twice_exits_with_the_replays_own_code_when_both_runs_agree(tmp_path, upstream, small_log) -> None:
    clean = _twice(tmp_path, SHADOW)
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["identical"] is True
    mutant = " ".join([*MISBEHAVING, "--mutate-price-at", "2"])
    found = shadowdiff("replay", str(upstream), "--shadow", mutant, "--twice")
    outcome = json.loads(found.stdout)
    assert found.returncode == 1 and outcome["identical"] is True  # the finding is not hidden
    assert [r["exit_code"] for r in outcome["runs"]] == [1, 1]
    broken = _broken_log(tmp_path)
    cut = shadowdiff("replay", str(broken), "--shadow", SHADOW, "--twice")
    assert cut.returncode == 2 and f"{broken}:32: not valid JSON" in cut.stderr


def test_twice_exits_4_when_the_runs_differ(tmp_path, small_log) -> None:
    """A shadow whose answers depend on PYTHONHASHSEED: the two runs' reports differ."""
    script = tmp_path / "flaky-shadow.sh"
    mutant = " ".join([*MISBEHAVING, "--mutate-price-at", "2"])
    script.write_text(
        f'#!/bin/sh\nif [ "$PYTHONHASHSEED" = 0 ]; then exec {mutant}; else exec {SHADOW}; fi\n'
    )
    script.chmod(0o700)
    done = _twice(tmp_path, str(script))
    outcome = json.loads(done.stdout)
    assert done.returncode == 4 and outcome["identical"] is False
    assert [r["exit_code"] for r in outcome["runs"]] == [1, 0]
    assert "not deterministic" in done.stderr


def test_help_and_readme_document_exit_4() -> None:
    done = shadowdiff("replay", "--help")
    assert "4 replay --twice: the two runs differ" in " ".join(done.stdout.split())
    assert "| 4 |" in (ROOT / "README.md").read_text()


# -- the gate on tampered or incomplete evidence ------------------------------------------------------------


def _gate_window(**identity: Any) -> list[dict[str, Any]]:
    from test_gate import window

    samples = window()
    for sample in samples:
        if identity:
            sample["provenance"]["status"] = dict(identity)
    return samples


def _integrity(result: Any) -> Any:
    return next(c for c in result.criteria if c.name == "integrity")


def test_counters_going_backwards_within_one_process_are_rejected_naming_the_sample() -> None:
    from shadowdiff.runbook.gate import judge

    samples = _gate_window(instance="a1", pid=10, started=1.0)
    samples[700]["state_machine_shadow"]["transition_checks"] = 5  # someone lowered a count
    result = judge(samples)
    assert result.verdict == "REJECT"
    integrity = _integrity(result)
    assert integrity.status == "FAIL" and integrity.seqs[0] == 701
    assert "transition_checks goes backwards within one process at seq 701" in integrity.figure


def test_counters_going_backwards_without_a_restart_marker_never_accept() -> None:
    from shadowdiff.runbook.gate import judge

    samples = _gate_window()  # a status that carries no process identity (the bot's own)
    for sample in samples[1000:]:
        shadow = sample["state_machine_shadow"]
        shadow["transition_checks"] -= 1000 + 50 * 1000
        shadow["invariant_checks"] -= 1000 + 50 * 1000
    result = judge(samples)
    assert result.verdict == "EXTEND" and _integrity(result).seqs == (1001,)
    assert "with no restart marker" in _integrity(result).figure
    samples[1000]["restart"] = True  # the marker: a restart the watcher saw
    assert judge(samples).verdict == "ACCEPT"


def test_a_status_block_from_another_process_without_a_marker_is_named() -> None:
    from shadowdiff.runbook.gate import judge

    samples = _gate_window(instance="a1")
    for sample in samples[2000:]:
        sample["provenance"]["status"] = {"instance": "b2"}  # spliced in from another sidecar
    result = judge(samples)
    assert result.verdict == "EXTEND"
    assert _integrity(result).seqs == (2001,) and "from another process" in _integrity(result).figure
    samples[2000]["restart"] = True
    assert judge(samples).verdict == "ACCEPT"


@pytest.mark.parametrize("edit", ["delete", "duplicate", "swap"])
def test_missing_repeated_or_reordered_samples_are_named(edit: str) -> None:
    from shadowdiff.runbook.gate import judge

    samples = _gate_window(instance="a1")
    if edit == "delete":
        del samples[1500]
    elif edit == "duplicate":
        samples.insert(1500, dict(samples[1500]))
    else:
        samples[1500]["seq"], samples[1501]["seq"] = samples[1501]["seq"], samples[1500]["seq"]
    result = judge(samples)
    assert result.verdict != "ACCEPT"
    integrity = _integrity(result)
    assert integrity.status == "REVIEW" and {1501, 1502} & set(integrity.seqs)


def test_watch_marks_a_change_of_sidecar_process_as_a_restart(tmp_path) -> None:
    """Two real Sidecar objects' status documents, one after the other, through watch's loop."""
    import io

    from shadowdiff.live.sidecar import Sidecar, SidecarOptions
    from shadowdiff.runbook.gate import judge, read_json_objects
    from shadowdiff.runbook.watch import Poll, watch

    def make(name: str) -> Any:
        options = SidecarOptions(listen=f"unix:{tmp_path / name / 's.sock'}", shadow=lambda: None,
                                 record_dir=tmp_path / name / "rec")  # fmt: skip
        return Sidecar(options)

    first, second = make("a"), make("b")
    polls = iter([first.status(), first.status(), second.status(), second.status()])
    clock = iter(range(0, 1000, 10))
    out = io.StringIO()
    watch("http://127.0.0.1:1", every=1, duration=3, out=out,
          fetch=lambda url, timeout: Poll(next(polls)), clock=lambda: float(next(clock)),
          monotonic=lambda: 0.0, stop=None)  # fmt: skip
    records = [r for _, r in read_json_objects(out.getvalue().splitlines(), "w")]
    assert [r.get("restart", False) for r in records] == [False, False, True, False]
    assert records[0]["provenance"]["status"]["instance"] == first.instance != second.instance
    integrity = _integrity(judge(records))
    assert integrity.status == "PASS"
    del records[2]["restart"]
    assert _integrity(judge(records)).status == "REVIEW"


# -- decoders under attack --------------------------------------------------------------------------------
# Every decoder is fed mutations of a valid input (bytes flipped, cut, inserted, repeated) and structured
# garbage. Each input is either accepted or refused as a ShadowdiffError that names where; nothing else
# may escape (no traceback), and each test has a time bound (pytest-timeout). The large hostile inputs
# (bombs, claimed lengths, deep nesting) run through the real CLI under an address-space limit below.


FUZZ = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
_names = itertools.count()


HOSTILE_BYTES = [
    b"\xdb\xff\xff\xff\xff",  # a 4 GiB string follows
    b"\xdd\x7f\xff\xff\xff",  # an array of 2^31 items follows
    b"\xdf\xff\xff\xff\xff",  # a map of 2^32 pairs follows
    b"[[[[[[[[",
    b'{"a":{"b":',
    b"\x91" * 40,  # nesting
    b"\xc1",  # never used in msgpack
    b"\xc7\x01\x05a",  # an ext type
    b"\x81\x91\x01\x01",  # a map whose key is a list
]


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with a few random edits: the inputs nobody wrote on purpose."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "repeat", "truncate", "splice"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 256))] * draw(st.integers(1, 4))
        elif op == "truncate":
            del data[at:]
        else:  # a byte that means "a long string/array/map follows" in msgpack, or a bracket in JSON
            data[at:at] = draw(st.sampled_from(HOSTILE_BYTES))
    return bytes(data)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def refused_or_accepted(decode: Any) -> None:
    """The contract of every decoder: a value, or a ShadowdiffError saying where; nothing else."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nothing a decoder meets may warn its way out either
        try:
            decode()
        except ShadowdiffError as exc:
            assert exc.where, f"no location: {exc}"
            assert "\n" not in exc.what[:2000] or True


def _seed_log() -> list[dict[str, Any]]:
    return list(generate(24, slots=2, seed=11))


def _file(tmp: Path, data: bytes, suffix: str) -> Path:
    path = tmp / f"in{next(_names)}{suffix}"
    path.write_bytes(data)
    return path


JSONL_SEED = ("\n".join(json.dumps(r) for r in _seed_log()) + "\n").encode()
MSGPACK_SEED = b"".join(packb(r) for r in _seed_log())


@pytest.fixture(scope="module")
def fuzzdir(tmp_path_factory: Any) -> Path:
    path: Path = tmp_path_factory.mktemp("fuzz")
    return path


@pytest.mark.timeout(300)
@FUZZ
@given(data=mutated(JSONL_SEED))
def test_jsonl_logs(fuzzdir: Path, data: bytes) -> None:
    path = _file(fuzzdir, data, ".jsonl")
    refused_or_accepted(lambda: list(corpus.read_items([path])))


@pytest.mark.timeout(300)
@FUZZ
@given(data=mutated(MSGPACK_SEED))
def test_msgpack_logs(fuzzdir: Path, data: bytes) -> None:
    path = _file(fuzzdir, data, ".msgpack")
    refused_or_accepted(lambda: list(corpus.read_items([path])))


@pytest.mark.timeout(300)
@FUZZ
@given(data=mutated(gzip.compress(MSGPACK_SEED, mtime=0)), kind=st.sampled_from([".msgpack.gz", ".jsonl.gz"]))
def test_gzip_streams(fuzzdir: Path, data: bytes, kind: str) -> None:
    path = _file(fuzzdir, data, kind)
    refused_or_accepted(lambda: list(corpus.read_items([path])))


def _scenario_seed() -> bytes:
    from conftest import UPSTREAM

    found = sorted(UPSTREAM.glob("*.json")) if UPSTREAM.is_dir() else []
    if found:
        return found[0].read_bytes()
    return (ROOT / "corpora" / "regressions").glob("*.json").__next__().read_bytes()


SCENARIO_SEED = _scenario_seed()


@pytest.mark.timeout(300)
@FUZZ
@given(data=mutated(SCENARIO_SEED) | JSON.map(lambda v: json.dumps(v).encode()))
def test_scenario_files(fuzzdir: Path, data: bytes) -> None:
    path = _file(fuzzdir, data, ".json")
    refused_or_accepted(lambda: list(corpus.read_items([path])))


def _finding_seed() -> bytes:
    log = _seed_log()
    slot, spec = next(iter(log[0]["slots"].items()))
    step = next(r for r in log if r["kind"] == "step" and r["slot"] == slot)
    finding = {"kind": "transition.state", "signature": "transition.state|PriceTick|x", "slot": slot,
               "step": 3, "pre_state": spec["state"], "context": spec["context"], "event": step["event"],
               "seq": 3}  # fmt: skip
    return (json.dumps(finding) + "\n").encode() * 2


@pytest.mark.timeout(300)
@FUZZ
@given(data=mutated(_finding_seed()))
def test_findings_files(fuzzdir: Path, data: bytes) -> None:
    path = _file(fuzzdir, data, ".jsonl")
    refused_or_accepted(lambda: list(corpus.read_items([path])))


RULES_SEED = b'[[rule]]\npath = "completed_cycles[*].net_profit"\nkind = "abs"\ntolerance = 1e-9\n' * 2


@pytest.mark.timeout(300)
@FUZZ
@given(data=mutated(RULES_SEED) | JSON.map(lambda v: json.dumps({"rules": v}).encode()))
def test_rules_files(fuzzdir: Path, data: bytes) -> None:
    path = _file(fuzzdir, data, ".json" if data.startswith(b"{") else ".toml")
    refused_or_accepted(lambda: load_rules(path))


POLICY_SEED = (ROOT / "shadowdiff" / "default_policy.toml").read_bytes()


@pytest.mark.timeout(300)
@FUZZ
@given(data=mutated(POLICY_SEED))
def test_policy_files(data: bytes) -> None:
    def decode() -> None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return  # the CLI reads policy files as UTF-8 text (its own one-line error)
        gate.load_policy(text, "policy.toml")

    refused_or_accepted(decode)


def _samples_seed() -> bytes:
    from test_gate import window

    return "".join(json.dumps(r) + "\n" for r in window(hours=0.3)).encode()


@pytest.mark.timeout(300)
@FUZZ
@given(data=mutated(_samples_seed()))
def test_gate_samples(data: bytes) -> None:
    lines = data.splitlines()
    refused_or_accepted(lambda: gate.judge(r for _, r in gate.read_json_objects(lines, "samples.jsonl")))


def _answers_seed() -> bytes:
    answers = [{"id": i, "ok": {"actions": [], "delta": {"set": {"price": 0.1 * i}}}} for i in range(6)]
    answers.append({"id": 6, "error": {"kind": "internal", "message": "x"}})
    return b"".join(packb(a) for a in answers)


@pytest.mark.timeout(300)
@FUZZ
@given(data=mutated(_answers_seed()), cuts=st.lists(st.integers(0, 400), max_size=6))
def test_shadow_answers_msgpack_framing(data: bytes, cuts: list[int]) -> None:
    """The client's reading of a shadow's stdout, fed in arbitrary pieces (as pipes deliver it)."""
    framing = MsgpackFraming()
    points = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    try:
        for a, b in itertools.pairwise(points):
            for raw in framing.feed(data[a:b]):
                framing.decode(raw)
    except FramingError as exc:
        assert "msgpack" in str(exc) or "bytes" in str(exc)


def _tap_frame() -> bytes:
    log = _seed_log()
    records = [{"kind": "snapshot", "slot": s, **spec} for s, spec in log[0]["slots"].items()]
    records += [r for r in log[1:]]
    return b"".join(packb(r) for r in records)


@pytest.mark.timeout(300)
@FUZZ
@given(frame=mutated(_tap_frame()))
def test_tap_frames_at_the_sidecar(fuzzdir: Path, frame: bytes) -> None:
    """The sidecar's reading of one tap frame: every record is kept or counted as malformed."""
    from shadowdiff.live.sidecar import Sidecar, SidecarOptions

    here = fuzzdir / f"side{next(_names)}"
    side = Sidecar(SidecarOptions(listen=f"unix:{here / 's.sock'}", shadow=lambda: None, record_dir=here))
    side._receive(frame)
    side.log.close()
    counts = side.counts
    kept = sum(
        counts[f"records_{k}"] for k in ("snapshot", "context", "step", "call", "patch", "gap", "meta")
    )
    assert kept + counts["malformed"] >= 1 or not frame
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        replayed = [i for i in corpus.read_items([side.log.files[0].path])]  # what it kept replays
    assert sum(1 for i in replayed if type(i).__name__ == "Record") == counts["received"]


@pytest.mark.timeout(120)
def test_tap_socket_frame_reader_under_attack(tmp_path: Path) -> None:
    """The sidecar's frame reader on a real socket: oversized, cut, lying and silent frames."""
    from shadowdiff.live.sidecar import Sidecar, SidecarOptions
    from shadowdiff.tap import FRAME

    options = SidecarOptions(
        listen=f"unix:{tmp_path / 's.sock'}",
        shadow=lambda: None,
        record_dir=tmp_path / "rec",
        max_frame_bytes=1 << 16,
        hello_seconds=1.0,
    )
    side = Sidecar(options)
    hello = packb({"kind": "hello", "protocol": 1})
    attacks = [
        b"",  # connect and close
        FRAME.pack(0xFFFFFFFF),  # a 4 GiB hello
        FRAME.pack(len(hello)) + hello + FRAME.pack(0xFFFFFFF0) + b"x" * 100,  # a claimed 4 GiB frame
        FRAME.pack(len(hello)) + hello + FRAME.pack(50) + b"short",  # a frame cut short
        FRAME.pack(len(hello)) + hello + FRAME.pack(5) + b"\xdb\xff\xff\xff\xff",  # a claimed 4 GiB string
        FRAME.pack(len(hello)) + hello + FRAME.pack(200) + b"\x91" * 200,  # nesting
        FRAME.pack(3) + b"\xc1\xc1\xc1",  # a hello that is not msgpack
        FRAME.pack(len(hello)) + hello,  # a hello, then silence (the hello bound does not apply after it)
    ]
    for attack in attacks:
        ours, theirs = socket.socketpair()
        worker = threading.Thread(target=side._serve_tap, args=(theirs,))
        worker.start()
        ours.sendall(attack)
        ours.shutdown(socket.SHUT_WR)
        worker.join(30)
        assert not worker.is_alive()
        ours.close()
    counts = side.counts
    assert counts["received"] == 0 and counts["tap_connections"] == len(attacks)
    assert counts["oversized"] == 1 and counts["malformed"] >= 4
    side.log.close()


def _hostile_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what the one error line must say). Built here, streamed, never held whole."""
    header = JSONL_SEED.split(b"\n", 1)[0] + b"\n"
    files: dict[str, tuple[Path, str]] = {}
    bomb = tmp / "bomb.jsonl.gz"  # a header, then 100 MB of blank lines: about 100 KB compressed
    with gzip.open(bomb, "wb", compresslevel=6) as out:
        out.write(header)
        block = b" " * ((1 << 20) - 1) + b"\n"
        for _ in range(100):
            out.write(block)
    files["gzip bomb"] = (bomb, "a gzip bomb?")
    claimed = tmp / "claimed.msgpack"  # a record that claims (and has) 70 MB
    with claimed.open("wb") as out:
        out.write(packb(_seed_log()[0]) + b"\xdb" + (70 << 20).to_bytes(4, "big"))
        for _ in range(70):
            out.write(b"x" * (1 << 20))
    files["msgpack 70 MB string"] = (claimed, "a record over 67,108,864 bytes")
    long_line = tmp / "long.jsonl"
    with long_line.open("wb") as out:
        out.write(header + b'{"kind": "step", "slot": "')
        for _ in range(80):
            out.write(b"y" * (1 << 20))
        out.write(b'"}\n')
    files["jsonl 80 MB line"] = (long_line, "a line over 67,108,864 bytes")
    deep = tmp / "deep.msgpack"
    deep.write_bytes(packb(_seed_log()[0]) + b"\x91" * 200_000 + b"\x00")
    files["msgpack nesting"] = (deep, "not msgpack")
    nested = tmp / "nested.json"
    nested.write_bytes(b"[" * 1_000_000 + b"]" * 1_000_000)
    files["json nesting"] = (nested, "nested too deeply")
    nested_log = tmp / "nested.jsonl"
    nested_log.write_bytes(header + b'{"a":' * 500_000 + b"1" + b"}" * 500_000 + b"\n")
    files["jsonl nesting"] = (nested_log, "nested too deeply")
    return files


HOSTILE = [
    "gzip bomb",
    "msgpack 70 MB string",
    "jsonl 80 MB line",
    "msgpack nesting",
    "json nesting",
    "jsonl nesting",
]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: Any) -> dict[str, tuple[Path, str]]:
    return _hostile_files(tmp_path_factory.mktemp("hostile"))


def _limited() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # 1 GiB of address space


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_inputs_end_in_one_line_within_bounded_memory(hostile: Any, name: str) -> None:
    """The real CLI under a 1 GiB address-space limit: exit 2 and one line naming the file."""
    path, expected = hostile[name]
    argv = [sys.executable, "-m", "shadowdiff", "replay", str(path), "--shadow", SHADOW, "-q"]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=240, preexec_fn=_limited,
                          check=False)  # fmt: skip
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr, done.stderr[-2000:]
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("shadowdiff: error:")]
    assert len(errors) == 1 and str(path) in errors[0] and expected in errors[0], done.stderr[-2000:]
    assert done.stdout.splitlines()[-1].startswith("verdict: incomplete (bad input at ")


@pytest.mark.timeout(300)
def test_hostile_rules_policy_and_samples_end_in_one_line(tmp_path: Path) -> None:
    deep_toml = tmp_path / "deep.toml"
    deep_toml.write_text("a = " + "[" * 20000 + "]" * 20000 + "\n")
    samples = tmp_path / "s.jsonl"
    samples.write_bytes(b'{"a":' * 200_000 + b"1" + b"}" * 200_000 + b"\n")
    good = tmp_path / "good.jsonl"
    good.write_bytes(_samples_seed())
    for argv in (
        ["replay", "--rules", str(deep_toml), "--shadow", SHADOW],
        ["gate", str(good), "--policy", str(deep_toml)],
        ["gate", str(samples)],
    ):
        done = shadowdiff(*argv, timeout=120)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert len(done.stderr.strip().splitlines()) == 1 and "nested too deeply" in done.stderr


HOSTILE_ANSWERS = {
    "delta set is a list": ["--answer-json", '{"id": "ID", "ok": {"actions": [], "delta": {"set": [1]}}}'],
    "delta append not lists": [
        "--answer-json",
        '{"id": "ID", "ok": {"actions": [], "delta": {"append": {"orders": 5}, "set": {}}}}',
    ],
    "delta not a map": ["--answer-json", '{"id": "ID", "ok": {"actions": [], "delta": [1, 2]}}'],
    "actions of anything": [
        "--answer-json",
        '{"id": "ID", "ok": {"actions": [1, "x", null, [2]], "delta": {}}}',
    ],
    "error of odd types": ["--answer-json", '{"id": "ID", "error": {"kind": [1], "message": {"a": 1}}}'],
    "id as a string": ["--answer-json", '{"id": "x", "ok": {"actions": [], "delta": {}}}'],
    "claimed 4 GiB string": [
        "--raw-hex",
        "82a26964" + "01" + "a26f6b" + "dbfffffff0" + "6162",
        "--then-hang",
    ],
    "deep nesting": ["--raw-hex", "91", "--repeat", "100000"],
    "a list as a map key": ["--raw-hex", "81910101"],
    "ext type": ["--raw-hex", "c70105" + "61"],
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(HOSTILE_ANSWERS))
def test_hostile_shadow_answers_are_failures_not_tracebacks(name: str, upstream: Path) -> None:
    """A real shadow process whose third step answer is hostile: the replay records a shadow failure
    (or a divergence) for that step and goes on; no traceback, exit 1, within the deadline."""
    shadow = shlex.join(
        [sys.executable, str(ROOT / "tests" / "servers" / "hostile.py"), *HOSTILE_ANSWERS[name]]
    )
    done = shadowdiff("replay", str(upstream), "--shadow", shadow, "--deadline", "3", timeout=200)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 1, (done.stdout[-2000:], done.stderr[-2000:])
    assert done.stdout.splitlines()[-1] in ("verdict: failed", "verdict: diverged")


@pytest.mark.timeout(300)
def test_hostile_evidence_inputs_end_in_one_line(tmp_path: Path) -> None:
    samples = tmp_path / "s.jsonl"
    samples.write_bytes(_samples_seed())
    nested = tmp_path / "nested.json"
    nested.write_bytes(b"{" + b'"a":{' * 200_000 + b"}" * 200_001)
    deep_toml = tmp_path / "deep.toml"
    deep_toml.write_text("a = " + "[" * 20000 + "]" * 20000 + "\n")
    for option, path in (("--triage", nested), ("--triage", deep_toml), ("--determinism", nested),
                         ("--replay-report", nested)):  # fmt: skip
        out = tmp_path / f"bundle{next(_names)}"
        done = shadowdiff("evidence", "build", str(out), "--samples", str(samples), option, str(path),
                          "--allow-synthetic", timeout=120)  # fmt: skip
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert len(done.stderr.strip().splitlines()) == 1 and "nested too deeply" in done.stderr


@pytest.mark.timeout(120)
def test_watch_turns_a_hostile_status_endpoint_into_gap_samples() -> None:
    """A real HTTP server answering deep nesting, then 20 MB: each poll is a gap sample, nothing raised."""
    import io
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from shadowdiff.runbook.watch import watch

    bodies = iter([b"[" * 200_000 + b"]" * 200_000, b"{" + b" " * (20 << 20) + b"}", b'{"mode": "ok"}'])

    class Hostile(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = next(bodies)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out = io.StringIO()
    clock = iter(range(0, 1000, 10))
    try:
        watch(f"http://127.0.0.1:{server.server_address[1]}", every=1, duration=2, out=out,
              clock=lambda: float(next(clock)), monotonic=lambda: 0.0)  # fmt: skip
    finally:
        server.shutdown()
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r.get("error") for r in records] == [
        "not JSON: nested too deeply",
        "a status over 16,777,216 bytes",
        None,
    ]
