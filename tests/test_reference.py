"""The reference DOGE reducer against the bot's own fixtures and the tricky rules of DOGE_REDUCER.md."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shadowdiff_doge.expected import check_expected, compute_expected, phase_of
from shadowdiff_doge.reference import state_machine as sm

FIXTURES = Path(
    os.environ.get(
        "SHADOWDIFF_UPSTREAM_FIXTURES",
        Path(__file__).resolve().parents[1].parent / "shared" / "upstream-fixtures",
    )
)
FIXTURE_FILES = sorted(FIXTURES.glob("*.json")) if FIXTURES.is_dir() else []

EVENT_TYPES = {
    cls.__name__: cls
    for cls in (sm.PriceTick, sm.TimerTick, sm.FillEvent, sm.RecoveryFillEvent, sm.RecoveryCancelEvent)
}


def wire_actions(actions: list[Any]) -> list[dict[str, Any]]:
    return [{"type": type(a).__name__, "payload": dataclasses.asdict(a)} for a in actions]


def run_scenario(scenario: dict[str, Any]) -> tuple[sm.PairState, list[list[dict[str, Any]]]]:
    state = sm.from_dict(scenario["initial_state"])
    cfg = sm.EngineConfig(**scenario.get("config", {}))
    steps = []
    for event in scenario["events"]:
        state, actions = sm.transition(
            state,
            EVENT_TYPES[event["type"]](**event["payload"]),
            cfg,
            scenario["order_size_usd"],
            scenario.get("order_sizes"),
        )
        steps.append(wire_actions(actions))
    return state, steps


def exit_order(local_id: int, side: str, price: float, trade_id: str, **extra: Any) -> sm.OrderState:
    fields: dict[str, Any] = {"entry_price": 100.0, "entry_filled_at": 100.0}
    fields.update(extra)
    return sm.OrderState(local_id, side, "exit", price, 13.0, trade_id, 1, **fields)


def entry_order(local_id: int, side: str, price: float, trade_id: str, **extra: Any) -> sm.OrderState:
    return sm.OrderState(local_id, side, "entry", price, 13.0, trade_id, 1, **extra)


# --------------------------------------------------------------------------- the bot's fixtures


def test_upstream_fixture_directory_is_present() -> None:
    assert FIXTURES.is_dir(), f"upstream fixtures missing at {FIXTURES} (set SHADOWDIFF_UPSTREAM_FIXTURES)"
    assert len(FIXTURE_FILES) >= 20


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[p.stem for p in FIXTURE_FILES])
def test_upstream_fixture_expectations_hold(path: Path) -> None:
    scenario = json.loads(path.read_text())
    state, steps = run_scenario(scenario)
    mismatches = check_expected(scenario["expected"], sm.to_dict(state), steps, sm.check_invariants(state))
    assert mismatches == []


def test_fixture_eviction_books_the_evicted_recovery_at_market_with_maker_fee() -> None:
    scenario = json.loads((FIXTURES / "recovery_eviction_with_regime.json").read_text())
    state, steps = run_scenario(scenario)
    assert [a["type"] for a in steps[0]] == [
        "CancelOrderAction",
        "BookCycleAction",
        "OrphanOrderAction",  # no follow-up: 2 USD buys no DOGE volume at a price of 101
    ]
    cancel = steps[0][0]["payload"]
    assert cancel == {"local_id": -1, "txid": "TX-REC-OLD", "reason": "recovery_cap_evict_priority"}
    cycle = state.completed_cycles[-1]
    assert cycle.exit_price == 101.0
    assert cycle.exit_fee == 101.0 * 13.0 * 0.25 / 100
    assert cycle.entry_time == 900.0
    assert cycle.from_recovery is True
    assert [r.recovery_id for r in state.recovery_orders] == [2]


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("value", "decimals", "rounded"),
    [
        (0.125, 2, 0.12),
        (2.675, 2, 2.67),
        (0.375, 2, 0.38),
        (1.0000005, 6, 1.000001),
        (2.5, 0, 2.0),
        (3.5, 0, 4.0),
        (0.1002004, 6, 0.1002),
    ],
)
def test_round_price_follows_python_round_on_the_binary_value(
    value: float, decimals: int, rounded: float
) -> None:
    assert sm.round_price(value, decimals) == rounded


def test_order_volume_rounds_half_to_even_and_applies_minimums() -> None:
    cfg = sm.EngineConfig(min_volume=0.0)
    assert sm.compute_order_volume(0.8, cfg, 2.0) == 2.0  # 2.5 -> 2
    assert sm.compute_order_volume(0.5, cfg, 1.75) == 4.0  # 3.5 -> 4
    assert sm.compute_order_volume(0.8, cfg, 2.8) == 3.0  # 2.8 / 0.8 is 3.4999999999999996
    assert sm.compute_order_volume(0.0, cfg, 2.0) is None
    assert sm.compute_order_volume(0.1, sm.EngineConfig(), 1.2) is None  # 12 < min_volume 13
    assert sm.compute_order_volume(0.1, sm.EngineConfig(min_cost_usd=3.0), 2.0) is None
    assert sm.compute_order_volume(0.1, sm.EngineConfig(volume_decimals=2), 2.0) == 20.0


def test_backoff_multiplier_grows_from_the_start_count_and_caps() -> None:
    cfg = sm.EngineConfig(loss_backoff_start=3, backoff_factor=0.5, backoff_max_multiplier=2.0)
    assert [sm.entry_backoff_multiplier(n, cfg) for n in (0, 2, 3, 4, 10)] == [1.0, 1.0, 1.5, 2.0, 2.0]


def test_derive_phase_looks_only_at_exit_sides() -> None:
    base = sm.PairState(market_price=100.0, now=0.0)
    assert sm.derive_phase(base) == "S0"
    buy_exit = exit_order(1, "buy", 99.0, "A")
    sell_exit = exit_order(2, "sell", 101.0, "B")
    assert sm.derive_phase(dataclasses.replace(base, orders=(buy_exit,))) == "S1a"
    assert sm.derive_phase(dataclasses.replace(base, orders=(sell_exit,))) == "S1b"
    assert sm.derive_phase(dataclasses.replace(base, orders=(sell_exit, buy_exit))) == "S2"
    upper = exit_order(3, "BUY", 99.0, "A")
    assert sm.derive_phase(dataclasses.replace(base, orders=(upper,))) == "S0"


# --------------------------------------------------------------------------- from_dict leniency


def order_map(**fields: Any) -> dict[str, Any]:
    return {"local_id": 1, "side": "buy", "role": "entry", "price": 1.0, "volume": 13.0, **fields}


def test_from_dict_ints_go_through_python_int() -> None:
    state = sm.from_dict({"cycle_a": "3", "cycle_b": 2.9, "orders": [order_map(local_id=True)]})
    assert (state.cycle_a, state.cycle_b, state.orders[0].local_id) == (3, 2, 1)
    with pytest.raises(ValueError):
        sm.from_dict({"cycle_a": "2.5"})
    huge = 2**80
    assert sm.from_dict({"next_order_id": huge}).next_order_id == huge


def test_from_dict_float_present_as_null_is_an_error() -> None:
    with pytest.raises(TypeError):
        sm.from_dict({"market_price": None})
    assert sm.from_dict({"market_price": "0.5"}).market_price == 0.5


def test_from_dict_strings_are_kept_unchanged_or_defaulted_when_empty() -> None:
    state = sm.from_dict({"orders": [order_map(side="BUY", role=None, trade_id="", txid=7)]})
    order = state.orders[0]
    assert (order.side, order.role, order.trade_id, order.txid) == ("BUY", "entry", "A", "7")
    assert sm.from_dict({"orders": [order_map(side="")]}).orders[0].side == "buy"
    recovery = sm.from_dict({"recovery_orders": [{"recovery_id": 4, "reason": ""}]}).recovery_orders[0]
    assert (recovery.reason, recovery.side, recovery.trade_id, recovery.cycle) == ("stale", "buy", "A", 0)


def test_from_dict_bools_by_truthiness_and_taken_as_is_fields() -> None:
    state = sm.from_dict(
        {
            "long_only": "no",
            "short_only": 0,
            "s2_entered_at": "whenever",
            "last_refresh_direction_a": 5,
            "completed_cycles": [{"from_recovery": [1]}],
        }
    )
    assert state.long_only is True and state.short_only is False
    assert state.s2_entered_at == "whenever"
    assert state.last_refresh_direction_a == 5
    assert state.completed_cycles[0].from_recovery is True


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [(" Balance ", "balance"), ("REGIME", "regime"), ("weird", "none"), (None, "none"), (3, "none")],
)
def test_from_dict_mode_source(raw: Any, normalised: str) -> None:
    assert sm.from_dict({"mode_source": raw}).mode_source == normalised


def test_from_dict_fallbacks_for_settled_and_profit_pct() -> None:
    assert sm.from_dict({"total_profit": 5.0}).total_settled_usd == 5.0
    assert sm.from_dict({"total_profit": 5.0, "total_settled_usd": 1.5}).total_settled_usd == 1.5
    assert sm.from_dict({"profit_pct": 2.5}).profit_pct_runtime == 2.5
    assert sm.from_dict({"profit_pct": 2.5, "profit_pct_runtime": 0.7}).profit_pct_runtime == 0.7
    assert sm.from_dict({}).profit_pct_runtime == 1.0


def test_from_dict_skips_list_entries_that_are_not_maps() -> None:
    state = sm.from_dict({"orders": [1, "x", None, order_map(local_id=9)], "recovery_orders": [[]]})
    assert [o.local_id for o in state.orders] == [9]
    assert state.recovery_orders == ()


@pytest.mark.parametrize(
    ("raw", "regime"),
    [
        (None, None),
        (True, 1),
        (False, 0),
        (2, 2),
        (3, None),
        (-1, None),
        (2.7, 2),
        (" 2 ", 2),
        ("0002", 2),
        ("7", None),
        ("bullish", 2),
        ("Ranging", 1),
        (" BEARISH ", 0),
        ("x", None),
        ("", None),
        ("-1", None),
        ("\u0662", 2),  # ARABIC-INDIC DIGIT TWO: isdigit() and int() both accept it
        ([2], None),
    ],
)
def test_normalize_regime(raw: Any, regime: int | None) -> None:
    assert sm.normalize_regime(raw) == regime
    assert sm.from_dict({"orders": [order_map(regime_at_entry=raw)]}).orders[0].regime_at_entry == regime


def test_normalize_regime_rejects_digits_int_cannot_read() -> None:
    with pytest.raises(ValueError):
        sm.normalize_regime("\u00b2")  # SUPERSCRIPT TWO: isdigit() but not int()


# --------------------------------------------------------------------------- wire form

SPEC_KEY_ORDER = [
    "market_price",
    "now",
    "orders",
    "recovery_orders",
    "completed_cycles",
    "cycle_a",
    "cycle_b",
    "next_order_id",
    "next_recovery_id",
    "total_profit",
    "total_settled_usd",
    "total_fees",
    "today_realized_loss",
    "total_round_trips",
    "s2_entered_at",
    "last_price_update_at",
    "consecutive_losses_a",
    "consecutive_losses_b",
    "cooldown_until_a",
    "cooldown_until_b",
    "long_only",
    "short_only",
    "mode_source",
    "consecutive_refreshes_a",
    "consecutive_refreshes_b",
    "last_refresh_direction_a",
    "last_refresh_direction_b",
    "refresh_cooldown_until_a",
    "refresh_cooldown_until_b",
    "profit_pct_runtime",
]


def test_to_dict_key_order_and_nested_field_order() -> None:
    scenario = json.loads((FIXTURES / "recovery_eviction_with_regime.json").read_text())
    state, _ = run_scenario(scenario)
    wire = sm.to_dict(state)
    assert list(wire) == SPEC_KEY_ORDER
    assert list(wire["orders"][0]) == [f.name for f in dataclasses.fields(sm.OrderState)]
    assert list(wire["recovery_orders"][0]) == [f.name for f in dataclasses.fields(sm.RecoveryOrder)]
    assert list(wire["completed_cycles"][0]) == [f.name for f in dataclasses.fields(sm.CycleRecord)]
    assert list(wire["completed_cycles"][0])[-4:] == [
        "entry_time",
        "exit_time",
        "from_recovery",
        "regime_at_entry",
    ]


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[p.stem for p in FIXTURE_FILES])
def test_to_dict_from_dict_round_trip_on_fixture_states(path: Path) -> None:
    scenario = json.loads(path.read_text())
    state, _ = run_scenario(scenario)
    wire = sm.to_dict(state)
    assert sm.from_dict(wire) == state
    assert sm.to_dict(sm.from_dict(wire)) == wire


def test_actions_convert_with_asdict_in_spec_field_order() -> None:
    book = sm.BookCycleAction("A", 1, 1.0, 2.0, 1.0)
    assert list(dataclasses.asdict(book)) == [
        "trade_id",
        "cycle",
        "net_profit",
        "gross_profit",
        "fees",
        "settled_usd",
        "from_recovery",
    ]
    place = sm.PlaceOrderAction(1, "buy", "entry", 1.0, 13.0, "B", 1)
    assert dataclasses.asdict(place)["post_only"] is True and dataclasses.asdict(place)["reason"] == ""


# --------------------------------------------------------------------------- identity and history


def bootstrapped(cfg: sm.EngineConfig | None = None, market: float = 0.1) -> sm.PairState:
    state, actions = sm.bootstrap_entries(
        sm.PairState(market_price=market, now=1000.0), cfg or sm.EngineConfig(), 2.0
    )
    assert len(actions) == 2
    return state


def test_quiet_price_tick_keeps_orders_and_history_identical() -> None:
    cfg = sm.EngineConfig()
    state = bootstrapped(cfg)
    state, _ = sm.transition(
        state, sm.FillEvent(2, "", "sell", state.orders[1].price, 13.0, 0.0, 1001.0), cfg, 2.0
    )
    exit_ = next(o for o in state.orders if o.role == "exit")
    state, _ = sm.transition(
        state, sm.FillEvent(exit_.local_id, "", "buy", exit_.price, 13.0, 0.0, 1002.0), cfg, 2.0
    )
    assert len(state.completed_cycles) == 1

    after, actions = sm.transition(state, sm.PriceTick(price=0.1001, timestamp=1003.0), cfg, 2.0)
    assert actions == []
    assert after is not state
    assert after.orders is state.orders
    assert after.completed_cycles is state.completed_cycles
    assert after.recovery_orders is state.recovery_orders
    assert (after.market_price, after.now, after.last_price_update_at) == (0.1001, 1003.0, 1003.0)

    timer, _ = sm.transition(after, sm.TimerTick(timestamp=1004.0), cfg, 2.0)
    assert timer.orders is after.orders and timer.completed_cycles is after.completed_cycles


def test_booking_appends_to_history_and_keeps_untouched_orders_identical() -> None:
    cfg = sm.EngineConfig()
    buy_entry = entry_order(2, "buy", 99.8, "B")
    state = sm.PairState(
        market_price=100.0,
        now=1000.0,
        orders=(exit_order(1, "buy", 100.0, "A", entry_price=101.0), buy_entry),
    )
    state = dataclasses.replace(state, next_order_id=3)
    old_history = state.completed_cycles
    after, _ = sm.transition(state, sm.FillEvent(1, "", "buy", 100.0, 13.0, 0.01, 1001.0), cfg, 2.0)
    assert after.orders[0] is buy_entry
    assert len(after.completed_cycles) == len(old_history) + 1
    assert state.completed_cycles is old_history  # the old state is untouched


def test_unknown_fill_only_moves_the_clock() -> None:
    state = bootstrapped()
    after, actions = sm.transition(
        state, sm.FillEvent(99, "", "buy", 1.0, 1.0, 0.0, 2000.0), sm.EngineConfig(), 2.0
    )
    assert actions == [] and after.now == 2000.0 and after.orders is state.orders


# --------------------------------------------------------------------------- tricky transitions


def s2_state(buy_price: float, sell_price: float, market: float = 100.0) -> sm.PairState:
    return sm.PairState(
        market_price=market,
        now=900.0,
        orders=(exit_order(1, "buy", buy_price, "A", txid="TA"), exit_order(2, "sell", sell_price, "B")),
        next_order_id=3,
        s2_entered_at=0.0,
    )


def test_s2_timeout_equal_distances_orphan_the_sell_exit() -> None:
    cfg = sm.EngineConfig(s2_orphan_after_sec=300.0)
    state, actions = sm.transition(s2_state(90.0, 110.0), sm.TimerTick(timestamp=1000.0), cfg, 2.0)
    assert actions[0] == sm.OrphanOrderAction(2, 1, "s2_timeout")
    assert state.recovery_orders[0].side == "sell" and state.recovery_orders[0].trade_id == "B"
    assert state.cycle_b == 2 and state.cycle_a == 1
    assert state.s2_entered_at is None
    assert sm.derive_phase(state) == "S1a"


def test_s2_timeout_orphans_the_strictly_further_buy_exit() -> None:
    cfg = sm.EngineConfig(s2_orphan_after_sec=300.0)
    state, actions = sm.transition(s2_state(89.0, 110.0), sm.TimerTick(timestamp=1000.0), cfg, 2000.0)
    assert actions[0] == sm.OrphanOrderAction(1, 1, "s2_timeout")
    assert state.recovery_orders[0].txid == "TA"
    assert [a.reason for a in actions[1:]] == ["orphan_A"]


def test_s2_timer_before_timeout_keeps_the_flag() -> None:
    cfg = sm.EngineConfig(s2_orphan_after_sec=3000.0)
    state, actions = sm.transition(s2_state(90.0, 110.0), sm.TimerTick(timestamp=1000.0), cfg, 2.0)
    assert actions == [] and state.s2_entered_at == 0.0


def test_sticky_mode_timer_only_clears_the_s2_flag() -> None:
    cfg = sm.EngineConfig(s2_orphan_after_sec=1.0, sticky_mode_enabled=True)
    state, actions = sm.transition(s2_state(90.0, 110.0), sm.TimerTick(timestamp=5000.0), cfg, 2.0)
    assert actions == [] and state.s2_entered_at is None and len(state.orders) == 2


def recovery(recovery_id: int, price: float, orphaned_at: float, txid: str = "") -> sm.RecoveryOrder:
    return sm.RecoveryOrder(recovery_id, "sell", price, 13.0, "B", 1, 99.0, orphaned_at, txid=txid)


def test_recovery_cap_evicts_furthest_then_oldest_then_lowest_id() -> None:
    # market 100: distances 5, 5, 5, 1 -> the three ties rank by orphaned_at then recovery_id.
    recoveries = (
        recovery(7, 105.0, 50.0, txid="T7"),
        recovery(3, 95.0, 50.0),
        recovery(5, 101.0, 10.0, txid="T5"),
        recovery(4, 105.0, 20.0, txid="T4"),
    )
    state = sm.PairState(
        market_price=100.0,
        now=1000.0,
        orders=(exit_order(1, "buy", 90.0, "A", entry_filled_at=100.0), entry_order(2, "buy", 99.8, "B")),
        recovery_orders=recoveries,
        next_order_id=3,
        next_recovery_id=8,
    )
    cfg = sm.EngineConfig(s1_orphan_after_sec=600.0, max_recovery_slots=3)
    after, actions = sm.transition(state, sm.TimerTick(timestamp=1000.0), cfg, 2000.0)
    # overflow = 4 + 1 - 3 = 2: evict id 4 (furthest, oldest) and id 3 (tie on distance and age with 7).
    assert [r.recovery_id for r in after.recovery_orders] == [7, 5, 8]
    kinds = [(type(a).__name__, getattr(a, "local_id", None)) for a in actions]
    assert kinds == [
        ("BookCycleAction", None),  # id 3 first (original list order), no txid -> no cancel
        ("CancelOrderAction", -4),
        ("BookCycleAction", None),
        ("OrphanOrderAction", 1),
        ("PlaceOrderAction", 3),
    ]
    assert actions[1] == sm.CancelOrderAction(-4, "T4", "recovery_cap_evict_priority")
    assert [c.exit_price for c in after.completed_cycles] == [100.0, 100.0]
    assert all(c.from_recovery for c in after.completed_cycles)
    assert after.total_round_trips == 2


def test_recovery_cap_with_no_market_books_at_recovery_price_then_entry_price() -> None:
    recoveries = (
        sm.RecoveryOrder(1, "sell", 0.0, 13.0, "B", 1, 99.0, 5.0),
        sm.RecoveryOrder(2, "sell", 0.0, 13.0, "B", 1, 0.0, 6.0),
    )
    state = sm.PairState(
        market_price=0.0,  # below the sell exit: it has moved away
        now=1000.0,
        orders=(exit_order(1, "sell", 1.0, "B", entry_filled_at=1.0),),
        recovery_orders=recoveries,
        next_recovery_id=3,
        short_only=True,
    )
    cfg = sm.EngineConfig(s1_orphan_after_sec=0.0, max_recovery_slots=1)
    after, _ = sm.transition(state, sm.TimerTick(timestamp=1000.0), cfg, 2.0)
    assert [c.exit_price for c in after.completed_cycles] == [99.0, 0.0]
    # DOGE_REDUCER.md section 9: the division first (99.0 * 13.0 * 0.25 / 100 is 3.2175, one ulp off)
    assert [c.exit_fee for c in after.completed_cycles] == [99.0 * 13.0 * (0.25 / 100.0), 0.0]
    assert [c.entry_time for c in after.completed_cycles] == [5.0, 6.0]  # orphaned_at stands in for 0
    assert [r.recovery_id for r in after.recovery_orders] == [3]


def losing_b_exit(local_id: int) -> sm.OrderState:
    return sm.OrderState(
        local_id, "sell", "exit", 0.1008, 13.0, "B", 1, entry_price=0.1008, entry_filled_at=900.0
    )


def test_loss_cooldown_blocks_the_followup_and_a_win_resets_the_count() -> None:
    cfg = sm.EngineConfig(loss_cooldown_start=2, loss_cooldown_sec=900.0, loss_backoff_start=1)
    state = sm.PairState(
        market_price=0.1, now=1000.0, orders=(losing_b_exit(1),), next_order_id=2, long_only=True
    )
    state, actions = sm.transition(state, sm.FillEvent(1, "", "sell", 0.099, 13.0, 0.0, 1000.0), cfg, 2.0)
    assert state.consecutive_losses_b == 1 and state.cooldown_until_b == 0.0
    entry = state.orders[0]
    assert actions[-1].reason == "cycle_complete"
    # one loss with backoff from 1: distance 0.2 * 1.5 below market.
    assert entry.price == round(0.1 * (1 - 0.2 * 1.5 / 100), 6)

    state = dataclasses.replace(state, orders=(losing_b_exit(5),))
    state, actions = sm.transition(state, sm.FillEvent(5, "", "sell", 0.099, 13.0, 0.0, 1100.0), cfg, 2.0)
    assert state.consecutive_losses_b == 2
    assert state.cooldown_until_b == 1100.0 + 900.0
    assert [type(a).__name__ for a in actions] == ["BookCycleAction"]
    assert state.orders == () and state.cycle_b == 2
    assert state.today_realized_loss == pytest.approx(2 * (13.0 * (0.1008 - 0.099)))

    win = dataclasses.replace(losing_b_exit(9), entry_price=0.09)
    state = dataclasses.replace(state, orders=(win,))
    state, _ = sm.transition(state, sm.FillEvent(9, "", "sell", 0.1, 13.0, 0.0, 1200.0), cfg, 2.0)
    assert state.consecutive_losses_b == 0
    assert state.cooldown_until_b == 2000.0  # a win does not shorten a running cooldown


def test_reentry_base_cooldown_applies_on_every_booking() -> None:
    cfg = sm.EngineConfig(reentry_base_cooldown_sec=60.0)
    state = sm.PairState(market_price=0.1, now=1000.0, orders=(losing_b_exit(1),), next_order_id=2)
    state, actions = sm.transition(state, sm.FillEvent(1, "", "sell", 0.2, 13.0, 0.0, 1000.0), cfg, 2.0)
    assert state.cooldown_until_b == 1060.0 and state.consecutive_losses_b == 0
    assert [type(a).__name__ for a in actions] == ["BookCycleAction"]  # now < cooldown: no follow-up


def refresh_state(**fields: Any) -> sm.PairState:
    return sm.PairState(
        market_price=0.1,
        now=1000.0,
        orders=(entry_order(1, "sell", 0.1002, "A", txid="TX1"),),
        next_order_id=2,
        short_only=True,
        **fields,
    )


def test_refresh_replaces_a_stale_entry_and_counts_the_direction() -> None:
    cfg = sm.EngineConfig(refresh_pct=0.5, max_consecutive_refreshes=3)
    state, actions = sm.transition(refresh_state(), sm.PriceTick(price=0.103, timestamp=1001.0), cfg, 2.0)
    assert actions[0] == sm.CancelOrderAction(1, "TX1", "stale_entry")
    assert actions[1] == sm.PlaceOrderAction(
        2, "sell", "entry", 0.103206, 19.0, "A", 1, True, "refresh_entry"
    )
    assert (state.consecutive_refreshes_a, state.last_refresh_direction_a) == (1, "up")
    state, _ = sm.transition(state, sm.PriceTick(price=0.106, timestamp=1002.0), cfg, 2.0)
    assert state.consecutive_refreshes_a == 2
    state, _ = sm.transition(state, sm.PriceTick(price=0.103, timestamp=1003.0), cfg, 2.0)
    assert (state.consecutive_refreshes_a, state.last_refresh_direction_a) == (1, "down")


def test_refresh_anti_chase_cooldown_then_reset() -> None:
    cfg = sm.EngineConfig(refresh_pct=0.5, max_consecutive_refreshes=2, refresh_cooldown_sec=300.0)
    state = refresh_state(consecutive_refreshes_a=1, last_refresh_direction_a="up")
    capped, actions = sm.transition(state, sm.PriceTick(price=0.103, timestamp=1001.0), cfg, 2.0)
    assert actions == [] and capped.orders is state.orders
    assert (capped.consecutive_refreshes_a, capped.refresh_cooldown_until_a) == (2, 1301.0)

    waiting, actions = sm.transition(capped, sm.PriceTick(price=0.104, timestamp=1300.0), cfg, 2.0)
    assert actions == [] and waiting.refresh_cooldown_until_a == 1301.0

    reset, actions = sm.transition(waiting, sm.PriceTick(price=0.105, timestamp=1301.0), cfg, 2.0)
    assert [type(a).__name__ for a in actions] == ["CancelOrderAction", "PlaceOrderAction"]
    assert (reset.consecutive_refreshes_a, reset.refresh_cooldown_until_a) == (1, 0.0)
    assert reset.last_refresh_direction_a == "up"


def test_refresh_touches_at_most_one_entry_per_tick() -> None:
    cfg = sm.EngineConfig(refresh_pct=0.5)
    state = bootstrapped(cfg)
    after, actions = sm.transition(state, sm.PriceTick(price=0.12, timestamp=1001.0), cfg, 2.0)
    assert [type(a).__name__ for a in actions] == ["CancelOrderAction", "PlaceOrderAction"]
    assert actions[0].local_id == state.orders[0].local_id
    assert after.consecutive_refreshes_b == 1 and after.consecutive_refreshes_a == 0


def test_entry_fill_places_exit_with_regime_and_runtime_profit() -> None:
    cfg = sm.EngineConfig(profit_pct=1.0)
    state = sm.PairState(
        market_price=100.0,
        now=1000.0,
        orders=(entry_order(1, "buy", 99.8, "B", regime_at_entry=2),),
        next_order_id=4,
        profit_pct_runtime=0.0,  # 0 falls back to cfg.profit_pct
    )
    after, actions = sm.transition(state, sm.FillEvent(1, "T", "buy", 99.8, 13.0, 0.05, 1001.0), cfg, 2.0)
    exit_ = after.orders[0]
    assert exit_ == sm.OrderState(
        4, "sell", "exit", round(99.8 * (1 + 1.0 / 100), 6), 13.0, "B", 1, "", 1001.0, 99.8, 0.05, 1001.0, 2
    )
    assert actions == [
        sm.PlaceOrderAction(4, "sell", "exit", exit_.price, 13.0, "B", 1, True, "entry_fill_exit")
    ]
    assert after.total_fees == 0.05 and after.next_order_id == 5


def test_order_sizes_override_the_default_size_per_trade() -> None:
    cfg = sm.EngineConfig()
    _, actions = sm.bootstrap_entries(sm.PairState(market_price=0.1, now=0.0), cfg, 2.0, {"A": 3.0})
    volumes = {a.trade_id: a.volume for a in actions}
    assert volumes == {"A": round(3.0 / round(0.1 * 1.002, 6)), "B": round(2.0 / round(0.1 * 0.998, 6))}


def test_bootstrap_respects_long_and_short_only() -> None:
    cfg = sm.EngineConfig(entry_pct_a=0.5)
    state, actions = sm.bootstrap_entries(sm.PairState(market_price=0.1, now=5.0), cfg, 2.0)
    assert [(a.side, a.trade_id, a.local_id, a.reason) for a in actions] == [
        ("buy", "B", 1, "bootstrap"),
        ("sell", "A", 2, "bootstrap"),
    ]
    assert actions[1].price == round(0.1 * (1 + 0.5 / 100), 6)
    assert sm.check_invariants(state) == []
    long_state, long_actions = sm.bootstrap_entries(
        sm.PairState(market_price=0.1, now=5.0, long_only=True), cfg, 2.0
    )
    assert [a.side for a in long_actions] == ["buy"] and sm.check_invariants(long_state) == []
    short_state, short_actions = sm.bootstrap_entries(
        sm.PairState(market_price=0.1, now=5.0, short_only=True), cfg, 2.0
    )
    assert [a.side for a in short_actions] == ["sell"] and sm.check_invariants(short_state) == []


def test_apply_order_regime_and_txid_binding_touch_only_the_matching_order() -> None:
    state = bootstrapped()
    tagged = sm.apply_order_regime_at_entry(state, 2, "bullish")
    assert tagged.orders[1].regime_at_entry == 2 and tagged.orders[0] is state.orders[0]
    assert sm.apply_order_regime_at_entry(tagged, 2, 2) is tagged
    assert sm.apply_order_regime_at_entry(state, 42, 1) is state
    bound = sm.bind_order_txid(state, 1, "TX-B")
    assert bound.orders[0].txid == "TX-B" and bound.orders[1] is state.orders[1]
    with_recovery = dataclasses.replace(state, recovery_orders=(recovery(1, 1.0, 0.0),))
    assert sm.bind_recovery_txid(with_recovery, 1, "R").recovery_orders[0].txid == "R"


def test_check_invariants_reports_in_spec_order() -> None:
    bad = sm.PairState(
        market_price=1.0,
        now=0.0,
        orders=(
            sm.OrderState(1, "buy", "exit", 1.0, 0.0, "A", 0),
            sm.OrderState(1, "buy", "entry", 1.0, 13.0, "B", 1),
            sm.OrderState(2, "sell", "entry", 1.0, 13.0, "A", 1),
        ),
        cycle_a=0,
        s2_entered_at=5.0,
    )
    assert sm.check_invariants(bad) == [
        "duplicate order local_id",
        "S1a must be one buy exit + one buy entry",
        "s2_entered_at must be null outside S2",
        "order cycle must be >= 1",
        "exit must carry entry_price",
        "order volume must be > 0",
        "cycle counters must be >= 1",
    ]


# --------------------------------------------------------------------------- expected.py


def test_check_expected_reports_mismatches_unknown_keys_and_tolerates_float_noise() -> None:
    state = sm.to_dict(bootstrapped())
    assert check_expected({"phase": "S0", "now": 1000.0 + 1e-12, "next_order_id": 3}, state, [], []) == []
    assert check_expected({"phase": "S2"}, state, [], []) == ["phase: expected 'S2', got 'S0'"]
    assert check_expected({"frobnicate": 1}, state, [], []) == ["frobnicate: unknown expected key"]
    assert check_expected({"long_only": 0}, state, [], []) != []  # bools only equal bools
    assert check_expected({"last_cycle_settled_usd": 1.0}, state, [], []) != []
    assert check_expected({"invariants": ["x"]}, state, [], []) != []


def test_compute_expected_is_satisfied_by_its_own_run() -> None:
    assert FIXTURE_FILES
    for path in FIXTURE_FILES:
        scenario = json.loads(path.read_text())
        state, steps = run_scenario(scenario)
        wire, violations = sm.to_dict(state), sm.check_invariants(state)
        block = compute_expected(wire, steps, violations)
        assert block["phase"] == phase_of(wire) == sm.derive_phase(state)
        assert check_expected(block, wire, steps, violations) == []


# --------------------------------------------------------------------------- property


@st.composite
def event_runs(draw: st.DrawFn) -> tuple[sm.PairState, list[tuple[str, float]]]:
    steps = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["price", "timer", "fill", "rfill", "rcancel"]),
                st.floats(min_value=-0.05, max_value=0.05),
            ),
            max_size=40,
        )
    )
    return bootstrapped(RUN_CFG), steps


RUN_CFG = sm.EngineConfig(
    s1_orphan_after_sec=30.0, s2_orphan_after_sec=30.0, max_recovery_slots=2, loss_cooldown_start=2
)


def play(state: sm.PairState, steps: list[tuple[str, float]]) -> sm.PairState:
    t = state.now
    for kind, x in steps:
        t += 20.0
        if kind == "price":
            event: sm.Event = sm.PriceTick(price=state.market_price * (1 + x), timestamp=t)
        elif kind == "timer":
            event = sm.TimerTick(timestamp=t)
        elif kind == "fill" and state.orders:
            o = state.orders[int(abs(x) * 1000) % len(state.orders)]
            event = sm.FillEvent(o.local_id, o.txid, o.side, o.price * (1 + x), o.volume, 0.001, t)
        elif kind == "rfill" and state.recovery_orders:
            r = state.recovery_orders[0]
            event = sm.RecoveryFillEvent(r.recovery_id, r.txid, r.side, r.price * (1 + x), r.volume, 0.001, t)
        elif kind == "rcancel" and state.recovery_orders:
            event = sm.RecoveryCancelEvent(state.recovery_orders[-1].recovery_id, "", t)
        else:
            event = sm.TimerTick(timestamp=t)
        state, _ = sm.transition(state, event, RUN_CFG, 2.0)
    return state


@settings(max_examples=200, deadline=None)
@given(event_runs())
def test_wire_round_trip_of_reachable_states(run: tuple[sm.PairState, list[tuple[str, float]]]) -> None:
    state = play(*run)
    wire = sm.to_dict(state)
    assert sm.to_dict(sm.from_dict(wire)) == wire
    assert sm.from_dict(wire) == state
