"""The engine end to end over real subprocesses speaking PROTOCOL.md (Python servers with known answers).

The Haskell port has its own integration tests (test_pair.py); these pin the engine's behaviour:
counting, classification, resync, faults, slots, patches, recorded outcomes, free mode.
"""

from __future__ import annotations

import os

import pytest
from conftest import MISBEHAVING, PY_SERVER, ROOT, children_of
from shadowdiff_doge.corpusgen import generate
from shadowdiff_doge.domain import DogeDomain
from shadowdiff_doge.inprocess import InProcessReducer

from shadowdiff.core.engine import Replay, ReplayOptions
from shadowdiff.reporting.text import build_report
from shadowdiff.runtime.corpus import LogWriter, read_items
from shadowdiff.shadow.client import SubprocessReducer

REFERENCE = "shadowdiff_doge.reference.state_machine"


def replay(items, command, codec="msgpack", authoritative=True, deadline=10.0, **options):
    shadow = SubprocessReducer(command, codec=codec, domain=DogeDomain(), deadline=deadline,
                               use_sessions=options.pop("sessions", None))  # fmt: skip
    auth = InProcessReducer(REFERENCE) if authoritative else None
    try:
        return Replay(shadow, auth, ReplayOptions(**options)).run(items), shadow
    finally:
        shadow.close()


def test_fixtures_check_every_transition_on_both_sides(upstream) -> None:
    result, _ = replay(read_items([upstream]), [*PY_SERVER, "--msgpack"])
    assert result.counts["steps"] == 27
    assert result.authoritative_checks["transition"] == result.shadow_checks["transition"] == 27
    assert result.shadow_checks["invariants"] == 27
    assert result.divergence_count == 0 and result.failure_count == 0
    assert result.counts["invariant_breaches"] == 9  # fixtures that end in a deliberately broken phase


@pytest.mark.parametrize(
    "command,codec,sessions",
    [([*PY_SERVER, "--msgpack"], "msgpack", False), ([*PY_SERVER, "--server"], "jsonl", None)],
)
def test_whole_state_paths_give_the_same_report_as_sessions(tmp_path, command, codec, sessions) -> None:
    log = tmp_path / "mixed.msgpack"
    with LogWriter(log) as writer:
        for record in generate(1500, slots=3, seed=5):
            writer.write(record)
    with_sessions, _ = replay(read_items([log]), [*PY_SERVER, "--msgpack"])
    other, shadow = replay(read_items([log]), command, codec=codec, sessions=sessions)
    assert not shadow.sessions
    strip = lambda r: {k: v for k, v in build_report(r, {}, deterministic=True).items() if k != "run"}  # noqa: E731
    assert strip(other) == strip(with_sessions)
    assert with_sessions.counts["calls"] > 0 and with_sessions.divergence_count == 0


def test_interleaved_slots_with_patches_replay_clean_and_count_calls(tmp_path) -> None:
    log = tmp_path / "slots.jsonl.gz"
    with LogWriter(log) as writer:
        records = list(generate(4000, slots=4, seed=3))
        for record in records:
            writer.write(record)
    kinds = {r["kind"] for r in records}
    assert {"patch", "call", "step"} <= kinds
    result, _ = replay(read_items([log]), [*PY_SERVER, "--msgpack"])
    assert result.slots == 4 and result.divergence_count == 0 and result.failure_count == 0
    assert result.shadow_checks["call"] == result.counts["calls"] > 0


def test_a_mutated_answer_is_located_with_both_values(upstream) -> None:
    result, _ = replay(read_items([upstream]), [*MISBEHAVING, "--mutate-price-at", "2"])
    [found] = result.divergences
    assert found.kind == "transition.actions" and found.step == 1 and found.event_type == "FillEvent"
    first = found.differences[0]
    assert first.path.startswith("actions[") and first.path.endswith(".payload.price")
    assert first.shadow == pytest.approx(first.authoritative + 1e-6)
    assert found.signature == "transition.actions|" + found.event_type + "|actions[*].payload.price"


@pytest.mark.parametrize(
    "flag,kind",
    [
        ("--crash-at", "crash"),
        ("--garbage-at", "protocol"),
        ("--error-at", "error"),
        ("--hang-at", "timeout"),
    ],
)
def test_faults_are_classified_and_the_replay_finishes(upstream, tmp_path, flag, kind) -> None:
    before = set(children_of(os.getpid()))
    command = [*MISBEHAVING, flag, "5", "--once", str(tmp_path / "marker")]
    result, shadow = replay(read_items([upstream]), command, deadline=1.0)
    assert dict(result.failures_by_kind) == {kind: 1}
    failure = result.failures[0]
    assert failure.step == 4 and failure.signature == f"{kind}|{failure.event_type}"
    assert result.divergence_count == 0
    # every other step was still checked by the (restarted) shadow
    assert result.shadow_checks["transition"] == 26
    if kind == "crash":
        assert failure.failure.exit_code == 7
        assert any("crashing on purpose" in line for line in failure.failure.stderr_tail)
    assert (shadow.restarts >= 1) == (kind != "error")
    assert set(children_of(os.getpid())) <= before


