"""The tap names every slot a multi-slot program keeps, and its recordings do not grow with history.

Two layers: the record builder driven by the simulated bot in-process (every call's true slot is known,
so each attribution is checked), and real processes (the simulated bot under ``python -m shadowdiff.tap``
with a real sidecar recording to disk), whose recordings are compared slot by slot.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import subprocess
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from hypothesis import example, given, settings
from hypothesis import strategies as st
from shadowdiff_doge import simbot
from shadowdiff_doge.reference import state_machine as sm
from test_sidecar import ENV, shadow_command, sidecar

from shadowdiff import tap
from shadowdiff.wire.codec import make_unpacker, packb

Record = dict[str, Any]


# -- the builder, in-process ------------------------------------------------------------------------------
def drive(
    loops: int, *, seed: int = 5, slots: int = 3, identical: bool = False, hints: bool = False
) -> tuple[tap.RecordBuilder, list[tuple[str, Record]], simbot.SimBot]:
    """The simulated bot's calls through a RecordBuilder: (true slot, record) for every record built."""
    builder = tap.RecordBuilder(sm)
    out: list[tuple[str, Record]] = []
    seq = 0

    def observe(function: str, slot: str, args: tuple[Any, ...], result: Any) -> None:
        nonlocal seq
        kind = tap.TRANSITION if function == "transition" else tap.CALL
        item = (kind, function, slot if hints else None, seq, args, {}, result)
        out.extend((slot, record) for record in builder.records_for(item))
        seq += 1

    bot = simbot.SimBot(seed=seed, slots=slots, observer=observe, identical=identical)
    for _ in range(loops):
        bot.loop()
    return builder, out, bot


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), slots=st.integers(1, 5), identical=st.booleans())
@example(seed=2, slots=2, identical=True)  # two identical slots: shared event objects tie them
@example(seed=8, slots=5, identical=True)
def test_every_call_is_named_after_the_slot_the_bot_made_it_for(
    seed: int, slots: int, identical: bool
) -> None:
    builder, records, bot = drive(200, seed=seed, slots=slots, identical=identical)
    assert sorted(builder.tracks) == [f"slot-{i}" for i in range(slots)]
    wrong = [(true, r["kind"], r.get("seq")) for true, r in records if r["slot"] != true]
    assert wrong == []
    kinds = collections.Counter(r["kind"] for _, r in records)
    assert kinds["snapshot"] == slots
    assert kinds["step"] == bot.transitions and kinds["call"] == bot.calls
    # a patch only where the bot changed a state outside the reducer (txids, reseeding), never more
    assert kinds["patch"] <= bot.patches


def test_identical_slots_without_hints_give_the_same_per_slot_records_as_with_hints() -> None:
    def per_slot(hints: bool) -> dict[str, list[Record]]:
        _, records, _ = drive(600, identical=True, hints=hints)
        out: dict[str, list[Record]] = collections.defaultdict(list)
        for _, record in records:
            out[record["slot"]].append(record)
        return dict(out)

    hinted, inferred = per_slot(True), per_slot(False)
    assert sorted(inferred) == sorted(hinted) == ["slot-0", "slot-1", "slot-2"]
    for name in hinted:
        assert packb(inferred[name]) == packb(hinted[name]), name  # record for record, byte for byte

    # the slots really are identical in value: the same records but for their names
    def strip(records: list[Record]) -> list[Record]:
        return [{k: v for k, v in r.items() if k not in ("slot", "seq")} for r in records]

    assert strip(hinted["slot-0"]) == strip(hinted["slot-2"])


def _fresh(price: float, now: float, **fields: Any) -> Any:
    state = sm.from_dict({"market_price": price, "now": now, "last_price_update_at": now})
    return dataclasses.replace(state, **fields) if fields else state


def _step(builder: tap.RecordBuilder, state: Any, event: Any, cfg: Any, seq: int) -> tuple[Any, list[Record]]:
    """One transition through the builder, no hint: (post-state, its records)."""
    args = (state, event, cfg, 4.0, None)
    result = sm.transition(*args)
    return result[0], builder.records_for((tap.TRANSITION, "transition", None, seq, args, {}, result))


