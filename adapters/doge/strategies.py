"""Hypothesis strategies for the DOGE pair reducer: configs, states, raw states and state-guided events.

Public, for users' own property tests as much as for ``shadowdiff fuzz``:

- ``configs()``: EngineConfig maps across realistic ranges and edge values (any subset of fields);
- ``states(config)``: wire states in every phase, bootstrapped S0 pairs and states with exits,
  recoveries, history, counters near their thresholds and timers near their timeouts;
- ``raw_states(state)``: the same state as a saved file or an older bot holds it, exercising every
  leniency rule of ``from_dict`` (DOGE_REDUCER.md section 2);
- ``scenarios()``: initial scenarios (context and initial state, no events);
- ``DogeStrategies``: the ``shadowdiff.search.generate.Strategies`` of this domain; ``next_inputs`` reads the
  current state and aims at what can go wrong there: fills at and through order prices, price walks
  across entries, exits and the refresh threshold, timer ticks just before, on and after the S1/S2
  timeouts, recovery fills and cancels, stale ids, duplicates, extreme and rounding-stress values.

Rounding stress: decimal midpoints (``2.675`` and the doubles a hair either side of it), exact binary
ties, and sizes whose volume ``size / price`` is exactly ``n + 0.5``.

Bit-exact stress (DOGE_REDUCER.md section 9), each a minority of draws: ints where floats are expected
(fees of int ``0``, int prices in events), negative and NaN entry times, ``max_recovery_slots`` as
``2.0`` and ``"2"``, trade ids other than A/B (``"C"``, ``"b"``), duplicate order and recovery ids,
infinite orphan timeouts (what the live bot sends when recovery orders are disabled), ``-0.0`` totals,
NaN and ``-0.0`` prices (``section9_states`` on states, and in ``configs`` and the event draws).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import attrs
from hypothesis import strategies as st

from shadowdiff.model import Call, Context, Event, Input, Scenario, WireMap
from shadowdiff.search.generate import Draw, Strategies

from .context import doge_context, size_of
from .domain import DEFAULT_CONFIG

__all__ = [
    "DogeStrategies",
    "cap_scenarios",
    "configs",
    "contexts",
    "exact_tie_value",
    "exact_ties",
    "is_exact_tie",
    "missing_keys",
    "near_midpoint",
    "raw_order_sizes",
    "raw_states",
    "scenarios",
    "section9_states",
    "solve_product",
    "states",
    "tie_inputs",
]

NICE_PRICES = (0.08, 0.1, 0.125, 0.16, 0.2, 0.25, 0.4, 0.5, 1.0, 2.0, 99.0, 100.0, 101.0)
ODD_TXIDS = ("TX-\u00e9", "TX-\x00e9", "\u4e2d", "", "TX 1")


def cfg(config: WireMap, name: str) -> Any:
    return config.get(name, DEFAULT_CONFIG[name])


def nudge(value: float, ulps: int) -> float:
    """``value`` moved by ``ulps`` representable doubles (a hair either side)."""
    step = math.inf if ulps > 0 else -math.inf
    for _ in range(abs(ulps)):
        value = math.nextafter(value, step)
    return value


@st.composite
def near_midpoint(draw: Any, decimals: int, around: float = 0.1) -> float:
    """A value near a decimal midpoint at ``decimals`` places (the double nearest ``k.5 * 10^-d``, or
    a few ulps either side), or an exact binary tie such as 0.125."""
    scale = 10**decimals
    base = max(1, round(around * scale))
    k: int = draw(st.integers(max(0, base - 50), base + 50))
    if draw(st.integers(0, 4)) == 0:
        # exact binary ties: k/2^n with a 5 in the last decimal (0.125, 0.375, 2.5)
        n: int = draw(st.integers(1, 4))
        odd: int = draw(st.sampled_from([1, 3, 5, 7]))
        return float(k + odd) / (1 << n)
    mid = float(f"{k}.5e-{decimals}") if decimals > 0 else k + 0.5
    return nudge(mid, draw(st.sampled_from([0, 0, -1, 1, -2, 2])))


def _choice(draw: Any, default: Any, *others: Any) -> Any:
    """The default most of the time, else one of the others (values or strategies)."""
    if draw(st.integers(0, 2)) > 0:
        return default
    pick = draw(st.sampled_from(list(others)))
    return draw(pick) if isinstance(pick, st.SearchStrategy) else pick


@st.composite
def configs(draw: Any) -> WireMap:
    """EngineConfig maps: defaults, realistic ranges and edge values; sometimes fields left out."""
    c: WireMap = {
        "entry_pct": _choice(draw, 0.2, 0.5, 1.0, 0.05, 1.5, st.floats(0.01, 3.0)),
        "entry_pct_a": _choice(draw, None, 0.3, 0.0, -1.0, st.floats(0.05, 2.0)),
        "entry_pct_b": _choice(draw, None, 0.7, 0.0, st.floats(0.05, 2.0)),
        "profit_pct": _choice(draw, 1.0, 0.5, 2.0, 0.0, st.floats(0.1, 5.0)),
        "refresh_pct": _choice(draw, 1.0, 0.5, 2.0, 0.0, 0.1),
        "order_size_usd": 2.0,
        "price_decimals": _choice(draw, 6, 0, 1, 2, 3, 4, 5, 7, 8),
        "volume_decimals": _choice(draw, 0, 0, 1, 2, 3),
        "min_volume": _choice(draw, 13.0, 0.0, 1.0, 10.0, 12.0, 20.0),
        "min_cost_usd": _choice(draw, 0.0, 0.5, 1.0, 5.0),
        "maker_fee_pct": _choice(draw, 0.25, 0.0, 0.1, 0.16, 1.0),
        # math.inf: the live bot's timeouts when recovery orders are disabled (section 9)
        "s1_orphan_after_sec": _choice(draw, 1350.0, 600.0, 60.0, 0.0, 1.5, math.inf),
        "s2_orphan_after_sec": _choice(draw, 1800.0, 300.0, 60.0, 0.0, 0.5, math.inf),
        "loss_backoff_start": _choice(draw, 3, 0, 1, 2, 4),
        "loss_cooldown_start": _choice(draw, 5, 1, 2, 3),
        "loss_cooldown_sec": _choice(draw, 900.0, 0.0, 60.0),
        "reentry_base_cooldown_sec": _choice(draw, 0.0, 30.0, 5.0),
        "backoff_factor": _choice(draw, 0.5, 1.0, 0.25, 0.0),
        "backoff_max_multiplier": _choice(draw, 5.0, 1.0, 2.0, 1.5),
        "max_consecutive_refreshes": _choice(draw, 3, 1, 2, 5, 0),
        "refresh_cooldown_sec": _choice(draw, 300.0, 0.0, 60.0),
        # 2.0 and "2": the reducer int()s it (section 9)
        "max_recovery_slots": _choice(draw, 2, 0, 1, 3, 2.0, "2", 1.0),
        "sticky_mode_enabled": draw(st.sampled_from([False] * 9 + [True])),
    }
    if draw(st.integers(0, 3)) == 0:
        dropped = draw(st.sets(st.sampled_from(sorted(c)), max_size=6))
        c = {k: v for k, v in c.items() if k not in dropped}
    return c


def _entry_pct(config: WireMap, trade: str) -> Any:
    """A trade's entry distance before backoff (DOGE_REDUCER.md section 3)."""
    d = cfg(config, "entry_pct")
    own = cfg(config, f"entry_pct_{trade.lower()}")
    if own is not None and own > 0:
        d = own
    if d <= 0:
        d = cfg(config, "entry_pct")
    return d