def test_a_shadow_that_keeps_dying_is_given_up_and_reported(upstream) -> None:
    result, _ = replay(read_items([upstream]), [*MISBEHAVING, "--crash-at", "1", "--every"], deadline=1.0)
    assert result.failures_by_kind["crash"] >= 1
    assert result.errors and "gave up" in result.errors[0]["message"]
    assert result.unchecked > 0
    # every step fed is checked, unchecked or failed: none is lost in between
    fed = result.counts["events"] + result.counts["calls"]
    assert fed == result.checked + result.unchecked + result.failed_steps == result.counts["steps"]
    assert result.failed_steps >= 1


def test_recorded_outcomes_need_no_python_module() -> None:
    log = ROOT / "corpora" / "sample" / "doge-recorded-2slots.jsonl.gz"
    result, _ = replay(read_items([log]), [*PY_SERVER, "--msgpack"], authoritative=False)
    assert result.counts["steps"] == result.shadow_checks["transition"] + result.shadow_checks["call"] > 2000
    assert result.authoritative_checks["invariants"] == result.shadow_checks["invariants"]
    assert result.divergence_count == 0
    mutated, _ = replay(
        read_items([log]), [*MISBEHAVING, "--mutate-price-at", "50", "--every"], authoritative=False
    )
    assert mutated.by_kind["transition.actions"] > 0


def test_free_mode_reports_the_first_divergence_per_slot_and_resync_goes_on(tmp_path) -> None:
    log = tmp_path / "free.msgpack"
    with LogWriter(log) as writer:
        for record in generate(3000, slots=2, seed=9):
            writer.write(record)
    command = [*MISBEHAVING, "--mutate-price-ts-mod", "7"]
    free, _ = replay(read_items([log]), command, mode="free")
    assert free.divergence_count == 2 and free.unchecked > 0  # one per slot, then that slot stops
    resynced, _ = replay(read_items([log]), command, mode="free", resync=True)
    lockstep, _ = replay(read_items([log]), command)
    assert resynced.divergence_count == lockstep.divergence_count > 2
    assert resynced.unchecked == 0


def test_in_process_adapter_loads_a_module_by_file_path(upstream) -> None:
    path = ROOT / "adapters" / "doge" / "reference" / "state_machine.py"
    auth = InProcessReducer(str(path))
    shadow = SubprocessReducer([*PY_SERVER, "--msgpack"], domain=DogeDomain())
    with shadow:
        result = Replay(shadow, auth, ReplayOptions()).run(read_items([upstream]))
    assert result.counts["steps"] == 27 and result.divergence_count == 0
    assert auth.module.__file__ == str(path)


def test_a_raw_state_loaded_differently_is_a_load_divergence(tmp_path) -> None:
    import json

    scenario = {"name": "raw", "config": {}, "order_size_usd": 2.0, "order_sizes": None,
                "initial_state": {"market_price": "0.1", "mode_source": " Balance ", "orders": [7]},
                "events": [{"type": "TimerTick", "payload": {"timestamp": 5.0}}]}  # fmt: skip
    path = tmp_path / "raw.json"
    path.write_text(json.dumps(scenario))
    # the Python server reads raw input exactly as the authority does: no divergence
    result, _ = replay(read_items([path]), [*PY_SERVER, "--msgpack"])
    assert result.divergence_count == 0 and result.shadow_checks["transition"] == 1


def test_progress_and_window_do_not_change_results(tmp_path) -> None:
    log = tmp_path / "w.msgpack"
    with LogWriter(log) as writer:
        for record in generate(800, slots=2, seed=1):
            writer.write(record)
    small, _ = replay(read_items([log]), [*MISBEHAVING, "--mutate-price-ts-mod", "7"], window=1)
    large, _ = replay(read_items([log]), [*MISBEHAVING, "--mutate-price-ts-mod", "7"], window=1024)

    def listed(result):
        return build_report(result, {}, deterministic=True)["divergences"]

    assert listed(small) == listed(large)
    assert small.divergence_count > 0