def test_a_config_float_copied_into_every_fresh_slot_is_no_evidence() -> None:
    """The backtester's case: ``profit_pct_runtime`` is the config's one float object in every slot."""
    cfg = sm.EngineConfig(**{**simbot.CONFIG, "profit_pct": 0.8})
    builder = tap.RecordBuilder(sm)
    states = []
    for _ in range(4):
        state = _fresh(0.12, simbot.START, profit_pct_runtime=cfg.profit_pct)
        states.append(sm.bootstrap_entries(state, cfg, 4.0)[0])
    seq = 0
    for minute in range(30):
        for i in range(4):
            tick = sm.PriceTick(price=0.12 * (1 + 0.001 * minute), timestamp=simbot.START + 60.0 * minute)
            states[i], records = _step(builder, states[i], tick, cfg, seq)
            assert records[-1]["slot"] == f"slot-{i}"
            seq += 1
    assert sorted(builder.tracks) == ["slot-0", "slot-1", "slot-2", "slot-3"]
    assert builder.counters["patches"] == 0


def test_one_start_shared_by_several_slots_still_makes_one_slot_each() -> None:
    """A program may hand the very same initial state object to every slot (it is immutable)."""
    cfg = sm.EngineConfig(**simbot.CONFIG)
    start = sm.bootstrap_entries(_fresh(0.12, simbot.START), cfg, 4.0)[0]
    states = [start] * 3
    builder = tap.RecordBuilder(sm)
    seq = 0
    for minute in range(1, 20):
        tick = sm.PriceTick(price=0.12, timestamp=simbot.START + 60.0 * minute)  # one event for all
        for i in range(3):
            states[i], records = _step(builder, states[i], tick, cfg, seq)
            assert records[-1]["slot"] == f"slot-{i}"
            seq += 1
    assert len(builder.tracks) == 3


def test_a_patched_slot_keeps_its_name_and_the_patch_carries_only_the_change() -> None:
    cfg = sm.EngineConfig(**simbot.CONFIG)
    builder = tap.RecordBuilder(sm)
    a = sm.bootstrap_entries(_fresh(0.12, simbot.START), cfg, 4.0)[0]
    b = sm.bootstrap_entries(_fresh(0.12, simbot.START), cfg, 4.0)[0]
    a, _ = _step(builder, a, sm.PriceTick(price=0.12, timestamp=simbot.START + 60), cfg, 0)
    b, _ = _step(builder, b, sm.PriceTick(price=0.12, timestamp=simbot.START + 60), cfg, 1)
    b = sm.bind_order_txid(b, b.orders[0].local_id, "TX-B")  # outside the reducer
    b, (patch, step) = _step(builder, b, sm.TimerTick(timestamp=simbot.START + 65), cfg, 2)
    assert (patch["kind"], patch["slot"], step["slot"]) == ("patch", "slot-1", "slot-1")
    assert list(patch["delta"]) == ["set"] and list(patch["delta"]["set"]) == ["orders"]


def test_patch_bytes_do_not_grow_with_history() -> None:
    builder, records, _ = drive(3000, identical=True)
    assert len(builder.tracks) == 3
    first, last = _fifths([r for _, r in records])
    assert first["transitions"] == last["transitions"] > 0
    # the largest patch and the bytes per transition stay flat from the first fifth to the last
    assert last["max_patch"] <= 2 * max(first["max_patch"], 200)
    assert last["bytes"] / last["transitions"] <= 1.5 * first["bytes"] / first["transitions"]


def _fifths(records: list[Record]) -> tuple[dict[str, int], dict[str, int]]:
    """Bytes (msgpack, snapshots aside), transitions and the largest patch over the first and the last
    fifth of the calls."""
    calls = sum(r["kind"] in ("step", "call") for r in records)
    fifth = calls // 5
    first = {"bytes": 0, "transitions": 0, "max_patch": 0}
    last = dict(first)
    seen = 0
    for record in records:
        if record["kind"] in ("header", "meta", "gap"):
            continue
        if record["kind"] in ("step", "call"):
            seen += 1
        part = first if seen <= fifth else last if seen > calls - fifth else None
        if part is None or record["kind"] == "snapshot":  # one per slot, counted apart
            continue
        size = len(packb(record))
        part["bytes"] += size
        part["transitions"] += record["kind"] in ("step", "call")
        if record["kind"] == "patch":
            part["max_patch"] = max(part["max_patch"], size)
    return first, last


