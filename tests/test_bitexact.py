"""DOGE_REDUCER.md section 9 ("Bit-exact details"), item by item, for the reference pair.

Each item has a test on the Python reference (typed path and/or the lenient ``from_dict`` path), and every
wire-form case is then run through the Haskell port over msgpack and over the JSON-lines ``--server``
transport and compared with the reference *type for type and bit for bit* (``same``: an int is not a
float, -0.0 is not 0.0, NaN equals NaN, keys in order), as shadowdiff's exact rule now compares too
(only key order is stricter here).

A known, documented limit of the typed port: it carries most of an event's numbers as doubles, so where
the module keeps an event's *int* unchanged in the state (an exit's ``entry_price``/``volume``/times after
an entry fill with an int price/volume/timestamp, ``now`` after an int timestamp, a RecoveryFillEvent's
int price in the cycle record) the port answers the equal float, and shadowdiff's exact rule reports it
(``--numeric-equality`` does not). What the strategies draw as ints is kept as sent: a PriceTick's price
(``market_price``) and a fill's fee (the exit order's ``entry_fee``, and the recovery it may become).
Every value that section 9 says is ``float()``ed, and every booking field, is typed as the module types
it; the cases below send ints only where the module ``float()``s them.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from shadowdiff_doge.context import doge_context
from shadowdiff_doge.domain import DogeDomain
from shadowdiff_doge.reference import state_machine as sm

from shadowdiff.model import Event
from shadowdiff.shadow.client import SubprocessReducer

NAN = math.nan
INF = math.inf


def same(a: Any, b: Any) -> bool:
    """Exact wire identity: types, key order, float bits (NaN == NaN, -0.0 != 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack(">d", a) == struct.pack(">d", b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    if type(a) is not type(b):
        return f"{path}: {a!r} ({type(a).__name__}) vs {b!r} ({type(b).__name__})"
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"{path}: keys {list(a)} vs {list(b)}"
        for k in a:
            found = first_difference(a[k], b[k], f"{path}.{k}")
            if found:
                return found
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if same(a, b) else f"{path}: {a!r} vs {b!r}"


# ----------------------------------------------------------------------------- wire-form inputs


def order(lid: int, side: str, role: str, price: float, trade: str, **kw: Any) -> dict[str, Any]:
    return {
        "local_id": lid,
        "side": side,
        "role": role,
        "price": price,
        "volume": 13.0,
        "trade_id": trade,
        "cycle": 1,
        "txid": "",
        "placed_at": 1000.0,
        **kw,
    }


def recovery(rid: int, **kw: Any) -> dict[str, Any]:
    base = {
        "recovery_id": rid,
        "side": "buy",
        "price": 90.0,
        "volume": 13.0,
        "trade_id": "A",
        "cycle": 1,
        "entry_price": 101.0,
        "orphaned_at": 100.0 + rid,
        "entry_fee": 0.02,
        "txid": f"RX-{rid}",
    }
    return {**base, **kw}


def state(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "market_price": 100.0,
        "now": 1000.0,
        "orders": [order(1, "buy", "entry", 99.8, "B"), order(2, "sell", "entry", 100.2, "A")],
        "next_order_id": 3,
        "next_recovery_id": 10,
    }
    return {**base, **kw}


# S1a: a buy exit (trade A) that has moved away (market above it) and is old enough with s1 600
S1A_ORDERS = [
    order(1, "buy", "exit", 99.0, "A", entry_price=101.0, entry_filled_at=100.0, entry_fee=0.01),
    order(2, "buy", "entry", 99.8, "B"),
]
S1_CFG = {"s1_orphan_after_sec": 600.0}


def tick(t: float) -> Event:
    return Event("TimerTick", {"timestamp": t})


def price(p: float, t: float = 1001.0) -> Event:
    return Event("PriceTick", {"price": p, "timestamp": t})


def fill(lid: int, p: float, fee: Any = 0.01, t: float = 1001.0, volume: float = 13.0) -> Event:
    return Event(
        "FillEvent",
        {
            "order_local_id": lid,
            "txid": "TX",
            "side": "buy",
            "price": p,
            "volume": volume,
            "fee": fee,
            "timestamp": t,
        },
    )


def rfill(rid: int, p: float, fee: Any = 0.01, t: float = 1001.0) -> Event:
    return Event(
        "RecoveryFillEvent",
        {
            "recovery_id": rid,
            "txid": "TX",
            "side": "buy",
            "price": p,
            "volume": 13.0,
            "fee": fee,
            "timestamp": t,
        },
    )


Case = tuple[dict[str, Any], Event, dict[str, Any], float, dict[str, Any] | None]


def case(
    st: dict[str, Any],
    ev: Event,
    cfg: dict[str, Any] | None = None,
    size: float = 2.0,
    sizes: dict[str, Any] | None = None,
) -> Case:
    return st, ev, cfg or {}, size, sizes


def reference(c: Case) -> dict[str, Any]:
    """The reference's answer in wire form: the next state (to_dict), typed actions, violations."""
    st, ev, cfg, size, sizes = copy.deepcopy(c)
    nxt, actions = sm.transition(
        sm.from_dict(st), getattr(sm, ev.type)(**ev.payload), sm.EngineConfig(**cfg), size, sizes
    )
    return {
        "state": sm.to_dict(nxt),
        "actions": [{"type": type(a).__name__, "payload": dataclasses.asdict(a)} for a in actions],
        "violations": sm.check_invariants(nxt),
    }


def book(answer: dict[str, Any]) -> dict[str, Any]:
    return answer["state"]["completed_cycles"][-1]


# name -> a wire-form case, one (or more) per item of section 9
CASES: dict[str, Case] = {
    # Floating point and types
    "evict_fee_grouping": case(
        state(market_price=99.5, orders=S1A_ORDERS, recovery_orders=[recovery(1, volume=31.0)]),
        tick(1000.0),
        {**S1_CFG, "max_recovery_slots": 1},
    ),
    "int_fee_exit_fill_books_floats": case(
        state(orders=[order(1, "sell", "exit", 101.0, "B", entry_price=100.0, entry_fee=0.01)]),
        fill(1, 101.0, 0),
    ),
    "int_fee_recovery_fill_books_floats": case(state(recovery_orders=[recovery(1)]), rfill(1, 99.0, 0)),
    # what the module keeps as sent (no float()): an int price in market_price, an entry fill's int fee
    # on the exit order it places (the strategies draw both; the exact diff sees 100 vs 100.0)
    "int_price_tick_kept_as_int": case(state(), price(100)),  # type: ignore[arg-type]
    "int_fee_entry_fill_kept_on_the_exit": case(state(), fill(1, 99.8, 0)),
    "int_entry_fee_in_raw_state_books_floats": case(
        state(orders=[order(1, "buy", "exit", 99.0, "A", entry_price=101.0, entry_fee=0)]), fill(1, 99.0, 0)
    ),
    "today_realized_loss_negative_zero_reassigned": case(
        state(today_realized_loss=-0.0, orders=[order(1, "sell", "exit", 101.0, "B", entry_price=100.0)]),
        fill(1, 101.0),
    ),
    "today_realized_loss_negative_zero_kept_without_booking": case(
        state(today_realized_loss=-0.0), tick(1001.0)
    ),
    "nan_price_never_refreshes": case(
        state(orders=[order(1, "buy", "entry", 90.0, "B"), order(2, "sell", "entry", 100.2, "A")]), price(NAN)
    ),
    "negative_zero_market_no_refresh": case(
        state(orders=[order(1, "buy", "entry", 90.0, "B"), order(2, "sell", "entry", 100.2, "A")]),
        price(-0.0),
    ),
    "evict_at_no_market_takes_recovery_price": case(
        state(
            market_price=0.0,
            short_only=True,
            orders=[order(1, "sell", "exit", 1.0, "B", entry_price=0.9, entry_filled_at=1.0)],
            recovery_orders=[recovery(1, side="sell", trade_id="B", price=0.5, entry_filled_at=-3.0)],
        ),
        tick(1000.0),
        {"s1_orphan_after_sec": 0.0, "max_recovery_slots": 1},
    ),
    "evict_nan_volume_fee_is_max_zero_nan": case(
        state(market_price=99.5, orders=S1A_ORDERS, recovery_orders=[recovery(1, volume=NAN)]),
        tick(1000.0),
        {**S1_CFG, "max_recovery_slots": 1},
    ),
    "infinite_orphan_timeouts": case(
        state(market_price=99.5, orders=S1A_ORDERS, s2_entered_at=None),
        tick(1e9),
        {"s1_orphan_after_sec": INF, "s2_orphan_after_sec": INF},
    ),
    # Trade ids other than A and B
    "entry_distance_other_trade_uses_entry_pct": case(
        state(orders=[order(1, "buy", "entry", 90.0, "C"), order(2, "sell", "entry", 100.2, "A")]),
        price(100.0),
        {"entry_pct_b": 0.7, "entry_pct_a": 0.3},
        2000.0,
    ),
    "loss_count_buy_other_trade_uses_losses_a": case(
        state(
            orders=[order(1, "buy", "entry", 90.0, "C"), order(2, "sell", "entry", 100.2, "A")],
            consecutive_losses_a=4,
            consecutive_losses_b=0,
        ),
        price(100.0),
        None,
        2000.0,
    ),
    "loss_count_sell_other_trade_uses_losses_b": case(
        state(
            orders=[order(1, "buy", "entry", 99.8, "B"), order(2, "sell", "entry", 110.0, "b")],
            consecutive_losses_a=0,
            consecutive_losses_b=4,
        ),
        price(100.0),
        None,
        2000.0,
    ),
    "orphan_other_trade_takes_order_sizes_b": case(
        state(
            market_price=100.5,
            orders=[order(1, "sell", "exit", 101.0, "C", entry_price=99.0, entry_filled_at=100.0)],
        ),
        tick(1000.0),
        {**S1_CFG, "max_recovery_slots": 5},
        2000.0,
        {"A": 3000.0, "B": 5000.0},
    ),
    "exit_fill_other_trade_takes_its_own_size": case(
        state(orders=[order(1, "sell", "exit", 101.0, "C", entry_price=100.0)]),
        fill(1, 101.0),
        None,
        2000.0,
        {"A": 3000.0, "B": 5000.0},
    ),
    # Ids and lists
    "fill_removes_every_order_with_the_id": case(
        state(orders=[order(1, "buy", "entry", 99.8, "B"), order(1, "sell", "entry", 100.2, "A")]),
        fill(1, 99.8),
    ),
    "recovery_fill_books_first_removes_all": case(
        state(recovery_orders=[recovery(1, price=90.0), recovery(2), recovery(1, price=80.0, entry_fee=0.5)]),
        rfill(1, 99.0),
    ),
    "eviction_selects_ids": case(
        state(
            market_price=99.5,
            orders=S1A_ORDERS,
            recovery_orders=[recovery(1, price=50.0), recovery(2, price=98.0), recovery(1, price=97.0)],
        ),
        tick(1000.0),
        {**S1_CFG, "max_recovery_slots": 3},
    ),
    "odd_role_is_an_exit_odd_side_takes_sell_branch": case(
        state(orders=[order(1, "BUY", "EXIT", 99.0, "A", entry_price=101.0)]), fill(1, 99.0)
    ),
    "odd_side_entry_fill_gets_a_buy_exit": case(
        state(orders=[order(1, "BUY", "entry", 99.8, "B")]), fill(1, 99.8)
    ),
    # Events and calls; config
    "max_with_nan_cooldown_kept": case(
        state(cooldown_until_b=NAN, orders=[order(1, "sell", "exit", 101.0, "B", entry_price=100.0)]),
        fill(1, 101.0),
        {"reentry_base_cooldown_sec": 30.0},
    ),
    "sticky_string_false_is_truthy": case(
        state(
            orders=[
                order(1, "buy", "exit", 99.0, "A", entry_price=101.0),
                order(2, "sell", "exit", 101.0, "B", entry_price=99.0),
            ],
            s2_entered_at=10.0,
        ),
        tick(1001.0),
        {"sticky_mode_enabled": "false"},
    ),
    "max_recovery_slots_float": case(
        state(market_price=99.5, orders=S1A_ORDERS, recovery_orders=[recovery(1), recovery(2)]),
        tick(1000.0),
        {**S1_CFG, "max_recovery_slots": 2.0},
    ),
    "max_recovery_slots_string": case(
        state(market_price=99.5, orders=S1A_ORDERS, recovery_orders=[recovery(1), recovery(2)]),
        tick(1000.0),
        {**S1_CFG, "max_recovery_slots": "2"},
    ),
    "recovery_entry_time_negative_takes_orphaned_at": case(
        state(recovery_orders=[recovery(1, entry_filled_at=-5.0)]), rfill(1, 99.0)
    ),
    "recovery_entry_time_nan_takes_orphaned_at": case(
        state(recovery_orders=[recovery(1, entry_filled_at=NAN)]), rfill(1, 99.0)
    ),
    "recovery_entry_time_positive_kept": case(
        state(recovery_orders=[recovery(1, entry_filled_at=7.0)]), rfill(1, 99.0)
    ),
}


# ----------------------------------------------------------------------------- the reference, item by item


def test_eviction_fee_divides_first() -> None:
    got = reference(CASES["evict_fee_grouping"])
    cycle = book(got)
    assert cycle["exit_fee"] == 99.5 * 31.0 * (0.25 / 100.0) != 99.5 * 31.0 * 0.25 / 100
    assert got["actions"][0]["type"] == "CancelOrderAction" and got["actions"][1]["type"] == "BookCycleAction"


@pytest.mark.parametrize(
    "name",
    [
        "int_fee_exit_fill_books_floats",
        "int_fee_recovery_fill_books_floats",
        "int_entry_fee_in_raw_state_books_floats",
    ],
)
def test_booking_floats_both_fees(name: str) -> None:
    got = reference(CASES[name])
    cycle = book(got)
    for key in ("entry_fee", "exit_fee", "quote_fee", "fees", "settled_usd", "net_profit"):
        assert type(cycle[key]) is float, (key, cycle[key])
    payload = got["actions"][0]["payload"]
    assert all(type(payload[k]) is float for k in ("fees", "settled_usd", "net_profit"))
    assert type(got["state"]["total_fees"]) is float  # 0.0 + raw fee


def test_booking_on_the_typed_path_floats_fees_and_total_fees_adds_the_raw_fee() -> None:
    exit_order = sm.OrderState(1, "sell", "exit", 101.0, 13.0, "B", 1, entry_price=100.0, entry_fee=0)
    st = sm.PairState(market_price=100.0, now=1000.0, orders=(exit_order,), next_order_id=2, total_fees=0)
    nxt, _ = sm.transition(st, sm.FillEvent(1, "TX", "sell", 101, 13.0, 0, 1001.0), sm.EngineConfig(), 2.0)
    cycle = nxt.completed_cycles[-1]
    assert (cycle.entry_fee, cycle.exit_fee, cycle.quote_fee, cycle.fees) == (0.0, 0.0, 0.0, 0.0)
    assert all(type(x) is float for x in (cycle.entry_fee, cycle.exit_fee, cycle.quote_fee, cycle.fees))
    assert type(nxt.total_fees) is int  # the raw fee added to a raw 0: no float() there
    assert type(cycle.exit_price) is int  # the fill price is not float()ed on this path


def test_eviction_floats_price_volume_entry_fee_and_entry_time_recovery_fill_does_not() -> None:
    rec = sm.RecoveryOrder(1, "buy", 90, 13, "A", 1, 101, 100, entry_fee=0, entry_filled_at=7)
    ex = sm.OrderState(5, "buy", "exit", 99.0, 13.0, "A", 1, entry_price=101.0, entry_filled_at=100.0)
    st = sm.PairState(market_price=100, now=1000.0, orders=(ex,), recovery_orders=(rec,), next_order_id=6)
    cfg = sm.EngineConfig(s1_orphan_after_sec=600.0, max_recovery_slots=1)
    evicted, _ = sm.transition(st, sm.TimerTick(1000.0), cfg, 2.0)
    c = evicted.completed_cycles[-1]
    assert [type(v) for v in (c.exit_price, c.volume, c.entry_fee, c.entry_time)] == [float] * 4
    assert type(c.entry_price) is int  # not in the list of what eviction float()s
    filled, _ = sm.transition(
        dataclasses.replace(st, orders=()), sm.RecoveryFillEvent(1, "T", "buy", 99, 13, 0, 5.0), cfg, 2.0
    )
    c = filled.completed_cycles[-1]
    assert [type(v) for v in (c.exit_price, c.volume, c.entry_time)] == [int, int, int]
    assert [type(v) for v in (c.entry_fee, c.exit_fee)] == [float, float]


def test_today_realized_loss_is_always_reassigned() -> None:
    booked = reference(CASES["today_realized_loss_negative_zero_reassigned"])["state"]["today_realized_loss"]
    assert same(booked, 0.0)
    untouched = reference(CASES["today_realized_loss_negative_zero_kept_without_booking"])
    assert same(untouched["state"]["today_realized_loss"], -0.0)


@pytest.mark.parametrize("name", ["nan_price_never_refreshes", "negative_zero_market_no_refresh"])
def test_drift_needs_a_positive_market(name: str) -> None:
    got = reference(CASES[name])
    assert got["actions"] == [] and [o["local_id"] for o in got["state"]["orders"]] == [1, 2]


def test_eviction_without_a_market_books_at_the_recovery_price() -> None:
    got = reference(CASES["evict_at_no_market_takes_recovery_price"])
    cycle = got["state"]["completed_cycles"][0]
    assert cycle["exit_price"] == 0.5 and cycle["entry_time"] == 101.0  # entry_filled_at -3 -> orphaned_at


def test_python_max_semantics_with_nan() -> None:
    got = reference(CASES["evict_nan_volume_fee_is_max_zero_nan"])
    assert same(book(got)["exit_fee"], 0.0)  # max(0.0, nan) is 0.0
    kept = reference(CASES["max_with_nan_cooldown_kept"])["state"]["cooldown_until_b"]
    assert math.isnan(kept)  # max(nan, now + 30) is nan


def test_infinite_orphan_timeouts_never_orphan() -> None:
    got = reference(CASES["infinite_orphan_timeouts"])
    assert got["actions"] == [] and got["state"]["recovery_orders"] == []


def test_trade_ids_other_than_a_and_b() -> None:
    m = 100.0
    placed = reference(CASES["entry_distance_other_trade_uses_entry_pct"])["actions"][1]["payload"]
    assert placed["trade_id"] == "C" and placed["price"] == round(m * (1 - 0.2 / 100), 6)  # entry_pct, not _b
    buy = reference(CASES["loss_count_buy_other_trade_uses_losses_a"])["actions"][1]["payload"]
    assert buy["price"] == round(m * (1 - 0.2 * 2.0 / 100), 6)  # consecutive_losses_a = 4: backoff 2.0
    sell = reference(CASES["loss_count_sell_other_trade_uses_losses_b"])["actions"][1]["payload"]
    assert sell["price"] == round(m * (1 + 0.2 * 2.0 / 100), 6)  # consecutive_losses_b = 4
    orphaned = reference(CASES["orphan_other_trade_takes_order_sizes_b"])["actions"]
    follow = orphaned[-1]["payload"]
    assert orphaned[0]["type"] == "OrphanOrderAction" and follow["trade_id"] == "B"
    assert follow["volume"] == float(round(5000.0 / follow["price"]))  # order_sizes["B"]
    filled = reference(CASES["exit_fill_other_trade_takes_its_own_size"])["actions"][-1]["payload"]
    # the size of its own id "C" (absent from order_sizes): order_size_usd
    assert filled["trade_id"] == "B" and filled["volume"] == float(round(2000.0 / filled["price"]))


def test_duplicate_ids() -> None:
    got = reference(CASES["fill_removes_every_order_with_the_id"])["state"]["orders"]
    assert [o["role"] for o in got] == ["exit"]  # both orders with local_id 1 gone, the exit appended
    rec = reference(CASES["recovery_fill_books_first_removes_all"])
    assert [r["recovery_id"] for r in rec["state"]["recovery_orders"]] == [2]
    assert book(rec)["entry_fee"] == 0.02 and len(rec["state"]["completed_cycles"]) == 1  # the first one
    ev = reference(CASES["eviction_selects_ids"])
    assert len(ev["state"]["completed_cycles"]) == 2  # overflow 1, but both recoveries with id 1 go
    assert [r["recovery_id"] for r in ev["state"]["recovery_orders"]] == [2, 10]  # appended at the end


def test_role_and_side_fallbacks_and_appends() -> None:
    odd = reference(CASES["odd_role_is_an_exit_odd_side_takes_sell_branch"])
    assert odd["actions"][0]["type"] == "BookCycleAction"
    entry = reference(CASES["odd_side_entry_fill_gets_a_buy_exit"])
    assert entry["state"]["orders"][-1]["side"] == "buy" and entry["state"]["orders"][-1]["role"] == "exit"


def test_unknown_events_return_the_state_unchanged() -> None:
    st = sm.from_dict(state())
    nxt, actions = sm.transition(st, object(), sm.EngineConfig(), 2.0)  # type: ignore[arg-type]
    assert nxt is st and actions == []

    class Tick(sm.PriceTick):  # isinstance, not the exact class
        pass

    nxt, _ = sm.transition(st, Tick(100.0, 5.0), sm.EngineConfig(), 2.0)
    assert nxt.now == 5.0 and nxt.last_price_update_at == 5.0


def test_config_is_never_coerced_except_max_recovery_slots() -> None:
    got = reference(CASES["sticky_string_false_is_truthy"])
    assert got["state"]["s2_entered_at"] is None  # "false" is truthy: the sticky branch clears it
    plain = reference(case(*CASES["max_recovery_slots_float"][:2], {**S1_CFG, "max_recovery_slots": 2}))
    for name in ("max_recovery_slots_float", "max_recovery_slots_string"):
        assert same(reference(CASES[name]), plain)
    assert len(plain["state"]["completed_cycles"]) == 1


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("recovery_entry_time_negative_takes_orphaned_at", 101.0),
        ("recovery_entry_time_nan_takes_orphaned_at", 101.0),
        ("recovery_entry_time_positive_kept", 7.0),
    ],
)
def test_recovery_fill_entry_time(name: str, expected: float) -> None:
    assert book(reference(CASES[name]))["entry_time"] == expected