def test_answers_identical_to_the_authority_skip_decoding_and_any_other_encoding_is_still_checked(
    tmp_path,
) -> None:
    """Byte equality is only a shortcut: the same answers with their keys in another order, or with a
    mutation, go through the field-by-field comparison and give the same report as before."""
    log = tmp_path / "g.msgpack"
    with LogWriter(log) as writer:
        for record in generate(600, slots=2, seed=3):
            writer.write(record)
    plain, _ = replay(read_items([log]), MISBEHAVING)
    reordered, _ = replay(read_items([log]), [*MISBEHAVING, "--reorder-keys"])
    steps = plain.counts["events"] + plain.counts["calls"]
    assert plain.counts["identical_answers"] == steps and plain.divergence_count == 0
    # a call's answer has one key, so only the steps' answers change bytes when the keys are reversed
    assert reordered.counts["identical_answers"] == plain.counts["calls"] > 0
    assert reordered.divergence_count == 0
    assert reordered.shadow_checks == plain.shadow_checks

    mutated = [*MISBEHAVING, "--mutate-price-ts-mod", "5"]
    found, _ = replay(read_items([log]), mutated)
    found_reordered, _ = replay(read_items([log]), [*mutated, "--reorder-keys"])
    assert found.divergence_count > 0
    # every compared step is either the authority's bytes or a divergence here (the mutation is real)
    assert found.counts["identical_answers"] == steps - found.divergence_count
    report = build_report(found, {}, deterministic=True)
    assert report["divergences"] == build_report(found_reordered, {}, deterministic=True)["divergences"]


# -- every repeated failure is bounded -------------------------------------------------------------


def _ticks(tmp_path, bad_stamp: object, n: int = 20):
    """An upstream S0 fixture followed by a TimerTick at ``bad_stamp`` and ``n`` ordinary PriceTicks."""
    import json

    from conftest import UPSTREAM

    scenario = json.loads((UPSTREAM / "price_tick_refreshes_entry.json").read_text())
    events = [{"type": "TimerTick", "payload": {"timestamp": bad_stamp}}]
    events += [{"type": "PriceTick", "payload": {"price": 0.1 + i * 1e-5, "timestamp": 2000.0 + i}}
               for i in range(n)]  # fmt: skip
    scenario.update(name="bounded", events=events)
    path = tmp_path / "bounded.json"
    path.write_text(json.dumps(scenario))
    return path


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["lockstep", "free"])
def test_a_step_the_shadow_rejects_every_time_is_one_finding_and_the_replay_goes_on(
    tmp_path, haskell_exe, mode
) -> None:
    """The Python reducer accepts a timestamp "abc"; the port rejects the event, and then the state
    holding it. Once this reopened the slot from that state forever; now the refusal is a finding, the
    slot is offered the next pre-state, and every later step is checked."""
    scenario = _ticks(tmp_path, "abc")
    result, _ = replay(read_items([scenario]), [str(haskell_exe), "--msgpack"], mode=mode)
    assert dict(result.failures_by_kind) == {"error": 2}
    step_failure, open_failure = result.failures
    assert (step_failure.step, step_failure.event_type) == (0, "TimerTick")
    assert open_failure.step == 1 and "now" in open_failure.failure.message
    assert result.unchecked == 1  # the step sent behind the refused state
    assert result.shadow_checks["transition"] == 20 - 1
    assert result.divergence_count == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault", ["--crash-on-ts", "--hang-on-ts"])
def test_a_step_that_kills_the_shadow_every_time_is_recorded_once_and_skipped(tmp_path, fault) -> None:
    scenario = _ticks(tmp_path, 1500.0)
    marker = 2005.0  # the sixth PriceTick: the shadow dies on it however often it is sent
    command = [*MISBEHAVING, fault, str(marker)]
    result, shadow = replay(read_items([scenario]), command, deadline=1.0)
    kind = "crash" if fault == "--crash-on-ts" else "timeout"
    assert dict(result.failures_by_kind) == {kind: 1}
    assert result.failures[0].step == 6 and result.failures[0].event_type == "PriceTick"
    assert result.shadow_checks["transition"] == 21 - 1 and result.unchecked == 0
    assert shadow.restarts == 1


@pytest.mark.timeout(60)
def test_a_shadow_that_refuses_every_state_is_bounded_and_counts_every_step(upstream) -> None:
    items = list(read_items([upstream]))
    result, _ = replay(items, [*MISBEHAVING, "--refuse-open"])
    steps = result.counts["steps"]
    assert result.shadow_checks["transition"] == 0
    assert result.unchecked == steps and result.checked == result.failed_steps == 0
    # one refusal per slot's open and at most one more per step: bounded by the input, not by time
    assert result.slots <= result.failures_by_kind["error"] <= result.slots + steps


def test_the_authoritative_reducer_raising_is_bad_input_named_where(tmp_path) -> None:
    """A TimerTick "abc" in S2 makes the reducer itself raise (DOGE_REDUCER.md 9): one line naming the
    record, never a traceback."""
    import json

    from conftest import UPSTREAM

    from shadowdiff.model.errors import ShadowdiffError

    scenario = json.loads((UPSTREAM / "s2_timer_sets_flag.json").read_text())
    scenario["events"] += [{"type": "TimerTick", "payload": {"timestamp": "abc"}}]
    path = tmp_path / "raises.json"
    path.write_text(json.dumps(scenario))
    with pytest.raises(ShadowdiffError) as caught:
        replay(read_items([path]), [*PY_SERVER, "--msgpack"])
    assert "authoritative reducer raised TypeError" in caught.value.what
    assert str(path) in (caught.value.where or "")