def test_a_slot_key_names_the_slots_and_a_failing_one_falls_back_to_inference() -> None:
    names: dict[int, tuple[Any, str]] = {}

    def by_config(state: Any, *rest: Any) -> str | None:
        if len(rest) < 3:
            return None  # apply_order_regime_at_entry carries no config: let the tap infer it
        cfg = rest[1]
        return names.setdefault(id(cfg), (cfg, f"cfg-{len(names)}"))[1]

    builder = tap.RecordBuilder(sm, slot_key=by_config)
    seq = 0

    def observe(function: str, slot: str, args: tuple[Any, ...], result: Any) -> None:
        nonlocal seq
        kind = tap.TRANSITION if function == "transition" else tap.CALL
        for record in builder.records_for((kind, function, None, seq, args, {}, result)):
            assert record["slot"] == "cfg-" + slot[5:]
        seq += 1

    bot = simbot.SimBot(seed=3, slots=3, observer=observe, identical=True)
    for _ in range(200):
        bot.loop()
    assert sorted(builder.tracks) == ["cfg-0", "cfg-1", "cfg-2"]

    def broken(*args: Any) -> str:
        raise RuntimeError("bad key")

    builder, records, _ = drive(50)
    inferred = [r["slot"] for _, r in records]
    builder = tap.RecordBuilder(sm, slot_key=broken)
    got = []
    seq = 0

    def observe_broken(function: str, slot: str, args: tuple[Any, ...], result: Any) -> None:
        nonlocal seq
        kind = tap.TRANSITION if function == "transition" else tap.CALL
        got.extend(r["slot"] for r in builder.records_for((kind, function, None, seq, args, {}, result)))
        seq += 1

    bot = simbot.SimBot(seed=5, slots=3, observer=observe_broken)
    for _ in range(50):
        bot.loop()
    assert got == inferred
    assert builder.counters["slot_key_errors"] == bot.transitions + bot.calls


def test_slot_key_on_the_command_line_is_checked_before_the_program_runs(tmp_path: Path) -> None:
    for spec, why in (("nocolon", "not module:function"), ("no_such_mod_xyz:f", "cannot import"),
                      ("json:no_such_function", "has no")):  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "shadowdiff.tap", "--slot-key", spec, "-m", "shadowdiff_doge.simbot"],
            capture_output=True, text=True, env=ENV, cwd=ROOT, check=False, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert done.stdout == ""  # the program never ran
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and why in lines[0] and "--slot-key" in lines[0]


# -- real processes: the simulated bot under python -m shadowdiff.tap, a real sidecar recording ------------
KEY_MODULE = '''
names = {}

def by_config(state, *rest):
    """transition(state, event, cfg, size, sizes): one slot per config object the bot keeps."""
    if len(rest) < 3:
        return None
    return names.setdefault(id(rest[1]), (rest[1], "cfg-%d" % len(names)))[1]
'''


def run_tapped(
    address: str, *bot_args: str, slot_key: str | None = None, pythonpath: Path | None = None
) -> Any:
    argv = [sys.executable, "-m", "shadowdiff.tap", "--module", simbot.DEFAULT_MODULE]
    if slot_key:
        argv += ["--slot-key", slot_key]
    argv += ["-m", "shadowdiff_doge.simbot", *bot_args]
    env = {**ENV, "DOGE_CORE_SHADOW": "1", "SHADOWDIFF_TAP": address, "SHADOWDIFF_TAP_EXIT_WAIT": "5"}
    if pythonpath is not None:
        env["PYTHONPATH"] = f"{pythonpath}{os.pathsep}{env['PYTHONPATH']}"
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def recording(record_dir: Path) -> list[Record]:
    out: list[Record] = []
    for path in sorted(record_dir.glob("*.msgpack")):
        unpacker = make_unpacker()
        unpacker.feed(path.read_bytes())
        out.extend(unpacker)
    return out