def _entry_price(market: float, side: str, config: WireMap, trade: str) -> float:
    d = _entry_pct(config, trade)
    factor = 1 - d / 100 if side == "buy" else 1 + d / 100
    return float(round(market * factor, int(cfg(config, "price_decimals"))))


@st.composite
def contexts(draw: Any, config: WireMap | None = None) -> Context:
    """A context: a config, an order size (sometimes one whose volumes land on .5 ties) and
    ``order_sizes`` (mostly null, sometimes per-trade sizes, sometimes raw)."""
    config = config if config is not None else draw(configs())
    kind = draw(st.integers(0, 5))
    if kind == 0:
        # a volume tie: size / price == n + 0.5 exactly for a nice price
        price = draw(st.sampled_from(NICE_PRICES))
        n = draw(st.integers(10, 30))
        size = (n + 0.5) * price
    else:
        size = (
            draw(st.sampled_from([2.0, 2.0, 2.5, 5.0, 10.0, 1.3, 0.0]))
            if kind < 4
            else draw(st.floats(0.5, 50))
        )
    sizes: WireMap | None = None
    pick = draw(st.integers(0, 6))
    if pick == 0:
        sizes = {"A": draw(st.sampled_from([size, 3.0, 2.5])), "B": draw(st.sampled_from([size, 4.0, 1.0]))}
    elif pick == 1:
        sizes = draw(raw_order_sizes(size))
    return doge_context(config, size, sizes)


@st.composite
def raw_order_sizes(draw: Any, size: float = 2.0) -> WireMap:
    """``order_sizes`` as an older bot stores it: ints for floats, one trade only, extra keys, empty."""
    return dict(
        draw(
            st.sampled_from(
                [{"A": int(size) or 2, "B": 3}, {"B": size}, {"A": size}, {}, {"A": 2, "B": 2.0, "C": 9.0}]
            )
        )
    )


def _order(
    local_id: int, side: str, role: str, price: float, volume: float, trade: str, cycle: int, **extra: Any
) -> WireMap:
    order: WireMap = {
        "local_id": local_id, "side": side, "role": role, "price": price, "volume": volume,
        "trade_id": trade, "cycle": cycle, "txid": extra.get("txid", f"TX-{local_id}"),
        "placed_at": extra.get("placed_at", 0.0), "entry_price": extra.get("entry_price", 0.0),
        "entry_fee": extra.get("entry_fee", 0.0), "entry_filled_at": extra.get("entry_filled_at", 0.0),
        "regime_at_entry": extra.get("regime_at_entry"),
    }  # fmt: skip
    return order