def test_regime_call_has_the_bot_wrapper_semantics() -> None:
    st = sm.from_dict(state())
    tagged = sm.apply_order_regime_at_entry(st, "2", "bullish")  # type: ignore[arg-type]
    assert [o.regime_at_entry for o in tagged.orders] == [None, 2]  # int("2") first
    assert sm.apply_order_regime_at_entry(st, 7, NAN) is st  # no match: no normalising, no error
    with pytest.raises(ValueError):
        sm.apply_order_regime_at_entry(st, 1, NAN)  # a match normalises (and NaN cannot be)


# ----------------------------------------------------------------------------- the port, type for type


@pytest.fixture(scope="module", params=["msgpack", "jsonl"])
def port(request: pytest.FixtureRequest, haskell_exe: Path) -> Any:
    codec = request.param
    argv = [str(haskell_exe), "--msgpack" if codec == "msgpack" else "--server"]
    shadow = SubprocessReducer(argv, codec=codec, domain=DogeDomain(), deadline=5.0, use_sessions=False)
    yield shadow
    shadow.close()


def run_port(shadow: SubprocessReducer, c: Case) -> dict[str, Any]:
    st, ev, cfg, size, sizes = copy.deepcopy(c)
    out = shadow.transition(st, ev, doge_context(cfg, size, sizes), with_invariants=True)
    return {"state": out.state, "actions": out.actions, "violations": out.violations}