def live(
    tmp_path: Path, *bot_args: str, **options: Any
) -> tuple[dict[str, Any], dict[str, Any], list[Record]]:
    """(bot summary, sidecar status once caught up, the recorded records) for one tapped run."""
    tmp_path.mkdir(mode=0o700, parents=True, exist_ok=True)  # the sidecar's socket lives here: ours only
    with sidecar(tmp_path, shadow_command(tmp_path)) as side:
        bot = run_tapped(side.address, *bot_args, **options)
        status = side.caught_up(bot["transitions"] + bot["calls"], timeout=60)
        records = recording(side.record)
    return bot, status, records


def per_slot(records: list[Record]) -> dict[str, collections.Counter[str]]:
    out: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for record in records:
        if record["kind"] in ("snapshot", "patch", "step", "call"):
            out[record["slot"]][record["kind"]] += 1
    return dict(out)


def assert_every_call_checked(bot: dict[str, Any], status: dict[str, Any]) -> None:
    shadow, cov = status["state_machine_shadow"], status["coverage"]
    assert shadow["transition_checks"] == bot["transitions"]
    assert cov["calls_checked"] == bot["calls"]
    assert shadow["total_divergences"] == 0 and shadow["shadow_failures"] == 0
    assert cov["dropped_by_tap"] == 0 and cov["skipped_by_sidecar"] == 0


def test_live_identical_slots_hints_off_record_like_hints_on(tmp_path: Path) -> None:
    args = ("--seconds", "1.5", "--rate", "300", "--seed", "7", "--slots", "4", "--identical-slots")
    runs = {}
    for hints in ("--slot-hints", "--no-slot-hints"):
        bot, status, records = live(tmp_path / hints.strip("-"), *args, hints)
        assert_every_call_checked(bot, status)
        counts = per_slot(records)
        assert sorted(counts) == ["slot-0", "slot-1", "slot-2", "slot-3"]  # N slots => N snapshots
        assert all(c["snapshot"] == 1 for c in counts.values())
        assert sum(c["patch"] for c in counts.values()) <= bot["patches"]
        # the sidecar's status lists the slots and the patches per slot, as the recording has them
        listed = status["slots"]
        assert listed["count"] == 4
        assert {name: row["patches"] for name, row in listed["by_slot"].items()} == {
            name: c["patch"] for name, c in counts.items()
        }
        assert {name: row["snapshots"] for name, row in listed["by_slot"].items()} == dict.fromkeys(counts, 1)
        runs[hints] = (bot, counts, records)
    (bot_on, on, rec_on), (bot_off, off, rec_off) = runs["--slot-hints"], runs["--no-slot-hints"]
    first, last = _fifths(rec_off)
    assert last["bytes"] / last["transitions"] <= 1.5 * first["bytes"] / first["transitions"]
    assert bot_on["digest"] == bot_off["digest"]  # the tap changed nothing in the bot
    assert on == off
    # the identical slots did the same in the same order: equal records slot for slot
    for name in on:
        a = [r for r in rec_on if r.get("slot") == name and r["kind"] != "snapshot"]
        b = [r for r in rec_off if r.get("slot") == name and r["kind"] != "snapshot"]
        assert a == b, name


def test_live_distinct_slots_flat_bytes_per_transition(tmp_path: Path) -> None:
    bot, status, records = live(tmp_path, "--seconds", "2", "--rate", "400", "--seed", "11", "--slots", "3")
    assert_every_call_checked(bot, status)
    counts = per_slot(records)
    assert sorted(counts) == ["slot-0", "slot-1", "slot-2"]
    assert all(c["snapshot"] == 1 for c in counts.values())
    first, last = _fifths(records)
    assert first["transitions"] == last["transitions"] > 300
    assert last["max_patch"] <= 2 * max(first["max_patch"], 200)
    assert last["bytes"] / last["transitions"] <= 1.5 * first["bytes"] / first["transitions"]


def test_live_slot_key_from_the_command_line(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "slot_keys.py").write_text(KEY_MODULE)
    args = ("--seconds", "1", "--rate", "300", "--seed", "2", "--slots", "3", "--identical-slots")
    bot, status, records = live(tmp_path / "run", *args, slot_key="slot_keys:by_config", pythonpath=keys)
    assert_every_call_checked(bot, status)
    counts = per_slot(records)
    assert sorted(counts) == ["cfg-0", "cfg-1", "cfg-2"]
    assert all(c["snapshot"] == 1 for c in counts.values())
    assert sorted(status["slots"]["by_slot"]) == ["cfg-0", "cfg-1", "cfg-2"]