@st.composite
def states(draw: Any, config: WireMap | None = None, size: float = 2.0) -> WireMap:
    """Well-formed wire states in every phase (and sometimes a malformed one)."""
    config = config if config is not None else draw(configs())
    decimals = int(cfg(config, "price_decimals"))
    market = draw(
        st.one_of(
            st.sampled_from([0.1, 0.12345, 0.08, 100.0, 1.0, 0.0999]),
            st.floats(0.01, 200.0).map(lambda x: round(x, 5)),
            near_midpoint(min(decimals, 6), 0.1),
        )
    )
    now = draw(st.sampled_from([1000.0, 10_000.0, 1_700_000_000.0, 0.0, 3600.5]))
    shape = draw(st.sampled_from(["S0", "S0", "S1a", "S1b", "S2", "S2", "long", "short", "odd"]))
    cycle_a, cycle_b = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    regime = st.sampled_from([None, None, 0, 1, 2])
    s1 = float(cfg(config, "s1_orphan_after_sec"))
    s1 = s1 if math.isfinite(s1) else 1350.0  # an infinite timeout: ages as for the default
    ages = st.sampled_from([0.0, 10.0, s1 - 1.0, s1, s1 + 1.0, 5000.0])
    vol = draw(st.sampled_from([13.0, 20.0, 100.0, 12.5, 1.0]))
    orders: list[WireMap] = []
    next_id = draw(st.integers(1, 9))

    def add(side: str, role: str, trade: str, cycle: int) -> None:
        nonlocal next_id
        if role == "entry":
            jitter = draw(st.sampled_from([1.0, 1.0, 1.0, 0.97, 1.03, 0.9]))
            price = _entry_price(market * jitter, side, config, trade)
            orders.append(_order(next_id, side, role, price, vol, trade, cycle,
                                 placed_at=now - draw(st.sampled_from([0.0, 30.0, 400.0])),
                                 regime_at_entry=draw(regime)))  # fmt: skip
        else:
            away = draw(st.sampled_from([0.99, 1.01, 1.0, 0.95, 1.05, 0.9, 1.1]))
            price = round(market * away, decimals)
            entry = round(market * draw(st.sampled_from([1.0, 0.98, 1.02, 1.01, 0.99])), decimals)
            orders.append(_order(
                next_id, side, role, price, vol, trade, cycle, entry_price=entry,
                entry_fee=draw(st.sampled_from([0.0, 0.01, 0.02, round(entry * vol * 0.0025, 8)])),
                entry_filled_at=now - draw(ages), placed_at=now - draw(ages), regime_at_entry=draw(regime),
                txid=draw(st.sampled_from([f"TX-{next_id}", ""])),
            ))  # fmt: skip
        next_id += 1

    long_only = short_only = False
    if shape == "S0":
        add("buy", "entry", "B", cycle_b)
        add("sell", "entry", "A", cycle_a)
    elif shape == "S1a":
        add("buy", "exit", "A", cycle_a)
        add("buy", "entry", "B", cycle_b)
    elif shape == "S1b":
        add("sell", "exit", "B", cycle_b)
        add("sell", "entry", "A", cycle_a)
    elif shape == "S2":
        add("buy", "exit", "A", cycle_a)
        add("sell", "exit", "B", cycle_b)
        if draw(st.booleans()):  # symmetric legs: equal distance from the market
            delta = draw(st.sampled_from([1.0, 0.01, 0.5]))
            market = draw(st.sampled_from([100.0, 10.0, 1.0]))
            orders[0]["price"], orders[1]["price"] = market - delta, market + delta
    elif shape == "long":
        long_only = True
        add("buy", "entry", "B", cycle_b)
    elif shape == "short":
        short_only = True
        add("sell", "entry", "A", cycle_a)
    else:
        for _ in range(draw(st.integers(0, 3))):
            add(draw(st.sampled_from(["buy", "sell"])), draw(st.sampled_from(["entry", "exit"])),
                draw(st.sampled_from(["A", "B"])), draw(st.integers(0, 3)))  # fmt: skip
        if orders and draw(st.booleans()):
            orders.append(dict(orders[0]))  # a duplicate local_id
    if draw(st.integers(0, 4)) == 0 and orders:
        cycle_a += draw(st.integers(2, 5))  # counters ahead of their orders
        cycle_b += draw(st.integers(0, 3))
    recoveries: list[WireMap] = []
    for rid in range(1, draw(st.integers(0, 3)) + 1):
        trade = draw(st.sampled_from(["A", "B"]))
        price = round(market * draw(st.sampled_from([0.9, 1.1, 0.95, 1.05])), decimals)
        recoveries.append({
            "recovery_id": rid, "side": "buy" if trade == "A" else "sell", "price": price, "volume": vol,
            "trade_id": trade, "cycle": draw(st.integers(1, 3)),
            "entry_price": round(market * draw(st.sampled_from([1.0, 1.02, 0.98])), decimals),
            "orphaned_at": now - draw(st.sampled_from([100.0, 100.0, 200.0, 0.0])),
            "entry_fee": draw(st.sampled_from([0.0, 0.01, 0.03])),
            "entry_filled_at": draw(st.sampled_from([0.0, now - 500.0])),
            "txid": draw(st.sampled_from(["", f"RX-{rid}"])),
            "reason": draw(st.sampled_from(["stale", "s1_timeout"])),
            "regime_at_entry": draw(regime),
        })  # fmt: skip
    if len(recoveries) >= 2 and draw(st.integers(0, 5)) == 0:
        # two recoveries sharing an id (section 9: eviction selects ids, a fill removes every one)
        # (two of them, the twin at the market: a full book's eviction ranks the first one first, and
        # takes its twin with it by id)
        recoveries = [
            recoveries[0],
            dict(recoveries[1], recovery_id=recoveries[0]["recovery_id"], price=market),
        ]
    cycles = [
        {
            "trade_id": t,
            "cycle": i + 1,
            "entry_price": market,
            "exit_price": market * 1.01,
            "volume": vol,
            "gross_profit": 0.13,
            "fees": 0.01,
            "net_profit": 0.12,
            "entry_fee": 0.005,
            "exit_fee": 0.005,
            "quote_fee": 0.005,
            "settled_usd": 0.125,
            "entry_time": now - 900.0,
            "exit_time": now - 100.0,
            "from_recovery": False,
            "regime_at_entry": None,
        }
        for i, t in enumerate(draw(st.lists(st.sampled_from(["A", "B"]), max_size=3)))
    ]
    in_s2 = shape == "S2"
    s2_at = None
    if (in_s2 and draw(st.integers(0, 2)) > 0) or (not in_s2 and draw(st.integers(0, 7)) == 0):
        s2 = float(cfg(config, "s2_orphan_after_sec"))
        s2_at = now - draw(st.sampled_from([0.0, 10.0, s2 if math.isfinite(s2) else 1800.0, 100.0]))
    backoff, cooldown = int(cfg(config, "loss_backoff_start")), int(cfg(config, "loss_cooldown_start"))
    losses = st.sampled_from([0, 0, max(0, backoff - 1), backoff, max(0, cooldown - 1), cooldown])
    max_refresh = int(cfg(config, "max_consecutive_refreshes"))
    refresh_count = st.sampled_from([0, 0, 1, max(0, max_refresh - 1), max_refresh])
    refresh_until = st.sampled_from([0.0, 0.0, now - 1.0, now + 100.0])
    direction = st.sampled_from([None, None, "up", "down"])
    total = draw(st.sampled_from([0.0, 0.5, -0.25]))
    return {
        "market_price": market, "now": now, "orders": orders, "recovery_orders": recoveries,
        "completed_cycles": cycles, "cycle_a": cycle_a, "cycle_b": cycle_b,
        "next_order_id": next_id + draw(st.sampled_from([0, 0, 3])), "next_recovery_id": len(recoveries) + 1,
        "total_profit": total, "total_settled_usd": total, "total_fees": draw(st.sampled_from([0.0, 0.02])),
        "today_realized_loss": 0.0, "total_round_trips": len(cycles), "s2_entered_at": s2_at,
        "last_price_update_at": draw(st.sampled_from([None, now])),
        "consecutive_losses_a": draw(losses), "consecutive_losses_b": draw(losses),
        "cooldown_until_a": draw(st.sampled_from([0.0, 0.0, now + 60.0])),
        "cooldown_until_b": draw(st.sampled_from([0.0, 0.0, now + 60.0])),
        "long_only": long_only, "short_only": short_only,
        "mode_source": draw(st.sampled_from(["none", "balance", "regime"])),
        "consecutive_refreshes_a": draw(refresh_count), "consecutive_refreshes_b": draw(refresh_count),
        "last_refresh_direction_a": draw(direction), "last_refresh_direction_b": draw(direction),
        "refresh_cooldown_until_a": draw(refresh_until), "refresh_cooldown_until_b": draw(refresh_until),
        "profit_pct_runtime": draw(st.sampled_from([1.0, 1.0, 0.0, 2.0, 0.5])),
    }  # fmt: skip


