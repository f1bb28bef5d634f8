"""Issue 18: the real port as it is, and the bot's own files as they are."""

from __future__ import annotations

import ast
import gzip
import json
import math
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from shadowdiff_doge import simbot
from shadowdiff_doge.inprocess import load_module
from test_gate import shadow_block

from shadowdiff.cli import runbook as runbook_cli
from shadowdiff.runbook.gate import judge, read_samples
from shadowdiff.runbook.watch import _prepare_append, format_ts
from shadowdiff.shadow.transport import JsonLinesFraming
from shadowdiff.wire.codec import dumps_json

START = 1_790_000_000.0
RUNBOOK_JQ = "{ts, mode, top_phase, state_machine_shadow}"


def bot_status(minute: int, *, shadow: bool = True) -> dict[str, Any]:
    """A bot's whole ``/api/status`` document, with keys the runbook's filter drops."""
    status: dict[str, Any] = {
        "ts": format_ts(START + minute * 60),
        "mode": "live",
        "top_phase": "S0",
        "pair": "XDGUSD",
        "slots": {"0": {"phase": "S0"}},
        "uptime_sec": minute * 60,
    }
    if shadow:
        status["state_machine_shadow"] = shadow_block(minute)
    return status


def runbook_filter(document: Any) -> str:
    """What ``curl -s URL | jq -c FILTER`` prints for one document (the real jq when there is one)."""
    text = json.dumps(document)
    if shutil.which("jq"):
        return subprocess.run(
            ["jq", "-c", RUNBOOK_JQ], input=text, capture_output=True, text=True, check=True
        ).stdout
    picked = {k: document.get(k) for k in ("ts", "mode", "top_phase", "state_machine_shadow")}
    return json.dumps(picked, separators=(",", ":")) + "\n"