@pytest.mark.parametrize("slots", [1, 5])
def test_live_n_slots_make_n_snapshots(tmp_path: Path, slots: int) -> None:
    bot, status, records = live(
        tmp_path, "--seconds", "0.5", "--rate", "300", "--seed", "4", "--slots", str(slots)
    )
    assert_every_call_checked(bot, status)
    counts = per_slot(records)
    assert sorted(counts) == [f"slot-{i}" for i in range(slots)]
    assert [c["snapshot"] for c in counts.values()] == [1] * slots


def test_tap_slot_names_the_innermost_block_on_this_thread_only() -> None:
    assert tap._slot_var.get() is None
    with tap.slot("a"):
        assert tap._slot_var.get() == "a"
        seen: list[str | None] = []
        other = threading.Thread(target=lambda: seen.append(tap._slot_var.get()))
        other.start()
        other.join()
        assert seen == [None]  # another thread names its own slots
        with pytest.raises(RuntimeError), tap.slot(7):  # type: ignore[arg-type]
            assert tap._slot_var.get() == "7"
            raise RuntimeError("the bot's own error passes through")
        assert tap._slot_var.get() == "a"
    assert tap._slot_var.get() is None


def test_tap_slot_names_reach_the_records_through_a_wrapped_module() -> None:
    """Installed on a module, the wrapper reads the name on the bot's thread and the records carry it."""
    module = types.ModuleType("hinted_reducer")
    module.transition = sm.transition  # type: ignore[attr-defined]
    module.check_invariants = sm.check_invariants  # type: ignore[attr-defined]
    installed = tap.install(module, "tcp:127.0.0.1:9", force=True, exit_wait=0.2)
    assert installed is not None
    try:
        cfg = sm.EngineConfig(**simbot.CONFIG)
        state = sm.bootstrap_entries(_fresh(0.12, simbot.START), cfg, 4.0)[0]
        tick = sm.PriceTick(price=0.12, timestamp=simbot.START + 60)
        with tap.slot("pair-DOGEUSD#2"):
            post, _ = module.transition(state, tick, cfg, 4.0, None)
        assert post == sm.transition(state, tick, cfg, 4.0, None)[0]
        queued = list(installed._queue)
    finally:
        tap.uninstall(module)
    assert queued and queued[0][2] == "pair-DOGEUSD#2"
    builder = tap.RecordBuilder(sm)
    records = builder.records_for(queued[0])
    assert [(r["kind"], r["slot"]) for r in records] == [
        ("snapshot", "pair-DOGEUSD#2"),
        ("step", "pair-DOGEUSD#2"),
    ]


@pytest.mark.parametrize("before", [1, 2])
def test_a_slot_added_mid_run_from_the_events_the_others_share_is_a_new_slot(before: int) -> None:
    """Slots stepped with one event object each minute; a slot added later is built from that event's
    own price and time objects (what the other slots hold now, copied by the reducer): a new slot."""
    cfg = sm.EngineConfig(**simbot.CONFIG)
    builder = tap.RecordBuilder(sm)
    states = [sm.bootstrap_entries(_fresh(0.12, simbot.START), cfg, 4.0)[0] for _ in range(before)]
    seq = 0
    for minute in range(1, 40):
        tick = sm.PriceTick(price=0.12 * (1 + 0.0005 * minute), timestamp=simbot.START + 60.0 * minute)
        if minute == 20:
            fresh = sm.from_dict({"market_price": 0.0, "now": 0.0})
            fresh = dataclasses.replace(fresh, market_price=tick.price, now=tick.timestamp,
                                        last_price_update_at=tick.timestamp)  # fmt: skip
            states.append(sm.bootstrap_entries(fresh, cfg, 4.0)[0])
        for i in range(len(states)):
            states[i], records = _step(builder, states[i], tick, cfg, seq)
            assert records[-1]["slot"] == f"slot-{i}"
            seq += 1
    assert len(builder.tracks) == before + 1 and builder.counters["patches"] == 0