_INT_FIELDS = ("cycle_a", "cycle_b", "next_order_id", "next_recovery_id", "total_round_trips",
               "consecutive_losses_a", "consecutive_losses_b", "consecutive_refreshes_a",
               "consecutive_refreshes_b")  # fmt: skip
_FLOAT_FIELDS = ("market_price", "now", "total_fees", "today_realized_loss", "cooldown_until_a",
                 "cooldown_until_b", "refresh_cooldown_until_a", "refresh_cooldown_until_b")  # fmt: skip
DEFAULTED = ("cycle_a", "cycle_b", "profit_pct_runtime", "total_settled_usd", "next_order_id",
             "next_recovery_id", "mode_source", "long_only", "s2_entered_at", "orders")  # fmt: skip
RAW_REGIMES = (True, False, "2", " 1 ", "bullish", "Ranging", "BEARISH", " bearish ", 5, -1, 1.7, "\u0661",
               "\u0663", "", "sideways", 2.0)  # fmt: skip
ODD_TEXT: dict[str, list[Any]] = {
            "side": ["", None, "BUY", " sell"], "role": ["", None, "EXIT", "Entry"],
            "trade_id": ["", None, "a", "C"],
            "txid": [None, "", 7], "reason": ["", None, "STALE"]}  # fmt: skip


@st.composite
def raw_states(draw: Any, state: WireMap) -> WireMap:
    """``state`` as a saved file or an older bot version holds it: every leniency rule of ``from_dict``.

    Missing keys (top level and inside items), legacy keys, loosely typed numbers and booleans, enum
    and mode strings in odd case, padded or empty, regimes as bools, digit strings, names and
    out-of-range values, list entries that are not maps, integers beyond 64 bits."""
    raw: WireMap = {k: (list(v) if isinstance(v, list) else v) for k, v in state.items()}
    for _ in range(draw(st.integers(1, 4))):
        rule = draw(st.integers(0, 11))
        if rule == 0:
            keys = st.sampled_from(sorted(raw)) if draw(st.booleans()) else st.sampled_from(DEFAULTED)
            for key in draw(st.sets(keys, min_size=1, max_size=4)):
                raw.pop(key, None)
        elif rule == 1:  # legacy profit_pct, no profit_pct_runtime
            raw.pop("profit_pct_runtime", None)
            raw["profit_pct"] = draw(st.sampled_from([2.0, 0.5, 1.5]))
        elif rule == 2:  # total_profit without total_settled_usd
            raw.pop("total_settled_usd", None)
            raw["total_profit"] = draw(st.sampled_from([1.25, -0.5, 3]))
        elif rule == 3:
            key = draw(st.sampled_from(_INT_FIELDS))
            if key in raw:
                number = int(raw[key])
                raw[key] = draw(st.sampled_from([str(number), float(number) + 0.9, float(number), True]))
        elif rule == 4:
            key = draw(st.sampled_from(_FLOAT_FIELDS))
            if key in raw:
                real = float(raw[key])
                raw[key] = draw(st.sampled_from([str(real), int(real), f" {real} "]))
        elif rule == 5:
            for key in ("long_only", "short_only"):
                if draw(st.booleans()):
                    raw[key] = draw(st.sampled_from([0, 1, "", "yes", None, [], 0.0]))
        elif rule == 6:
            raw["mode_source"] = draw(st.sampled_from([" Balance ", "REGIME", "weird", "", 3, None]))
        elif rule in (7, 8):  # items with missing keys, odd text, raw regimes
            field = draw(st.sampled_from(["orders", "recovery_orders", "completed_cycles"]))
            items = [dict(x) if isinstance(x, dict) else x for x in raw.get(field) or []]
            for item in items:
                if not isinstance(item, dict):
                    continue
                if draw(st.booleans()):
                    item["regime_at_entry"] = draw(st.sampled_from(RAW_REGIMES))
                if draw(st.booleans()):
                    key = draw(st.sampled_from(sorted(ODD_TEXT)))
                    if key in item:
                        item[key] = draw(st.sampled_from(ODD_TEXT[key]))
                if draw(st.integers(0, 2)) == 0:
                    for key in draw(st.sets(st.sampled_from(sorted(item)), max_size=3)):
                        item.pop(key)
            raw[field] = items
        elif rule == 9:  # list entries that are not maps
            field = draw(st.sampled_from(["orders", "recovery_orders", "completed_cycles"]))
            items = list(raw.get(field) or [])
            items.insert(draw(st.integers(0, len(items))), draw(st.sampled_from([5, "x", None, [1], True])))
            raw[field] = items
        elif rule == 10:  # integers beyond Int64 (Python ints are unbounded)
            key = draw(st.sampled_from(["next_order_id", "next_recovery_id", "total_round_trips"]))
            raw[key] = draw(st.sampled_from([2**63, str(2**63), 2**63 - 1]))  # +1 still fits msgpack
        else:
            for key in ("s2_entered_at", "last_price_update_at", "last_refresh_direction_a"):
                if draw(st.booleans()):
                    raw[key] = draw(st.sampled_from([None, 5, "up", 0.0]))
    return raw


