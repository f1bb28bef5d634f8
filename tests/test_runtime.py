"""The bot's own saved state (logs/bot_runtime.json) as a corpus, a fuzz seed and a source of slot names.

Real parts: the simulated bot writes the file (``python -m shadowdiff_doge.simbot --runtime-out``), the
shadow is the compiled Haskell port over real pipes (msgpack and JSON lines), ``shadowdiff`` runs as a
subprocess where the command line is what is checked.
"""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from hypothesis import example, given, settings
from hypothesis import strategies as st
from shadowdiff_doge.domain import DogeDomain
from shadowdiff_doge.inprocess import InProcessReducer
from shadowdiff_doge.runtime import (
    ENV_FIELDS,
    LEGACY_DROPPED,
    is_runtime,
    load_env,
    runtime_items,
    slot_context,
)

from shadowdiff.core.domain import Domain
from shadowdiff.core.reducer import Step
from shadowdiff.model import Context
from shadowdiff.model.errors import BadInput
from shadowdiff.model.records import PatchRecord, Record, Snapshot
from shadowdiff.runtime.corpus import read_items

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
CODECS = {"msgpack": "--msgpack", "jsonl": "--server"}


def simbot_runtime(path: Path, *extra: str, seconds: str = "1", rate: str = "1200") -> Path:
    subprocess.run(
        [sys.executable, "-m", "shadowdiff_doge.simbot", "--seconds", seconds, "--rate", rate, "--slots", "3",
         "--runtime-out", str(path), *extra],
        cwd=ROOT, env=ENV, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def runtime_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("runtime")
    return {
        "current": simbot_runtime(base / "now" / "bot_runtime.json"),
        "legacy": simbot_runtime(base / "old" / "bot_runtime.json", "--runtime-legacy"),
    }


def replay(corpus: Path, shadow: str, codec: str, *extra: str) -> tuple[int, dict[str, Any], str]:
    report = corpus.parent / f"report-{codec}-{abs(hash(shadow))}.json"
    done = subprocess.run(
        [sys.executable, "-m", "shadowdiff", "replay", str(corpus), "--codec", codec, "--shadow", shadow,
         "--report", str(report), *extra],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(report.read_text()), done.stdout + done.stderr


# -- the file ---------------------------------------------------------------------------------------


def test_the_simulated_bot_writes_the_bots_shape_0600_and_an_older_bot_lacks_the_newer_keys(
    runtime_files: dict[str, Path],
) -> None:
    current = json.loads(runtime_files["current"].read_text())
    legacy = json.loads(runtime_files["legacy"].read_text())
    for doc, path in ((current, runtime_files["current"]), (legacy, runtime_files["legacy"])):
        assert is_runtime(doc)
        assert doc["version"] == "doge-v1" and isinstance(doc["saved_at"], float)
        assert sorted(doc["slots"]) == ["0", "1", "2"]
        assert set(doc["constraints"]) <= {"price_decimals", "volume_decimals", "min_volume", "min_cost_usd"}
        assert sorted(doc["slot_aliases"]) == sorted(doc["slot_sticky"]) == ["0", "1", "2"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for sid, state in current["slots"].items():
        assert all(key in state for key in LEGACY_DROPPED)
        assert len(state["completed_cycles"]) > 20  # a bot that has run a while
        old = legacy["slots"][sid]
        assert not any(key in old for key in LEGACY_DROPPED)
        assert old["profit_pct"] == legacy["profit_pct"]
    assert not is_runtime({"initial_state": {}, "events": [], "slots": {}, "version": "1"})
    assert not is_runtime({"version": "v1-doge", "slots": {}})


def test_slots_are_named_by_id_and_alias_and_configured_from_the_file_and_the_environment(
    runtime_files: dict[str, Path], tmp_path: Path
) -> None:
    doc = json.loads(runtime_files["current"].read_text())
    env_file = tmp_path / "env.toml"
    env_file.write_text(
        'PAIR_REFRESH_PCT = 1.2\nMAX_RECOVERY_SLOTS = "0"\nRECOVERY_ORDERS_ENABLED = "false"\n'
        "ORDER_SIZE_USD = 4.0\nENTRY_SPACING_MULT_B = 2.0\n"
    )
    env = load_env(env_file, environ={"S1_ORPHAN_AFTER_SEC": "600", "PAIR_REFRESH_PCT": "9"})
    items = list(runtime_items(doc, "bot_runtime.json", env))
    snaps = [i for i in items if isinstance(i, Snapshot)]
    ticks = [i for i in items if isinstance(i, Record)]
    assert [s.slot for s in snaps] == ["slot-0 (wow)", "slot-1 (such)", "slot-2 (much)"]
    assert all(s.raw for s in snaps)
    assert [s.state for s in snaps] == [doc["slots"][k] for k in ("0", "1", "2")]  # as saved, untouched
    assert [t.input.payload for t in ticks] == [{"timestamp": doc["saved_at"]}] * 3
    config = snaps[2].context.config
    assert config["refresh_pct"] == 1.2  # the file overrides the process environment
    assert config["max_recovery_slots"] == 1  # max(1, int(...)) as the bot does
    assert math.isinf(config["s1_orphan_after_sec"]) and math.isinf(config["s2_orphan_after_sec"])
    assert config["entry_pct"] == 0.35 and config["entry_pct_a"] == 0.35 and config["entry_pct_b"] == 0.7
    assert config["price_decimals"] == 5 and config["min_cost_usd"] == 0.0  # the bot's default
    assert [s.context.config["sticky_mode_enabled"] for s in snaps] == [False, False, True]
    profit = doc["slots"]["2"]["total_profit"]
    assert snaps[2].context.params["order_size_usd"] == max(4.0, 4.0 + profit)
    defaults = load_env(environ={})
    plain = slot_context(doc, "0", doc["slots"]["0"], defaults, "f").config
    assert {field: plain[field] for field, _k, _d in ENV_FIELDS.values()} == {
        field: default for field, _k, default in ENV_FIELDS.values()
    }
    assert load_env(environ={"S1_ORPHAN_AFTER_SEC": "600"})["S1_ORPHAN_AFTER_SEC"] == 600.0


def test_bad_environment_values_and_bad_files_name_where(tmp_path: Path) -> None:
    bad = tmp_path / "env.toml"
    bad.write_text("S1_ORPHAN_AFTER_SEC = 'soon'\n")
    with pytest.raises(BadInput, match="S1_ORPHAN_AFTER_SEC") as err:
        load_env(bad, environ={})
    assert str(bad) in str(err.value)
    bad.write_text("NOT_A_BOT_NAME = 1\n")
    with pytest.raises(BadInput, match="unknown name 'NOT_A_BOT_NAME'"):
        load_env(bad, environ={})
    with pytest.raises(BadInput, match="RECOVERY_ENABLED"):
        load_env(environ={"RECOVERY_ENABLED": "maybe"})
    broken = tmp_path / "bot_runtime.json"
    broken.write_text(json.dumps({"version": "doge-v1", "slots": {"0": [1, 2]}}))
    with pytest.raises(BadInput, match=r"slots\.0"):
        list(read_items([broken], DogeDomain()))
    done = subprocess.run([sys.executable, "-m", "shadowdiff", "replay", str(broken)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and "slots.0" in done.stderr and "Traceback" not in done.stderr


def test_a_runtime_file_is_told_from_a_scenario_in_the_same_directory(
    runtime_files: dict[str, Path], tmp_path: Path
) -> None:
    corpus = tmp_path / "both"
    corpus.mkdir()
    (corpus / "bot_runtime.json").write_text(runtime_files["current"].read_text())
    scenario = {
        "name": "slot-0 (wow)",
        "initial_state": {},
        "events": [{"type": "TimerTick", "payload": {"timestamp": 1.0}}],
    }
    (corpus / "a_scenario.json").write_text(json.dumps(scenario))
    slots = [i.slot for i in read_items([corpus], DogeDomain()) if isinstance(i, Snapshot)]
    assert slots[0] == "slot-0 (wow)"
    assert slots[1] == f"slot-0 (wow)@{corpus / 'bot_runtime.json'}"  # same name: renamed, not merged
    assert slots[2:] == ["slot-1 (such)", "slot-2 (much)"]
    with pytest.raises(BadInput, match="initial_state"):  # a domain that does not know the format
        list(read_items([corpus / "bot_runtime.json"], Domain()))


# -- replay: three slots, zero divergences; an older file catches a port that fills keys differently --


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_a_three_slot_runtime_file_replays_clean_against_our_port(
    runtime_files: dict[str, Path], haskell_exe: Path, codec: str
) -> None:
    for kind in ("current", "legacy"):
        code, report, out = replay(runtime_files[kind], f"{haskell_exe} {CODECS[codec]}", codec)
        summary = report["summary"]
        assert code == 0, out
        assert summary["slots"] == 3 and summary["events"] == 3
        assert summary["divergences"] == 0 and summary["failures"] == 0
        assert summary["load_checks"] == (3 if codec == "msgpack" else 0)
        assert summary["checks"]["shadow"]["transition"] == 3


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_an_older_bots_file_catches_a_port_whose_from_dict_fills_a_missing_key_differently(
    runtime_files: dict[str, Path], mutant_exe: Path, codec: str
) -> None:
    shadow = f"{mutant_exe} {CODECS[codec]} --mutant profit_pct_no_fallback"
    code, report, out = replay(runtime_files["legacy"], shadow, codec)
    assert code == 1, out
    found = report["divergences"]
    assert sorted(d["slot"] for d in found) == ["slot-0 (wow)", "slot-1 (such)", "slot-2 (much)"]
    for d in found:
        # over jsonl the raw state goes with the slot's first step; the same step from the authority's
        # normalised state agrees, so the difference is the port's loading: a load divergence either way
        assert d["kind"] == "load"
        paths = [x["path"] for x in d["differences"]]
        assert paths == ["profit_pct_runtime"]
        assert d["differences"][0]["authoritative"] == 0.9 and d["differences"][0]["shadow"] == 1.0
    assert "slot-0 (wow)" in out and "profit_pct_runtime" in out
    # the same mutant on the file as a current bot writes it: nothing to fall back on, nothing found
    code, report, out = replay(runtime_files["current"], shadow, codec)
    assert code == 0 and report["summary"]["divergences"] == 0, out


def test_files_written_from_a_runtime_file_are_private_and_carry_the_bots_config(
    runtime_files: dict[str, Path], mutant_exe: Path, tmp_path: Path
) -> None:
    findings = tmp_path / "findings.jsonl"
    env = tmp_path / "bot-env.toml"
    env.write_text('RECOVERY_ORDERS_ENABLED = "0"\nPAIR_REFRESH_PCT = 1.2\nORDER_SIZE_USD = 4\n')
    shadow = f"{mutant_exe} --msgpack --mutant profit_pct_no_fallback"
    code, _report, out = replay(
        runtime_files["legacy"], shadow, "msgpack", "--findings", str(findings), "--runtime-env", str(env)
    )
    assert code == 1, out
    assert findings.exists() and stat.S_IMODE(findings.stat().st_mode) == 0o600
    lines = [json.loads(line) for line in findings.read_text().splitlines()]
    assert [x["slot"] for x in lines] == ["slot-0 (wow)", "slot-1 (such)", "slot-2 (much)"]
    config = lines[0]["context"]["config"]
    assert config["s1_orphan_after_sec"] == config["s2_orphan_after_sec"] == math.inf  # bare Infinity in JSON
    assert config["refresh_pct"] == 1.2 and lines[0]["context"]["order_size_usd"] >= 4.0
    assert "Infinity" in findings.read_text()
    report = runtime_files["legacy"].parent / f"report-msgpack-{abs(hash(shadow))}.json"
    assert stat.S_IMODE(report.stat().st_mode) == 0o600


# -- fuzz --from: real states reach what synthetic ones do not -----------------------------------------


def fuzz(tmp: Path, exe: Path, *extra: str) -> tuple[int, str, list[Path]]:
    out = tmp / "found"
    done = subprocess.run(
        [sys.executable, "-m", "shadowdiff", "fuzz", "--seed", "0", "--examples", "120", "--time-budget", "0",
         "--shrink-budget", "20", "--shadow", f"{exe} --msgpack --mutant history_capped", "--out", str(out),
         "-q", *extra],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout + done.stderr, sorted(out.glob("*.json")) if out.exists() else []


def test_fuzz_from_a_runtime_file_finds_a_bug_synthetic_states_do_not_reach_in_the_same_budget(
    runtime_files: dict[str, Path], mutant_exe: Path, tmp_path: Path
) -> None:
    code, out, written = fuzz(tmp_path / "synthetic", mutant_exe)
    assert code == 0 and written == [], out
    assert "120 examples" in out
    code, out, written = fuzz(tmp_path / "seeded", mutant_exe, "--from", str(runtime_files["current"]))
    assert code == 1 and len(written) == 1, out
    case = json.loads(written[0].read_text())
    kind, event, path = case["shadowdiff"]["signature"].split("|")
    # any booking shows it (an exit fill, a recovery fill: which one the walk meets first is the draw's)
    assert kind == "transition.state" and event.endswith("FillEvent") and path.startswith("completed_cycles")
    note = case["shadowdiff"]["note"]
    assert "bot_runtime.json" in note and "real orders and txids" in note and "uploads nothing" in note
    assert stat.S_IMODE(written[0].stat().st_mode) == 0o600
    state = case["initial_state"]
    saved = json.loads(runtime_files["current"].read_text())["slots"]
    # the real pre-state, shrunk: the long history the bug needs (32+ cycles), little else
    assert 32 <= len(state["completed_cycles"]) <= max(len(s["completed_cycles"]) for s in saved.values()) + 8
    assert len(case["events"]) == 1


def test_seeds_come_from_runtime_files_logs_and_scenarios(
    runtime_files: dict[str, Path], tmp_path: Path
) -> None:
    from shadowdiff_doge.simbot import write_log

    from shadowdiff.search.seeds import SEED_KEY, seed_scenarios

    log = tmp_path / "rec.msgpack"
    write_log(log, 50, seed=3, slots=2)
    scenario = tmp_path / "one.json"
    scenario.write_text(json.dumps({"initial_state": {"now": 5.0}, "events": []}))
    seeds = seed_scenarios([runtime_files["legacy"], log, scenario], DogeDomain())
    assert [s.meta["slot"] for s in seeds[:3]] == ["slot-0 (wow)", "slot-1 (such)", "slot-2 (much)"]
    assert seeds[0].meta[SEED_KEY] == str(runtime_files["legacy"])
    assert seeds[0].initial_state == json.loads(runtime_files["legacy"].read_text())["slots"]["0"]
    assert seeds[-1].meta["slot"] == "one" and seeds[-1].initial_state == {"now": 5.0}
    assert all(s.inputs == () for s in seeds)
    # the recorded log: each slot's opening state, the states after steps 1, 2, 4, 8, ... and at its end,
    # as the recorded outcomes and patches say; the last one is what the reference computes
    from_log = [s for s in seeds if s.meta[SEED_KEY] == str(log)]
    for slot in ("slot-0", "slot-1"):
        steps = [s.meta.get("after_steps", 0) for s in from_log if s.meta["slot"] == slot]
        assert steps[:4] == [0, 1, 2, 4] and steps == sorted(steps) and len(steps) >= 5
    auth = InProcessReducer("shadowdiff_doge.reference.state_machine")
    contexts: dict[str, Context] = {}
    for item in read_items([log]):
        if isinstance(item, Snapshot):
            auth.open(item.slot, item.state)
            contexts[item.slot] = item.context
        elif isinstance(item, Record):
            if item.context:
                contexts[item.slot] = contexts[item.slot].updated(item.context)
            auth.step(Step(item.slot, item.input, contexts[item.slot]))
        elif isinstance(item, PatchRecord):
            auth.patch(item.slot, item.delta)
    for slot in ("slot-0", "slot-1"):
        last = [s for s in from_log if s.meta["slot"] == slot][-1]
        assert last.initial_state == auth.get(slot)
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"kind": "header", "format": "shadowdiff-log", "slots": {}}\n')
    with pytest.raises(BadInput, match="no state to start from"):
        seed_scenarios([empty], DogeDomain())
    argv = [sys.executable, "-m", "shadowdiff", "fuzz", "--from", str(empty)]
    done = subprocess.run(argv, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no state to start from" in done.stderr and "Traceback" not in done.stderr


# -- the live tap and the sidecar name slots from the file the bot starts from -------------------------


@pytest.mark.parametrize("where", ["tap", "sidecar"])
def test_the_tap_or_the_sidecar_names_slots_from_the_runtime_file_the_bot_starts_from(
    runtime_files: dict[str, Path], tmp_path: Path, where: str
) -> None:
    from shadowdiff_doge.domain import DEFAULT_EXE

    runtime = runtime_files["legacy"]
    sock, record = tmp_path / "tap.sock", tmp_path / "record"
    argv = [sys.executable, "-m", "shadowdiff", "sidecar", "--listen", f"unix:{sock}",
            "--record", str(record), "--shadow", f"{DEFAULT_EXE} --msgpack"]  # fmt: skip
    if where == "sidecar":
        argv += ["--runtime", str(runtime)]
    side = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT
    )
    try:
        assert side.stdout is not None and json.loads(side.stdout.readline())["listen"]
        tap = [sys.executable, "-m", "shadowdiff.tap", "--module", "shadowdiff_doge.reference.state_machine"]
        if where == "tap":
            tap += ["--runtime", str(runtime)]
        bot = [str(ROOT / "tests" / "servers" / "runtime_bot.py"), str(runtime), "--wait", "1.0"]
        env = {
            **ENV,
            "DOGE_CORE_SHADOW": "1",
            "SHADOWDIFF_TAP": f"unix:{sock}",
            "SHADOWDIFF_TAP_EXIT_WAIT": "5",
        }
        done = subprocess.run([*tap, *bot], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and json.loads(done.stdout.splitlines()[-1]) == {"transitions": 12}, (
            done.stderr
        )
    finally:
        side.send_signal(15)
        out, err = side.communicate(timeout=60)
    assert side.returncode == 0, err
    final = json.loads(out.strip().splitlines()[-1])["final"]
    assert final["transition_checks"] == 12 and final["total_divergences"] == 0
    slots = {i.slot for i in read_items(sorted(record.rglob("*.msgpack*"))) if isinstance(i, Snapshot)}
    assert slots == {"slot-0 (wow)", "slot-1 (such)", "slot-2 (much)"}


@given(
    ids=st.lists(st.text(max_size=6), max_size=6, unique=True),
    aliases=st.lists(st.one_of(st.none(), st.text(max_size=4), st.integers(-3, 3)), max_size=6),
    saved_at=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3)),
)
@example(ids=["1", "1 (x)"], aliases=["x", None], saved_at=None)  # "slot-1 (x)" twice: two slots still
@settings(max_examples=200, deadline=None)
def test_every_saved_slot_is_one_raw_snapshot_under_a_name_of_its_own(
    ids: list[str], aliases: list[Any], saved_at: Any
) -> None:
    slots = {sid: {"now": float(i), "orders": [], "cycle_a": i} for i, sid in enumerate(ids)}
    doc = {"version": "doge-v1", "saved_at": saved_at, "slots": slots,
           "slot_aliases": {sid: alias for sid, alias in zip(ids, aliases, strict=False)}}  # fmt: skip
    items = list(runtime_items(doc, "f.json", load_env(environ={})))
    snaps = [i for i in items if isinstance(i, Snapshot)]
    ticks = [i for i in items if isinstance(i, Record)]
    assert [s.state for s in snaps] == list(slots.values()) and all(s.raw for s in snaps)
    assert len({s.slot for s in snaps}) == len(slots)
    assert len(ticks) == len(slots)  # a number saved_at, else each state's own now
    finite = isinstance(saved_at, float) and math.isfinite(saved_at)
    assert [t.input.payload["timestamp"] for t in ticks] == [
        saved_at if finite else s["now"] for s in slots.values()
    ]


def test_shrink_takes_a_runtime_file_and_its_reproducer_is_private_and_says_so(
    runtime_files: dict[str, Path], mutant_exe: Path, tmp_path: Path
) -> None:
    out = tmp_path / "shrunk"
    done = subprocess.run(
        [sys.executable, "-m", "shadowdiff", "shrink", str(runtime_files["legacy"]), "-q", "--out", str(out),
         "--shadow", f"{mutant_exe} --msgpack --mutant profit_pct_no_fallback"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    (case,) = out.glob("*.json")
    meta = json.loads(case.read_text())["shadowdiff"]
    assert meta["signature"] == "load|open|profit_pct_runtime"
    assert "real orders and txids" in meta["note"] and "uploads nothing" in meta["note"]
    assert stat.S_IMODE(case.stat().st_mode) == 0o600