def runbook_window(path: Path, hours: int = 48) -> dict[str, int]:
    """A window as the runbook's 48-hour loop leaves it: no seq; three kinds of empty poll."""
    lines: list[str] = []
    # Batch the real jq over the whole window (one process), as jq reads a stream of documents.
    documents = [bot_status(minute, shadow=minute != hours * 15) for minute in range(hours * 60 + 1)]
    if shutil.which("jq"):
        out = subprocess.run(
            ["jq", "-c", RUNBOOK_JQ],
            input="\n".join(json.dumps(d) for d in documents),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        lines = out.splitlines(keepends=True)
    else:
        lines = [runbook_filter(d) for d in documents]
    lines[hours * 6] = "\n"  # curl got nothing and the loop still wrote its line
    lines[hours * 6 + 1] = "null\n"  # jq on an empty body with `-n`-style loops
    path.write_text("".join(lines))
    return {"lines": len(lines), "gaps": 3}


def group() -> click.Group:
    main = click.Group("shadowdiff")
    runbook_cli.register(main)
    return main


def test_runbook_jq_lines_have_no_seq_and_are_read_with_line_numbers(tmp_path: Path) -> None:
    line = runbook_filter(bot_status(3))
    assert set(json.loads(line)) == {"ts", "mode", "top_phase", "state_machine_shadow"}
    path = tmp_path / "w.jsonl"
    path.write_text(line + "\nnull\n" + runbook_filter(bot_status(5, shadow=False)))
    records = [record for _, record in read_samples(path.read_text().splitlines(True), str(path))]
    assert [r["seq"] for r in records] == [1, 2, 3, 4]
    assert [bool(r.get("gap")) for r in records] == [False, True, True, False]
    result = judge(records)
    assert [s.gap for s in result.series] == [False, True, True, True]
    assert result.window["gap_samples"] == 3


def test_gate_accepts_a_48h_window_written_by_the_runbooks_own_loop(tmp_path: Path) -> None:
    path = tmp_path / "state_machine_shadow_2026.jsonl"
    shape = runbook_window(path)
    report = tmp_path / "gate.json"
    done = CliRunner().invoke(group(), ["gate", str(path), "--report", str(report)])
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("verdict: ACCEPT\n")
    window = json.loads(report.read_text())["window"]
    assert window["gap_samples"] == shape["gaps"]
    assert window["samples"] == shape["lines"] - shape["gaps"]
    assert window["hours"] == 48.0


def test_gate_on_the_runbooks_lines_still_rejects_what_its_criteria_reject(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    runbook_window(path)
    lines = path.read_text().splitlines(keepends=True)
    for index in (900, 1900):
        for later in range(index, len(lines)):
            if lines[later].strip() in ("", "null"):
                continue
            sample = json.loads(lines[later])
            if sample["state_machine_shadow"] is None:
                continue
            sample["state_machine_shadow"]["total_divergences"] += 1
            sample["state_machine_shadow"]["transition_divergences"] += 1
            sample["state_machine_shadow"]["last_divergence_event"] = "FillEvent"
            sample["state_machine_shadow"]["last_divergence_kind"] = "transition"
            lines[later] = json.dumps(sample) + "\n"
    path.write_text("".join(lines))
    done = CliRunner().invoke(group(), ["gate", str(path)])
    assert done.exit_code == 1, done.output
    assert done.stdout.startswith("verdict: REJECT\n")


def test_evidence_build_takes_the_runbooks_lines(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    runbook_window(path)
    done = CliRunner().invoke(group(), ["evidence", "build", str(tmp_path / "b"), "--samples", str(path)])
    assert done.exit_code == 0, done.output
    assert "verdict ACCEPT" in done.stdout
    assert (tmp_path / "b" / "telemetry.jsonl").read_bytes() == path.read_bytes()


def test_watch_appending_to_a_runbook_file_continues_its_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    shape = runbook_window(path, hours=1)
    path.write_text(path.read_text() + '{"ts": "2026-')  # a loop killed mid-line
    assert _prepare_append(str(path)) == shape["lines"] + 1
    assert path.read_text().endswith("\n")
    with path.open("a") as handle:
        handle.write(json.dumps({"ts": format_ts(START + 3600 * 2), "seq": shape["lines"] + 1}) + "\n")
    assert _prepare_append(str(path)) == shape["lines"] + 2
    records = [r for _, r in read_samples(path.read_text().splitlines(True), "w")]
    assert [r["seq"] for r in records] == list(range(1, shape["lines"] + 2))


def test_a_line_that_is_not_json_is_still_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    path.write_text(runbook_filter(bot_status(0)) + "<html>502</html>\n")
    done = CliRunner().invoke(group(), ["gate", str(path)])
    assert done.exit_code == 2
    assert done.stderr.startswith(f"shadowdiff: error: {path}:2: not JSON (")


# -- 1. whole-state transports see raw states ---------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
LENIENT = ROOT / "tests" / "servers" / "settled_default_zero.py"
BACKWARD = "backward_compat_missing_new_fields.json"
JSONL_SHADOW = ROOT / "tests" / "servers" / "jsonl_shadow.py"


def replay_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shadowdiff", "replay", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def lenient_port(transport: str) -> str:
    return f"{sys.executable} -m shadowdiff_doge.pyserver --module {LENIENT} {transport}"


@pytest.mark.parametrize("mode", ["lockstep", "free"])
@pytest.mark.parametrize(
    ("transport", "codec"),
    [("--server", "jsonl"), ("--msgpack --no-sessions", "msgpack"), ("--msgpack", "msgpack")],
)
def test_a_port_that_loads_leniently_wrong_is_a_load_divergence(
    upstream: Path, tmp_path: Path, transport: str, codec: str, mode: str
) -> None:
    report = tmp_path / "r.json"
    done = replay_cli(
        str(upstream / BACKWARD), "--shadow", lenient_port(transport), "--codec", codec,
        "--mode", mode, "--report", str(report),
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    found = json.loads(report.read_text())
    kinds = {d["kind"] for d in found["divergences"]}
    assert kinds == {"load"}, kinds
    paths = {x["path"] for d in found["divergences"] for x in d["differences"]}
    assert paths == {"total_settled_usd"}


@pytest.mark.parametrize(("flag", "codec"), [("--server", "jsonl"), ("--msgpack", "msgpack")])
def test_the_unmutated_port_passes_the_same_fixture(
    upstream: Path, haskell_exe: Path, flag: str, codec: str
) -> None:
    for extra in ([], ["--no-sessions"]):
        done = replay_cli(
            str(upstream / BACKWARD), "--shadow", f"{haskell_exe} {flag}", "--codec", codec, *extra
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_transition_bug_seen_on_the_raw_step_is_not_called_load(upstream: Path) -> None:
    """The same step from the normalised state differs too: classified as today, not ``load``."""
    command = f"{sys.executable} {JSONL_SHADOW} --module {LENIENT} --bump-profit"
    done = replay_cli(str(upstream / BACKWARD), "--shadow", command, "--codec", "jsonl")
    assert done.returncode == 1, done.stdout + done.stderr
    assert ": load" not in done.stdout and ": transition.state" in done.stdout


# -- 4. a recorded log is checked against its own outcomes ----------------------------------------------

SAMPLE_RECORDED = ROOT / "corpora" / "sample" / "doge-recorded-2slots.jsonl.gz"
PY_SHADOW = f"{sys.executable} -m shadowdiff_doge.pyserver --msgpack"


def sidecar_recording(tmp_path: Path, steps: int = 400) -> Path:
    """A sidecar-style recorded log whose recorded outcome of one step is not what the reference says
    (the bot's reducer and ours differ there): only an authority that reads the outcomes sees it."""
    out, kept = [], 0
    with gzip.open(SAMPLE_RECORDED, "rt") as handle:
        for line in handle:
            record = json.loads(line)
            if record.get("kind") == "step":
                kept += 1
                if kept > steps:
                    break
                if kept == 50:
                    record["outcome"]["delta"].setdefault("set", {})["total_fees"] = 123.0
            out.append(json.dumps(record))
    path = tmp_path / "sidecar-recording.jsonl"
    path.write_text("\n".join(out) + "\n")
    return path


def test_a_recording_replays_against_its_own_outcomes_by_default(tmp_path: Path) -> None:
    log = sidecar_recording(tmp_path)
    reports = {}
    for name, extra in (("default", []), ("recorded", ["--authoritative", "recorded"]),
                        ("reference", ["--authoritative", "reference"])):  # fmt: skip
        path = tmp_path / f"{name}.json"
        done = replay_cli(str(log), "--shadow", PY_SHADOW, "--report", str(path), "--deterministic", *extra)
        reports[name] = (done, json.loads(path.read_text()))
    default, recorded, reference = reports["default"], reports["recorded"], reports["reference"]
    assert default[0].returncode == recorded[0].returncode == 1
    assert reference[0].returncode == 0
    assert default[1]["divergences"] == recorded[1]["divergences"] != []
    assert default[1]["summary"] == recorded[1]["summary"]
    assert default[1]["run"]["authoritative"] == "recorded"
    assert default[0].stdout.splitlines()[0].startswith("authority: recorded outcomes")
    assert (
        recorded[0].stdout.splitlines()[0] == "authority: recorded outcomes (the log's own) [--authoritative]"
    )
    assert reference[0].stdout.splitlines()[0].startswith("authority: the reference reducer")


def test_a_corpus_mixing_recorded_and_bare_records_is_refused_in_one_line(
    tmp_path: Path, upstream: Path
) -> None:
    log = sidecar_recording(tmp_path, steps=20)
    scenario = upstream / BACKWARD
    done = replay_cli(str(log), str(scenario), "--shadow", PY_SHADOW)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "mixes records with recorded outcomes" in done.stderr and "--authoritative" in done.stderr
    chosen = replay_cli(str(log), str(scenario), "--shadow", PY_SHADOW, "--authoritative", "reference")
    assert chosen.returncode == 0, chosen.stdout + chosen.stderr


# -- 5. non-finite floats on the JSON-lines wire -------------------------------------------------------

finite_or_not = st.floats(allow_nan=True, allow_infinity=True)
wire_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite_or_not | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


def same_bits(a: Any, b: Any) -> bool:
    """Equal value for value and type for type; floats bit for bit (so NaN == NaN and -0.0 != 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same_bits(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_bits(a[k], b[k]) for k in a)
    return bool(a == b)


@given(wire_values)
def test_jsonl_codec_round_trips_non_finite_floats_as_pythons_json_does(value: Any) -> None:
    framing = JsonLinesFraming()
    encoded = framing.encode({"v": value})
    assert encoded == json.dumps({"v": value}, separators=(",", ":")).encode() + b"\n"
    (decoded,) = framing.feed(encoded)
    assert same_bits(decoded["v"], value)
    assert same_bits(JsonLinesFraming.decode(encoded.strip())["v"], value)


def test_the_bare_tokens_are_what_crosses_the_wire() -> None:
    encoded = JsonLinesFraming().encode({"a": math.inf, "b": -math.inf, "c": math.nan})
    assert encoded == b'{"a":Infinity,"b":-Infinity,"c":NaN}\n'
    assert dumps_json({"x": math.inf}) == '{"x": Infinity}'


def recovery_disabled_scenario(tmp_path: Path, upstream: Path) -> Path:
    scenario = json.loads((upstream / "s1_timeout_orphan.json").read_text())
    scenario["name"] = "recovery_disabled"
    scenario["config"]["s1_orphan_after_sec"] = scenario["config"]["s2_orphan_after_sec"] = math.inf
    path = tmp_path / "recovery_disabled.json"
    path.write_text(json.dumps(scenario))
    assert "Infinity" in path.read_text()
    return path


def test_a_shadow_that_rejects_infinity_is_an_error_failure_naming_the_request(
    tmp_path: Path, upstream: Path
) -> None:
    scenario = recovery_disabled_scenario(tmp_path, upstream)
    report = tmp_path / "r.json"
    strict = f"{sys.executable} {JSONL_SHADOW} --strict-json"
    done = replay_cli(str(scenario), "--shadow", strict, "--codec", "jsonl", "--report", str(report))
    assert done.returncode == 1, done.stdout + done.stderr
    (failure,) = json.loads(report.read_text())["failures"]
    assert failure["kind"] == "error" and failure["request_id"] == 1
    assert failure["message"].startswith("request 1 (transition): bad JSON")
    assert failure["signature"] == "error|TimerTick"
    lenient = replay_cli(str(scenario), "--shadow", f"{sys.executable} {JSONL_SHADOW}", "--codec", "jsonl")
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr


def test_the_port_reads_infinity_over_json_lines(tmp_path: Path, upstream: Path, haskell_exe: Path) -> None:
    """The live bot's recovery-disabled config against the real port's --server reader."""
    scenario = recovery_disabled_scenario(tmp_path, upstream)
    done = replay_cli(str(scenario), "--shadow", f"{haskell_exe} --server", "--codec", "jsonl")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_simulated_bot_with_recovery_disabled_logs_infinite_timeouts(tmp_path: Path) -> None:
    log = tmp_path / "bot.jsonl"
    simbot.write_log(log, 300, seed=3, slots=2, recovery_disabled=True)
    header = json.loads(log.read_text().splitlines()[0])
    for slot in header["slots"].values():
        config = slot["context"]["config"]
        assert config["s1_orphan_after_sec"] == config["s2_orphan_after_sec"] == math.inf
    assert '"s1_orphan_after_sec": Infinity' in log.read_text()
    done = replay_cli(str(log), "--shadow", f"{sys.executable} {JSONL_SHADOW}", "--codec", "jsonl")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("authority: recorded outcomes")


# -- 6. the simulated bot drives any section-1 module -----------------------------------------------------

BOT_ONLY_HELPERS = ("bootstrap_entries", "bind_order_txid", "bind_recovery_txid")


def upstream_like_module(tmp_path: Path) -> Path:
    """The reference's text without the helpers only it has: what a section-1 module guarantees."""
    source = (ROOT / "adapters" / "doge" / "reference" / "state_machine.py").read_text()
    tree = ast.parse(source)
    tree.body = [
        node
        for node in tree.body
        if not (isinstance(node, ast.FunctionDef) and node.name in BOT_ONLY_HELPERS)
    ]
    path = tmp_path / "state_machine.py"
    path.write_text(ast.unparse(tree))
    return path


def test_the_simulated_bot_drives_a_module_without_the_references_helpers(tmp_path: Path) -> None:
    path = upstream_like_module(tmp_path)
    module = load_module(str(path))
    assert not any(hasattr(module, name) for name in BOT_ONLY_HELPERS)
    bot = simbot.SimBot(seed=4, slots=2, module=str(path))
    for _ in range(400):
        bot.loop()
    assert bot.transitions > 800 and bot.calls > 0 and bot.patches > 0
    states = bot.states()
    assert all(state["completed_cycles"] for state in states.values()), "the bot traded"
    for state in states.values():
        assert module.check_invariants(module.from_dict(state)) == [] or state["orders"] == []
    reference = simbot.SimBot(seed=4, slots=2)
    for _ in range(400):
        reference.loop()
    assert reference.digest() == bot.digest()  # same bot code, same module text: the same run


def test_the_simulated_bot_runs_by_file_path_from_the_command_line(tmp_path: Path) -> None:
    path = upstream_like_module(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "shadowdiff_doge.simbot", "--seconds", "0.2", "--rate", "500",
         "--module", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["transitions"] > 100


# -- 2. linear against whole-state shadows ------------------------------------------------------------------


@pytest.fixture(scope="module")
def trading_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """A one-slot recorded log of the simulated bot, and the steps that book a cycle."""
    path = tmp_path_factory.mktemp("history") / "bot.jsonl"
    simbot.write_log(path, 2500, seed=7, slots=1)
    bookings, step = [], -1
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record.get("kind") not in ("step", "call"):
            continue
        step += 1
        if record["outcome"]["delta"].get("append", {}).get("completed_cycles"):
            bookings.append(step)
    assert len(bookings) > 20, "the simulated bot traded"
    return path, bookings


def history_replay(log: Path, tmp_path: Path, *shadow_flags: str, extra: tuple[str, ...] = ()) -> Any:
    report = tmp_path / "r.json"
    shadow = f"{sys.executable} {JSONL_SHADOW} " + " ".join(shadow_flags)
    done = replay_cli(str(log), "--shadow", shadow, "--codec", "jsonl", "--report", str(report), *extra)
    return done, json.loads(report.read_text())


def test_trimmed_history_sends_it_empty_and_checks_it_whole_every_n_steps(
    trading_log: tuple[Path, list[int]], tmp_path: Path
) -> None:
    log, _ = trading_log
    sizes = tmp_path / "sizes"
    done, report = history_replay(
        log, tmp_path, "--log-sizes", str(sizes), extra=("--full-check-every", "400")
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["run"]["history"].startswith(
        "completed_cycles sent empty; the whole state checked every 400"
    )
    assert "history: completed_cycles sent empty" in done.stdout
    sent = [int(n) for n in sizes.read_text().split()]
    assert len(sent) == report["summary"]["checks"]["shadow"]["transition"] + 1  # + the end check
    whole = [i for i, n in enumerate(sent) if n]
    steps = report["summary"]["steps"]
    assert 1 <= len(whole) <= steps // 400 + 1
    assert sent[-1] == max(sent) > 5, "the full checks and the end check carried the history"


def test_a_port_that_rewrites_its_history_is_caught_within_n_steps(
    trading_log: tuple[Path, list[int]], tmp_path: Path
) -> None:
    log, bookings = trading_log
    done, report = history_replay(
        log, tmp_path, "--rewrite-history", "3", extra=("--full-check-every", "300", "--fail-fast")
    )
    assert done.returncode == 1, done.stdout + done.stderr
    first = report["divergences"][0]
    assert first["kind"] == "transition.state"
    assert any(d["path"].startswith("completed_cycles[") for d in first["differences"])
    # it rewrites when it books with five or more records: seen at the first booking once N is due
    possible = bookings[4]
    due = next(b for b in bookings if b >= 299 and b > possible)
    assert possible <= first["step"] <= due


def test_sent_whole_the_rewrite_is_caught_at_the_step_itself(
    trading_log: tuple[Path, list[int]], tmp_path: Path
) -> None:
    log, bookings = trading_log
    done, report = history_replay(
        log, tmp_path, "--rewrite-history", "3", extra=("--history", "whole", "--fail-fast")
    )
    assert done.returncode == 1
    assert report["run"]["history"] == "sent whole with every request"
    assert report["divergences"][0]["step"] == bookings[4]


def test_a_rewrite_after_the_last_full_check_is_caught_at_the_end(
    trading_log: tuple[Path, list[int]], tmp_path: Path
) -> None:
    log, _ = trading_log
    done, report = history_replay(
        log, tmp_path, "--rewrite-history", "3", extra=("--full-check-every", "1000000", "--history", "last")
    )
    assert done.returncode == 1, done.stdout + done.stderr
    (final,) = report["divergences"]
    assert "|final|" in final["signature"]
    assert any(d["path"].startswith("completed_cycles[") for d in final["differences"])


def test_a_port_that_reads_its_history_is_caught_at_once(
    trading_log: tuple[Path, list[int]], tmp_path: Path
) -> None:
    log, _ = trading_log
    done, report = history_replay(log, tmp_path, "--reads-history", extra=("--fail-fast",))
    assert done.returncode == 1
    assert any(d["path"] == "total_round_trips" for d in report["divergences"][0]["differences"])


# -- 7. the bot's scenarios, found through the environment ------------------------------------------------


def test_a_clone_without_the_bots_scenarios_skips_with_the_reason(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    (clone / "tests").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "conftest.py", clone / "tests" / "conftest.py")
    (clone / "tests" / "test_x.py").write_text("def test_x(upstream):\n    assert upstream.is_dir()\n")
    env = {k: v for k, v in os.environ.items() if k != "SHADOWDIFF_UPSTREAM_FIXTURES"}

    def run(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", str(clone / "tests")],
            capture_output=True, text=True, env={**env, **extra}, cwd=clone, timeout=120, check=False,
        )  # fmt: skip

    skipped = run({})
    assert skipped.returncode == 0, skipped.stdout
    assert "1 skipped" in skipped.stdout
    assert (
        "tests/fixtures/cross_language/" in skipped.stdout
        and "SHADOWDIFF_UPSTREAM_FIXTURES" in skipped.stdout
    )
    broken = run({"SHADOWDIFF_UPSTREAM_FIXTURES": str(tmp_path / "nowhere")})
    assert broken.returncode == 1 and "is not a directory" in broken.stdout
    (tmp_path / "shared" / "upstream-fixtures").mkdir(parents=True)
    assert run({}).returncode == 0 and "1 passed" in run({}).stdout  # the default, as CI lays it out


def test_watch_resume_continues_a_runbook_file_through_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    shape = runbook_window(path, hours=1)
    missing = CliRunner().invoke(
        group(), ["watch", "http://127.0.0.1:9", "--resume", "--out", str(tmp_path / "x")]
    )
    assert missing.exit_code == 2 and "--resume needs an existing --out file" in missing.output
    done = CliRunner().invoke(
        group(),
        ["watch", "http://127.0.0.1:9", "--out", str(path), "--resume", "--every", "1s", "--duration", "1s"],
    )
    assert done.exit_code == 0, done.output
    appended = [json.loads(line) for line in path.read_text().splitlines()[shape["lines"] :]]
    assert appended and all(r["gap"] is True for r in appended)  # port 9: refused, a gap
    assert [r["seq"] for r in appended] == list(range(shape["lines"] + 1, shape["lines"] + 1 + len(appended)))