OTHER_TRADES = ("C", "b")
ODD_TIMES = (-5.0, -1.0, -0.0)


@st.composite
def section9_states(draw: Any, state: WireMap) -> WireMap:
    """``state`` with one to three of the details of DOGE_REDUCER.md section 9 that the reducer can
    see in a state: negative / NaN entry times, trade ids other than A/B, duplicate order and
    recovery ids, -0.0 totals, int fees."""
    out: WireMap = dict(state)
    orders = [dict(o) for o in out.get("orders") or [] if isinstance(o, dict)]
    recoveries = [dict(r) for r in out.get("recovery_orders") or [] if isinstance(r, dict)]
    for _ in range(draw(st.integers(1, 3))):
        rule = draw(st.integers(0, 7))
        timed = recoveries + [o for o in orders if o.get("role") == "exit"]
        if rule == 0 and timed:  # negative entry times
            for item in timed:
                if draw(st.booleans()):
                    item["entry_filled_at"] = draw(st.sampled_from(ODD_TIMES))
        elif rule == 6 and timed:  # a NaN entry time
            draw(st.sampled_from(timed))["entry_filled_at"] = math.nan
        elif rule == 1 and (recoveries or orders):  # trade ids other than A and B
            item = draw(st.sampled_from(recoveries + orders))
            item["trade_id"] = draw(st.sampled_from(OTHER_TRADES))
        elif (
            rule in (2, 7) and recoveries
        ):  # duplicate recovery ids (twice as likely: an eviction must follow)
            # often a twin of the recovery furthest from the market, itself at the market: the cap
            # evicts the furthest, and with it (by id) its twin
            market = out.get("market_price")
            if draw(st.booleans()) and isinstance(market, float) and market > 0:
                far = max(recoveries, key=lambda r: abs(float(r.get("price") or 0.0) - market))
                twin = dict(far, price=market)
            else:
                twin = dict(draw(st.sampled_from(recoveries)))
                twin["price"] = draw(st.sampled_from([twin.get("price", 0.1), 0.0, 1.0]))
            recoveries.insert(draw(st.integers(0, len(recoveries))), twin)
        elif rule == 3 and orders:  # duplicate order ids (a second order carrying the same local_id)
            twin = dict(draw(st.sampled_from(orders)))
            price = twin.get("price", 0.1)
            if isinstance(price, int | float) and not isinstance(price, bool):
                twin["price"] = price * draw(st.sampled_from([1.0, 0.9, 1.1]))
            orders.insert(draw(st.integers(0, len(orders))), twin)
        elif rule == 4:  # -0.0 where the reducer adds to it
            for key in ("today_realized_loss", "total_profit", "total_settled_usd", "total_fees"):
                if draw(st.booleans()):
                    out[key] = -0.0
        else:  # int fees (from_dict float()s them; a typed state may keep them)
            for item in orders + recoveries:
                if draw(st.booleans()):
                    item["entry_fee"] = 0
    out["orders"], out["recovery_orders"] = orders, recoveries
    return out


@st.composite
def scenarios(draw: Any) -> Scenario:
    """Initial scenarios: a context and a state (a fifth of them raw, a fifth with section 9 details,
    a fifth aimed at recovery caps, phases, exact ties and missing keys), no events."""
    if draw(st.integers(0, 4)) == 0:  # recovery caps, phases, exact ties, missing keys
        aimed: Scenario = draw(cap_scenarios())
        return aimed
    context = draw(contexts())
    state = draw(states(context.config, size_of(context)))
    if draw(st.integers(0, 4)) == 0:
        state = draw(raw_states(state))
    if draw(st.integers(0, 4)) == 0:
        state = draw(section9_states(state))
    return Scenario("generated", context, state, ())


# -- next events from the current state -------------------------------------------------------------


def _ticks(state: WireMap, config: WireMap) -> list[float]:
    """Timer timestamps around every timeout the state is waiting for."""
    now = float(state.get("now") or 0.0)
    out = [now, now + 1.0, now + 60.0]
    s1 = float(cfg(config, "s1_orphan_after_sec"))
    s2 = float(cfg(config, "s2_orphan_after_sec"))
    for order in state.get("orders") or []:
        if order.get("role") == "exit":
            base = order.get("entry_filled_at") or order.get("placed_at") or now
            out += [base + s1 + d for d in (-0.001, 0.0, 0.0, 0.001)]
    s2_at = state.get("s2_entered_at")
    if isinstance(s2_at, int | float):
        out += [s2_at + s2 + d for d in (-0.001, 0.0, 0.0, 0.001)]
    for key in (
        "cooldown_until_a",
        "cooldown_until_b",
        "refresh_cooldown_until_a",
        "refresh_cooldown_until_b",
    ):
        until = state.get(key) or 0.0
        if until > 0:
            out += [until, until - 0.001]
    # an infinite timeout or a NaN entry time makes no tick worth sending
    return [t for t in out if math.isfinite(t)] or [now]


def _threshold_market(price: float, refresh_pct: float, above: bool) -> list[float]:
    """Markets at which the drift of an entry at ``price`` is exactly ``refresh_pct`` (as Python
    computes it), or the nearest found, with a neighbour either side."""
    if refresh_pct >= 100 or price <= 0:
        return []
    guess = price / (1 - refresh_pct / 100) if above else price / (1 + refresh_pct / 100)
    out = []
    for k in range(-3, 4):
        m = nudge(guess, k)
        if m > 0 and abs(price - m) / m * 100 == refresh_pct:
            out.append(m)
    return (out or [guess]) + [nudge(guess, -8), nudge(guess, 8)]


