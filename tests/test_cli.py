"""The command line: exit codes, one-line errors, reports; through CliRunner and once as a real process."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import MISBEHAVING, PY_SERVER, ROOT
from shadowdiff_doge.corpusgen import generate

from shadowdiff.cli.main import main
from shadowdiff.runtime.corpus import LogWriter, read_items

SHADOW = " ".join([*PY_SERVER, "--msgpack"])


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_replay_fixtures_clean_then_mutated_with_report(upstream, tmp_path) -> None:
    clean = run("replay", str(upstream), "--shadow", SHADOW, "--report", str(tmp_path / "r.json"))
    assert clean.exit_code == 0, clean.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["summary"]["checks"]["shadow"]["transition"] == 27
    assert report["summary"]["verdict"] == "pass"
    mutated = run("replay", str(upstream), "--shadow", " ".join([*MISBEHAVING, "--mutate-price-at", "2"]),
                  "--report", str(tmp_path / "m.json"))  # fmt: skip
    assert mutated.exit_code == 1
    [d] = json.loads((tmp_path / "m.json").read_text())["divergences"]
    assert d["step"] == 1 and d["differences"][0]["path"] == "actions[0].payload.price"
    assert "step 1 (entry_fill_then_timer, FillEvent): transition.actions" in mutated.output


def test_bad_input_names_the_line_and_keeps_what_came_before(tmp_path) -> None:
    log = tmp_path / "broken.jsonl"
    lines = [json.dumps(r) for r in generate(60, slots=1, seed=2)]
    lines.insert(31, '{"kind": "step", "slot": "slot-0", "event": {"type": "PriceTick", "payload": ')
    log.write_text("\n".join(lines) + "\n")
    out = run("replay", str(log), "--shadow", SHADOW, "--report", str(tmp_path / "r.json"))
    assert out.exit_code == 2
    assert f"{log}:32: not valid JSON" in out.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["summary"]["steps"] >= 25 and report["errors"][0]["where"] == f"{log}:32"


def test_unknown_event_type_is_bad_input_with_its_place(tmp_path) -> None:
    log = tmp_path / "unknown.jsonl"
    records = list(generate(10, slots=1, seed=2))
    records.append(
        {"kind": "step", "slot": "slot-0", "seq": 99, "event": {"type": "MoonEvent", "payload": {}}}
    )
    log.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    out = run("replay", str(log), "--shadow", SHADOW)
    assert out.exit_code == 2
    assert f"{log}:{len(records)}: unknown event type 'MoonEvent'" in out.output


def test_torn_last_msgpack_record_is_skipped_with_a_warning(tmp_path) -> None:
    log = tmp_path / "torn.msgpack"
    with LogWriter(log) as writer:
        for record in generate(40, slots=1, seed=4):
            writer.write(record)
    data = log.read_bytes()
    log.write_bytes(data[:-7])
    out = CliRunner().invoke(main, ["replay", str(log), "--shadow", SHADOW])
    assert out.exit_code == 0, out.output
    assert "torn last record skipped" in out.output


def test_missing_shadow_and_bad_options_are_one_line_usage_errors(upstream) -> None:
    out = run("replay", str(upstream), "--shadow", "/nonexistent/doge-core-exe --msgpack")
    assert out.exit_code == 2 and "shadow executable not found: /nonexistent/doge-core-exe" in out.output
    assert "Traceback" not in out.output
    out = run("replay", str(upstream), "--shadow", SHADOW, "--resync")
    assert out.exit_code == 2
    out = run("replay", "/nonexistent/corpus")
    assert out.exit_code == 2 and "no such file or directory" in out.output


@pytest.mark.parametrize("attempt", range(5))
def test_a_shadow_that_exits_at_once_is_one_line_and_exit_2(upstream, haskell_exe, attempt) -> None:
    """A shadow that refuses its arguments and exits before the hello is written (a broken pipe) or after
    (no answer) is the same one line, in a real process: the production port refuses --mutant."""
    shadow = f"{haskell_exe} --msgpack --mutant x"
    done = subprocess.run(
        [sys.executable, "-m", "shadowdiff", "replay", str(upstream), "--shadow", shadow],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("shadowdiff: error:") and "handshake failed" in lines[0]
    assert "doge-core-mutants" in lines[0]  # the shadow's own last words say where the mutants are


def test_a_shadow_that_answers_nothing_is_never_a_pass(tmp_path) -> None:
    # a shadow that handshakes then dies on every request: no transition answered
    log = ROOT / "corpora" / "sample" / "doge-recorded-2slots.jsonl.gz"
    dying = " ".join([*MISBEHAVING, "--crash-at", "1", "--every"])
    out = run("replay", str(log), "--shadow", dying, "--deadline", "5", "--fail-fast")
    assert out.exit_code == 1 and "verdict: failed" in out.output


def test_findings_file_replays_alone(upstream, tmp_path) -> None:
    findings = tmp_path / "findings.jsonl"
    command = " ".join([*MISBEHAVING, "--mutate-price-at", "2"])
    assert run("replay", str(upstream), "--shadow", command, "--findings", str(findings)).exit_code == 1
    [line] = findings.read_text().splitlines()
    record = json.loads(line)
    assert record["pre_state"]["orders"] and record["signature"].startswith("transition.actions|FillEvent")
    again = run("replay", str(findings), "--shadow", " ".join([*MISBEHAVING, "--mutate-price-at", "1"]))
    assert again.exit_code == 1 and record["signature"] in again.output
    assert run("replay", str(findings), "--shadow", SHADOW).exit_code == 0


def test_real_process_end_to_end_on_a_gzipped_log(tmp_path) -> None:
    log = tmp_path / "log.jsonl.gz"
    with gzip.open(log, "wt") as fh:
        for record in generate(300, slots=2, seed=8):
            fh.write(json.dumps(record) + "\n")
    done = subprocess.run([sys.executable, "-m", "shadowdiff", "replay", str(log), "--shadow", SHADOW],
                          capture_output=True, text=True, check=False, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "verdict: pass" in done.stdout and "transitions" in done.stdout


def test_help_teaches_exit_codes() -> None:
    out = run("replay", "--help")
    assert "Exit codes: 0 clean: no divergence" in out.output and "Examples:" in out.output
    assert "130 interrupted" in out.output and " 4 replay --twice" in " ".join(out.output.split())


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_drains_reports_what_ran_and_exits_130(tmp_path, jobs) -> None:
    """The shadow runs in its own session: the terminal's SIGINT stops the replay, not the shadow, so
    the steps in flight are answered and nothing is counted as a crash."""
    import os
    import signal
    import time

    from conftest import children_of, wait_for_shadows

    log = tmp_path / "long.msgpack"
    with LogWriter(log) as writer:
        for record in generate(3000, slots=2, seed=6):
            writer.write(record)
    shadow = " ".join([*MISBEHAVING, "--delay-ms", "2"])  # about 6 s of shadow work: plenty to interrupt
    report = tmp_path / "r.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "shadowdiff", "replay", str(log), "--shadow", shadow, "-j", jobs,
         "--report", str(report)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    wait_for_shadows(proc.pid, int(jobs))
    time.sleep(1.0)  # a few hundred steps into the replay
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C does: to the whole foreground group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted after step" in err and "Traceback" not in err
    summary = json.loads(report.read_text())["summary"]
    assert summary["interrupted"] and 0 < summary["steps"] < 3000
    assert summary["failures"] == 0 and summary["divergences"] == 0
    checked = summary["checks"]["shadow"]["transition"] + summary["checks"]["shadow"]["call"]
    assert checked >= summary["steps"]  # every step before the stop was checked (workers may be past it)
    assert children_of(proc.pid) == []


@pytest.mark.timeout(60)
def test_ctrl_c_ends_a_replay_whose_shadow_hangs_without_waiting_for_its_deadline(tmp_path) -> None:
    """The shadow hangs on a step with a 120 s deadline: Ctrl-C still ends the run within the drain's
    grace (1.5 s) plus a wait slice, with the report of what ran and the rest counted unchecked."""
    import os
    import signal
    import time

    log = tmp_path / "hang.msgpack"
    with LogWriter(log) as writer:
        for record in generate(400, slots=1, seed=3):
            writer.write(record)
    steps = [r.input for r in read_items([log]) if hasattr(r, "input")]
    hung = next(i for i in range(200, len(steps)) if hasattr(steps[i], "payload"))
    shadow = " ".join([*MISBEHAVING, "--hang-on-ts", repr(steps[hung].payload["timestamp"])])
    report = tmp_path / "r.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "shadowdiff", "replay", str(log), "--shadow", shadow, "--deadline", "120",
         "--report", str(report)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    from conftest import wait_for_shadows

    wait_for_shadows(proc.pid, 1)
    time.sleep(2)  # the shadow sits on step 200 (a 2-step delay would do; this is for loaded machines)
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    assert proc.returncode == 130, err
    assert took < 15, f"Ctrl-C took {took:.1f} s against a 120 s deadline"
    assert "Traceback" not in err
    summary = json.loads(report.read_text())["summary"]
    assert summary["interrupted"] and summary["failures"] == 0
    checked = summary["checks"]["shadow"]["transition"] + summary["checks"]["shadow"]["call"]
    assert checked == hung and summary["unchecked"] == summary["steps"] - hung


def test_ctrl_c_in_any_other_command_is_one_line_and_exit_130() -> None:
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "shadowdiff", "fuzz", "--seed", "1", "--examples", "1000000"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(4)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "shadowdiff: interrupted" and "Traceback" not in err