@pytest.mark.parametrize("name", sorted(CASES))
def test_port_agrees_type_for_type(port: SubprocessReducer, name: str) -> None:
    expected, got = reference(CASES[name]), run_port(port, CASES[name])
    assert same(expected, got), first_difference(expected, got)


def test_port_regime_call_has_the_bot_wrapper_semantics(port: SubprocessReducer) -> None:
    st = sm.to_dict(sm.from_dict(state()))
    tagged = port.call("apply_order_regime_at_entry", st, {"local_id": "2", "regime_at_entry": "bullish"})
    assert same(tagged, sm.to_dict(sm.apply_order_regime_at_entry(sm.from_dict(st), "2", "bullish")))  # type: ignore[arg-type]
    untouched = port.call("apply_order_regime_at_entry", st, {"local_id": 7, "regime_at_entry": NAN})
    assert same(untouched, st)


def test_json_lines_wire_reads_and_writes_non_finite_tokens(haskell_exe: Path) -> None:
    """The bot serialises with json.dumps defaults: Infinity, -Infinity and NaN as bare tokens."""
    c = case(
        state(cooldown_until_a=NAN, refresh_cooldown_until_b=-INF, orders=S1A_ORDERS, market_price=99.5),
        tick(1000.0),
        {"s1_orphan_after_sec": INF, "s2_orphan_after_sec": INF},
    )
    st, ev, cfg, size, sizes = c
    line = json.dumps(
        {
            "method": "transition",
            "state": st,
            "event": ev.payload,
            "config": cfg,
            "order_size_usd": size,
            "order_sizes": sizes,
        }
    )
    assert "Infinity" in line and "NaN" in line
    done = subprocess.run(
        [str(haskell_exe), "--server"],
        input=line + "\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    [answer] = done.stdout.splitlines()
    expected = reference(c)
    assert '"cooldown_until_a":NaN' in answer.replace(" ", "")
    assert '"refresh_cooldown_until_b":-Infinity' in answer.replace(" ", "")
    got = json.loads(answer)
    assert same(got["state"], expected["state"]), first_difference(expected["state"], got["state"])
    # and the one-shot mode reads them too
    once = subprocess.run(
        [str(haskell_exe)], input=line, capture_output=True, text=True, timeout=30, check=True
    )
    assert same(json.loads(once.stdout)["state"], expected["state"])


# ----------------------------------------------------------------------------- generated streams


@pytest.mark.parametrize(
    ("mutant", "seed", "signature"),
    [
        ("recovery_entry_time_truthy", 0, "transition.state|*|completed_cycles[*].entry_time"),
        ("evict_by_position", 0, "transition.state|*|recovery_orders[*].recovery_id"),
        # only a wire type differs (exit_fee 0 for 0.0): seen now that the exact rule is type for type
        ("fee_int_booked_as_int", 0, "transition.state|*|completed_cycles[*].exit_fee"),
    ],
)
def test_fuzz_finds_a_section9_mutant_within_a_minute(
    mutant_exe: Path, tmp_path: Path, mutant: str, seed: int, signature: str
) -> None:
    """The strategies' section 9 draws (negative / NaN entry times, duplicate recovery ids) are what
    ``shadowdiff fuzz`` needs to catch these, with a reproducer of at most 3 events."""
    from click.testing import CliRunner

    from shadowdiff.cli.main import main as shadowdiff_main

    shadow = f"{mutant_exe} --msgpack --mutant {mutant}"
    args = [
        "fuzz",
        "--seed",
        str(seed),
        "--time-budget",
        "60",
        "--shadow",
        shadow,
        "--out",
        str(tmp_path),
        "-q",
    ]
    result = CliRunner().invoke(shadowdiff_main, args)
    assert result.exit_code == 1, result.output
    (path,) = sorted(tmp_path.glob("*.json"))
    data = json.loads(path.read_text())
    # the event that shows it depends on the seed (a recovery fill, or the eviction on a timer tick)
    kind, _, path = signature.partition("|*|")
    assert data["shadowdiff"]["signature"].startswith(kind) and data["shadowdiff"]["signature"].endswith(path)
    assert len(data["events"]) <= 3


# the booking fields section 9 types (float() of both fees); where the typed port may answer an equal
# float for an event's int elsewhere (see the module docstring), these must match type for type
FEE_PATHS = frozenset(
    {"state.completed_cycles[*].entry_fee", "state.completed_cycles[*].exit_fee",
     "state.completed_cycles[*].quote_fee", "state.completed_cycles[*].fees", "state.today_realized_loss",
     "actions[*].payload.fees"}
)  # fmt: skip


def _typed_differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [p for k in a if k in b for p in _typed_differences(a[k], b[k], f"{path}.{k}" if path else k)]
    if isinstance(a, list) and isinstance(b, list):
        return [
            p
            for i, (x, y) in enumerate(zip(a, b, strict=False))
            for p in _typed_differences(x, y, f"{path}[{i}]")
        ]
    return [] if same(a, b) else [path]


def _stream_fee_type_differences(haskell_exe: Path, mutant: str | None, examples: int) -> list[str]:
    """Generated streams (the DOGE strategies, walked by the reference), each step sent to the port as a
    whole state: the generalised paths in FEE_PATHS where the port's wire type or bits differ."""
    from conftest import MUTANT_EXE  # only doge-core-mutants takes --mutant
    from shadowdiff_doge.inprocess import InProcessReducer
    from shadowdiff_doge.strategies import DogeStrategies

    from shadowdiff.core.diff import generalise
    from shadowdiff.model import Scenario
    from shadowdiff.model.errors import ShadowdiffError
    from shadowdiff.search.generate import SearchOptions, search

    exe = MUTANT_EXE if mutant else haskell_exe
    argv = [str(exe), "--msgpack", *(["--mutant", mutant] if mutant else [])]
    port = SubprocessReducer(argv, domain=DogeDomain(), deadline=5.0, use_sessions=False)
    ref = InProcessReducer("shadowdiff_doge.reference.state_machine")
    found: list[str] = []

    def check(scenario: Scenario) -> None:
        try:
            ref.open("x", scenario.initial_state)
            st = ref.get("x")
        except ShadowdiffError:
            return None
        for item in scenario.inputs:
            if not isinstance(item, Event):
                return None
            try:
                a = ref.transition(st, item, scenario.context)
            except (ShadowdiffError, ArithmeticError, TypeError, ValueError):
                return None
            b = port.transition(st, item, scenario.context)
            mine = {"state": a.state, "actions": a.actions}
            theirs = {"state": b.state, "actions": b.actions}
            found.extend(
                g for g in (generalise(p) for p in _typed_differences(mine, theirs)) if g in FEE_PATHS
            )
            st = a.state
        return None

    try:
        search(DogeStrategies(), ref, check, SearchOptions(0, examples, 8), lambda e: True)
    finally:
        port.close()
    return found


def test_generated_streams_catch_the_int_fee_mutant_type_for_type(haskell_exe: Path) -> None:
    """fee_int_booked_as_int differs only in a wire type (0 for 0.0), which no value comparison sees:
    the strategies' int fees reach it, and the unmutated port books the module's floats."""
    caught = _stream_fee_type_differences(haskell_exe, "fee_int_booked_as_int", 150)
    assert "state.completed_cycles[*].exit_fee" in caught
    assert _stream_fee_type_differences(haskell_exe, None, 150) == []


def test_the_module_keeps_an_int_price_and_an_entry_fills_int_fee_as_sent() -> None:
    """The two int draws of the strategies the port must keep raw (tests/test_bitexact.py port cases)."""
    ticked = reference(CASES["int_price_tick_kept_as_int"])["state"]
    assert type(ticked["market_price"]) is int and ticked["market_price"] == 100
    filled = reference(CASES["int_fee_entry_fill_kept_on_the_exit"])["state"]
    [exit_order] = [o for o in filled["orders"] if o["role"] == "exit"]
    assert type(exit_order["entry_fee"]) is int and type(filled["total_fees"]) is float