def _markets(state: WireMap, context: Context) -> list[float]:
    config = context.config
    market = float(state.get("market_price") or 0.0)
    if not math.isfinite(market):  # after a NaN (or infinite) PriceTick: aim as if there were no market
        market = 0.0
    decimals = int(cfg(config, "price_decimals"))
    refresh = float(cfg(config, "refresh_pct"))
    out = [market * f for f in (0.999, 1.001, 0.98, 1.02, 0.95, 1.05)] if market > 0 else [0.1, 100.0]
    for order in state.get("orders") or []:
        price = order.get("price")
        if not isinstance(price, int | float) or isinstance(price, bool):
            continue
        out += [price, price * 0.999, price * 1.001]  # at and through the order
        if order.get("role") == "entry":
            out += _threshold_market(price, refresh, above=True) + _threshold_market(
                price, refresh, above=False
            )
            out.append(price * (1 + 2 * refresh / 100))
    # a new entry would be computed from a near-midpoint value
    entry = float(cfg(config, "entry_pct"))
    target = near_midpoint_value(market or 0.1, decimals, state)
    if entry < 100:
        out += [target / (1 - entry / 100), target / (1 + entry / 100)]
    # a new entry whose volume lands on an .5 tie
    size = size_of(context)
    if isinstance(size, int | float) and size > 0 and entry < 100:
        for nice in NICE_PRICES:
            if (size / nice) % 1 == 0.5:
                out += [nice / (1 - entry / 100), nice / (1 + entry / 100)]
    return out


def near_midpoint_value(around: float, decimals: int, state: WireMap) -> float:
    """A deterministic near-midpoint value close to ``around`` (varied by the state's clock)."""
    decimals = max(0, min(decimals, 8))
    scale = 10**decimals
    around = around if math.isfinite(around) else 0.1
    k = round(around * scale) + int(float(state.get("now") or 0.0)) % 3 - 1
    mid = float(f"{max(k, 0)}.5e-{decimals}") if decimals > 0 else max(k, 0) + 0.5
    return nudge(mid, int(float(state.get("now") or 0.0)) % 5 - 2)


def _fill(draw: Draw, state: WireMap, context: Context, order: WireMap) -> Event:
    config = context.config
    price = order.get("price", 0.0)
    now = float(state.get("now") or 0.0)
    volume = order.get("volume", 0.0)
    fee_pct = float(cfg(config, "maker_fee_pct"))
    how = draw(st.integers(0, 9))
    if how <= 4 or not isinstance(price, int | float):
        fill_price = price
    elif how <= 6:
        fill_price = price * draw(st.sampled_from([0.999, 1.001, 0.99, 1.01]))
    elif how == 7 and order.get("role") == "entry":  # the exit price lands near a midpoint
        p = float(cfg(config, "profit_pct"))
        decimals = int(cfg(config, "price_decimals"))
        target = near_midpoint_value(float(price), decimals, state)
        fill_price = target / (1 + p / 100) if order.get("side") == "buy" else target / (1 - p / 100)
    else:
        fill_price = order.get("entry_price") or price  # break-even candidates
    try:
        fee = round(float(fill_price) * float(volume) * fee_pct / 100, 8)
    except (TypeError, ValueError):
        fee = 0.0
    fee_kind = draw(st.integers(0, 6))
    if fee_kind == 0:  # a zero fee, on an exit often an int 0 (the bot's fee-free fills; booking float()s it)
        fee = 0 if order.get("role") == "exit" and draw(st.booleans()) else 0.0
    elif fee_kind == 6:  # an int where a float is expected (section 9: booking float()s it)
        fee = draw(st.sampled_from([0, 0, 1]))
        # a fill's int *price* is kept raw by the module (the exit's entry_price, a cycle's exit_price),
        # and our port still widens it to a float: a known limit of the port (README), not drawn here so
        # that a search reports what is new; PriceTick's int prices are drawn (the port keeps those)
    elif fee_kind == 1 and order.get("role") == "exit":  # net exactly zero: fee = gross - entry_fee
        try:
            entry = float(order.get("entry_price") or 0.0)
            gross = (
                (entry - fill_price) * volume
                if order.get("trade_id") == "A"
                else (fill_price - entry) * volume
            )
            fee = max(0.0, gross - float(order.get("entry_fee") or 0.0))
        except (TypeError, ValueError):
            pass
    txid = draw(st.sampled_from([order.get("txid") or "TX-F", "TX-F", *ODD_TXIDS[:2]]))
    return Event("FillEvent", {
        "order_local_id": order.get("local_id"), "txid": txid, "side": order.get("side"), "price": fill_price,
        "volume": volume, "fee": fee, "timestamp": now + draw(st.sampled_from([0.0, 1.0, 5.0, 60.0])),
    })  # fmt: skip


def _recovery_event(draw: Draw, state: WireMap, context: Context, recovery: WireMap | None) -> Event:
    now = float(state.get("now") or 0.0)
    rid = recovery.get("recovery_id") if recovery else draw(st.sampled_from([99, 0, -1]))
    ts = now + draw(st.sampled_from([0.0, 1.0, 30.0]))
    if draw(st.integers(0, 3)) == 0:
        return Event(
            "RecoveryCancelEvent",
            {"recovery_id": rid, "txid": (recovery or {}).get("txid", ""), "timestamp": ts},
        )
    market = float(state.get("market_price") or 0.0)
    price = (recovery or {}).get("price", market)
    price = draw(st.sampled_from([price, market, price * 1.01])) if isinstance(price, int | float) else market
    volume = (recovery or {}).get("volume", 13.0)
    fee = draw(st.sampled_from([0.0, 0.01, 0.033, (recovery or {}).get("entry_fee", 0.0), 0]))
    txid = draw(st.sampled_from(["RX-F", *ODD_TXIDS[:2]]))
    return Event("RecoveryFillEvent", {
        "recovery_id": rid, "txid": txid, "side": (recovery or {}).get("side", "buy"), "price": price,
        "volume": volume, "fee": fee, "timestamp": ts,
    })  # fmt: skip


class DogeStrategies(Strategies):
    """State-guided generation for the DOGE pair reducer."""

    def initial(self) -> st.SearchStrategy[Scenario]:
        return scenarios()

    def next_inputs(self, state: WireMap, context: Context, draw: Draw) -> list[Input]:
        orders = [o for o in state.get("orders") or [] if isinstance(o, dict)]
        recoveries = [r for r in state.get("recovery_orders") or [] if isinstance(r, dict)]
        now = float(state.get("now") or 0.0)
        if draw(st.integers(0, 7)) == 0 and (aimed := tie_inputs(state, context, draw)):
            return aimed
        kind = draw(st.sampled_from(["fill", "fill", "fill", "price", "price", "price", "timer", "timer",
                                     "recovery", "stale", "duplicate", "extreme", "call"]))  # fmt: skip
        if kind in ("fill", "duplicate") and orders:
            event = _fill(draw, state, context, draw(st.sampled_from(orders)))
            return [event, event] if kind == "duplicate" else [event]
        if kind == "recovery" and recoveries:
            return [_recovery_event(draw, state, context, draw(st.sampled_from(recoveries)))]
        if kind == "stale":
            if draw(st.booleans()):
                return [_recovery_event(draw, state, context, None)]
            ghost = {"local_id": draw(st.sampled_from([999, 0, -1])),
                     "price": state.get("market_price") or 0.1,
                     "volume": 13.0, "side": "buy", "role": "entry"}  # fmt: skip
            return [_fill(draw, state, context, ghost)]
        if kind == "extreme":
            # NaN never refreshes (the market > 0 guard); -0.0 and an int price (section 9)
            price = draw(st.sampled_from([0.0, 1e-9, 1e9, 5e-324, 1e300, -0.1, math.nan, -0.0, 100, 1]))
            return [Event("PriceTick", {"price": price, "timestamp": now + 1.0})]
        if kind == "call" and orders:
            order = draw(st.sampled_from(orders))
            regime = draw(st.sampled_from([0, 1, 2, None, *RAW_REGIMES]))
            return [
                Call(
                    "apply_order_regime_at_entry",
                    {"local_id": order.get("local_id"), "regime_at_entry": regime},
                )
            ]
        if kind == "timer" or (kind != "price" and draw(st.booleans())):
            return [Event("TimerTick", {"timestamp": draw(st.sampled_from(_ticks(state, context.config)))})]
        price = draw(st.sampled_from(_markets(state, context)))
        odd = draw(st.integers(0, 24))
        if odd == 0:  # -0.0: no market (section 9: the market > 0 guards)
            price = -0.0
        elif odd == 1 and 1 <= price < 1e15:  # an int where a float is expected (msgpack-encodable)
            price = round(price)
        return [
            Event("PriceTick", {"price": price, "timestamp": now + draw(st.sampled_from([1.0, 10.0, 0.0]))})
        ]


# -- aimed generation: exact ties, recovery caps, boundaries, missing keys ----------------------------


def is_exact_tie(value: float, decimals: int) -> bool:
    """True when ``value``'s exact binary value lies exactly half-way between two multiples of
    ``10^-decimals`` (the only case where Python's round goes to even)."""
    if not math.isfinite(value) or decimals < 0:
        return False
    scaled = Fraction(value) * 10**decimals
    return bool(scaled - math.floor(scaled) == Fraction(1, 2))


def exact_tie_value(decimals: int, around: float, offset: int = 0) -> float:
    """The exact tie at ``decimals`` nearest ``around`` (moved by ``offset`` ties): an odd multiple of
    ``2^-(decimals + 1)``, e.g. 0.1640625 = 21 x 2^-7 at 6 decimals. Every such value is a tie, and
    no other double is."""
    step = Fraction(1, 2 ** (decimals + 1))
    j = max(1, math.floor(Fraction(max(around, 0.0)) / step))
    j = (j | 1) + 2 * offset
    return float(max(j, 1) * step)


@st.composite
def exact_ties(draw: Any, decimals: int, around: float = 0.1) -> float:
    """Exact binary ties at ``decimals`` near ``around`` (decimals is clipped to 0..8)."""
    decimals = max(0, min(decimals, 8))
    return exact_tie_value(decimals, around, draw(st.integers(-20, 20)))


def solve_product(target: float, factor: float) -> float | None:
    """A double ``m`` with ``m * factor == target`` exactly in floating point (None if none is found
    within a few ulps of ``target / factor``): the input that makes a computed price land on ``target``."""
    if factor <= 0 or not math.isfinite(factor) or target <= 0:
        return None
    guess = target / factor
    for k in (0, -1, 1, -2, 2, -3, 3, -4, 4):
        m = nudge(guess, k)
        if m * factor == target:
            return m
    return None


def _distance(config: WireMap, state: WireMap, trade: str) -> float:
    """The entry distance times the backoff multiplier, as DOGE_REDUCER.md section 3 computes it."""
    d = _entry_pct(config, trade)
    n = state.get(f"consecutive_losses_{trade.lower()}") or 0
    start = cfg(config, "loss_backoff_start")
    try:
        mult = 1.0 if n < start else min(cfg(config, "backoff_max_multiplier"),
                                         1 + cfg(config, "backoff_factor") * (n - start + 1))  # fmt: skip
        return float(d * mult)
    except TypeError:
        return float(d)


def tie_inputs(state: WireMap, context: Context, draw: Draw) -> list[Input]:
    """Events whose computed prices land exactly on a binary tie at price_decimals: the tie is built
    first, then the market (for new entries and the exit's market term) or the fill price (for the
    exit's profit term) that produces it."""
    config = context.config
    try:
        decimals = max(0, min(int(cfg(config, "price_decimals")), 8))
        market = float(state.get("market_price") or 0.1)
        now = float(state.get("now") or 0.0)
    except (TypeError, ValueError):
        return []
    tie = exact_tie_value(decimals, market if market > 0 else 0.1, draw(st.integers(-6, 6)))
    orders = [o for o in state.get("orders") or [] if isinstance(o, dict)]
    entries = [o for o in orders if o.get("role") == "entry" and isinstance(o.get("price"), int | float)]
    how = draw(st.integers(0, 4))
    if how == 4:  # a new entry's volume size / price lands exactly on a tie at volume_decimals
        return _volume_tie_inputs(state, context, draw, market, now)
    if how == 1 and entries:  # the exit's profit term: f * (1 +/- p/100) == tie
        order = draw(st.sampled_from(entries))
        p = state.get("profit_pct_runtime") or cfg(config, "profit_pct")
        try:
            factor = 1 + p / 100 if order.get("side") == "buy" else 1 - p / 100
        except TypeError:
            return []
        fill = solve_product(tie, factor)
        if fill is not None:
            volume = order.get("volume", 13.0)
            return [Event("FillEvent", {
                "order_local_id": order.get("local_id"), "txid": order.get("txid") or "TX-T",
                "side": order.get("side"), "price": fill, "volume": volume, "fee": 0.0,
                "timestamp": now + 1.0,
            })]  # fmt: skip
    if how == 2:  # the exit's market term: market * (1 +/- e/100) == tie
        e = cfg(config, "entry_pct")
        factor = 1 + e / 100 if draw(st.booleans()) else 1 - e / 100
    elif how == 3:
        factor = 1.0  # the market itself on a tie
    else:  # a new entry's price: market * (1 -/+ d*mult/100) == tie
        trade = draw(st.sampled_from(["A", "B"]))
        d = _distance(config, state, trade)
        factor = 1 + d / 100 if trade == "A" else 1 - d / 100
    m = solve_product(tie, factor)
    if m is None:
        return []
    return [Event("PriceTick", {"price": m, "timestamp": now + draw(st.sampled_from([1.0, 0.0]))})]


def _volume_tie_inputs(
    state: WireMap, context: Context, draw: Draw, market: float, now: float
) -> list[Input]:
    """A market at which the next entry's price ``P`` (a price round_price returns unchanged) makes
    ``size / P`` an exact tie at volume_decimals: the price is chosen first, then the market."""
    config = context.config
    try:
        vd = max(0, int(cfg(config, "volume_decimals")))
        pd = max(0, min(int(cfg(config, "price_decimals")), 8))
        size = float(size_of(context))
    except (TypeError, ValueError):
        return []
    candidates = [*NICE_PRICES, *(round(market * k, pd) for k in (0.5, 0.8, 1.0, 1.25, 2.0))]
    prices = [p for p in candidates if p > 0 and round(p, pd) == p and is_exact_tie(size / p, vd)]
    if not prices:
        return []
    price = draw(st.sampled_from(prices))
    trade = draw(st.sampled_from(["A", "B"]))
    d = _distance(config, state, trade)
    m = solve_product(price, 1 + d / 100 if trade == "A" else 1 - d / 100)
    return [Event("PriceTick", {"price": m, "timestamp": now + 1.0})] if m is not None else []


@st.composite
def missing_keys(draw: Any, state: WireMap) -> WireMap:
    """``state`` with any subset of its top-level keys left out (from none to all of them)."""
    dropped = draw(st.sets(st.sampled_from(sorted(state)), max_size=len(state))) if state else set()
    return {k: v for k, v in state.items() if k not in dropped}


@st.composite
def cap_scenarios(draw: Any) -> Scenario:
    """Every phase with a recovery book at, one over and several over a cap of 1 to 4: the next
    orphaning (S1/S2 timeout, which the walk's timer ticks hit exactly) evicts none, one or several;
    recoveries at equal distances and equal ages test the ranking's tie-breaks, and three or more
    test the order the survivors are kept in. Sometimes the market is an exact tie, sometimes keys
    are missing."""
    context = draw(contexts())
    cap = draw(st.integers(1, 4))
    # the config may carry the cap as 2.0 or "2" (section 9: int() reads both)
    written: int | float | str = draw(st.sampled_from([cap, cap, float(cap), str(cap)]))
    config = {**context.config, "max_recovery_slots": written}
    context = attrs.evolve(context, config=config)
    decimals = int(cfg(config, "price_decimals"))
    state = draw(states(config, size_of(context)))
    market = float(state["market_price"]) if state["market_price"] else 0.1
    if draw(st.integers(0, 2)) == 0:
        market = state["market_price"] = draw(exact_ties(decimals, market))
    count = max(0, cap - 1 + draw(st.sampled_from([0, 1, 1, 2, 3, 4])))  # under, one over, several over
    now = float(state["now"])
    recoveries = []
    for rid in range(1, count + 1):
        trade = draw(st.sampled_from(["A", "B"]))
        away = draw(st.sampled_from([0.9, 1.1, 0.95, 1.05, 0.9, 1.1]))  # repeated: distance ties
        recoveries.append({
            "recovery_id": rid, "side": "buy" if trade == "A" else "sell",
            "price": round(market * away, max(0, decimals)), "volume": 13.0, "trade_id": trade,
            "cycle": 1, "entry_price": round(market, max(0, decimals)),
            "orphaned_at": now - draw(st.sampled_from([100.0, 100.0, 200.0, 0.0])),
            "entry_fee": 0.0, "entry_filled_at": draw(st.sampled_from([0.0, now - 500.0])),
            "txid": draw(st.sampled_from(["", f"RX-{rid}"])), "reason": "s1_timeout", "regime_at_entry": None,
        })  # fmt: skip
    if draw(st.booleans()):
        recoveries.reverse()  # ids out of book order
    exits = [o for o in state["orders"] if o.get("role") == "exit"]
    if exits and draw(st.booleans()):  # the first exit is due: a tick at now orphans it (S1, exactly)
        first = exits[0]
        first["entry_filled_at"] = now - float(cfg(config, "s1_orphan_after_sec"))
        first["price"] = round(market * (0.99 if first["side"] == "buy" else 1.01), max(0, decimals))
    state["recovery_orders"] = recoveries
    state["next_recovery_id"] = count + 1
    if draw(st.integers(0, 3)) == 0:
        state = draw(missing_keys(state))
    return Scenario("generated", context, state, ())
