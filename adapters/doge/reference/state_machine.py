"""Reference implementation of the DOGE pair reducer, written from the spec.

The live bot keeps one ``PairState`` per trading slot and changes it only through the pure reducer
``transition(state, event, cfg, order_size_usd, order_sizes=None) -> (next_state, actions)``, checked
by ``check_invariants``. This module is the project's own implementation of that reducer, written from
``DOGE_REDUCER.md`` (sections 2 to 5, and ``apply_order_regime_at_entry`` of section 8). It is an
*upstream-compatible module* (section 1): it exposes the same class, event, action and function names
as the bot's ``state_machine.py``, so every adapter that drives the real module drives this one too,
and it is the authoritative side when the Haskell port is shadowed against the spec.

Notes that matter to anyone porting or comparing (the Haskell port must agree bit for bit):

- Floats are Python floats; ``round`` is Python's correctly rounded ``round``; ``min``/``max`` keep
  Python's semantics (``max(a, b)`` is ``b if b > a else a``, ``min(a, b)`` is ``b if b < a else a``).
- A trade is "A" only when ``trade_id == "A"``; every other trade id takes the B branch, except
  where section 9 says otherwise (the entry distance: only "B" takes entry_pct_b, any other id
  entry_pct; the loss count of a new buy entry: only "B" uses consecutive_losses_b). A side is
  "buy" only when ``side == "buy"``; a role is "entry" only when ``role == "entry"``.
- Removing an order or a recovery by id removes every entry that carries that id; the recovery-cap
  eviction selects *ids*, so every recovery sharing a selected id goes.
- Event payloads are not coerced: an int price in an event stays an int in the state. Booking a cycle
  ``float()``s the entry fee and the exit fee (every path); the eviction path also ``float()``s its
  price, volume, entry fee and entry time; the RecoveryFillEvent path does not (section 9).
- Config values are never coerced (``sticky_mode_enabled: "false"`` is truthy), except
  ``int(max_recovery_slots)`` when orphaning.
- ``apply_order_regime_at_entry`` follows the *bot's wrapper* (``int()`` of the local_id first), then
  the module (the regime is normalised only when some order matches).

Every item of DOGE_REDUCER.md section 9 ("Bit-exact details") is followed here; tests/test_bitexact.py
holds one test per item.

Performance: the history (``completed_cycles``) only grows, and the engine detects changes by
identity, so a transition never copies the history except to append one record, and every field it
does not change is the very object of the previous state. ``PairState`` is therefore a frozen
dataclass *with* an instance dict: ``_evolve`` copies that dict instead of re-running a 31-argument
frozen ``__init__`` (what ``dataclasses.replace`` does), which is several times faster and shares
every unchanged reference just the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

__all__ = [
    "Action",
    "BookCycleAction",
    "CancelOrderAction",
    "CycleRecord",
    "EngineConfig",
    "Event",
    "FillEvent",
    "OrderState",
    "OrphanOrderAction",
    "PairPhase",
    "PairState",
    "PlaceOrderAction",
    "PriceTick",
    "RecoveryCancelEvent",
    "RecoveryFillEvent",
    "RecoveryOrder",
    "TimerTick",
    "apply_order_regime_at_entry",
    "bind_order_txid",
    "bind_recovery_txid",
    "bootstrap_entries",
    "check_invariants",
    "compute_order_volume",
    "derive_phase",
    "entry_backoff_multiplier",
    "from_dict",
    "normalize_regime",
    "round_price",
    "to_dict",
    "transition",
]

PairPhase = Literal["S0", "S1a", "S1b", "S2"]


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class EngineConfig:
    entry_pct: float = 0.2
    entry_pct_a: float | None = None
    entry_pct_b: float | None = None
    profit_pct: float = 1.0
    refresh_pct: float = 1.0
    order_size_usd: float = 2.0
    price_decimals: int = 6
    volume_decimals: int = 0
    min_volume: float = 13.0
    min_cost_usd: float = 0.0
    maker_fee_pct: float = 0.25
    stale_price_max_age_sec: float = 60.0
    s1_orphan_after_sec: float = 1350.0
    s2_orphan_after_sec: float = 1800.0
    loss_backoff_start: int = 3
    loss_cooldown_start: int = 5
    loss_cooldown_sec: float = 900.0
    reentry_base_cooldown_sec: float = 0.0
    backoff_factor: float = 0.5
    backoff_max_multiplier: float = 5.0
    max_consecutive_refreshes: int = 3
    refresh_cooldown_sec: float = 300.0
    max_recovery_slots: int = 2
    sticky_mode_enabled: bool = False


@dataclass(frozen=True, slots=True)
class OrderState:
    local_id: int
    side: str
    role: str
    price: float
    volume: float
    trade_id: str
    cycle: int
    txid: str = ""
    placed_at: float = 0.0
    entry_price: float = 0.0
    entry_fee: float = 0.0
    entry_filled_at: float = 0.0
    regime_at_entry: int | None = None


@dataclass(frozen=True, slots=True)
class RecoveryOrder:
    recovery_id: int
    side: str
    price: float
    volume: float
    trade_id: str
    cycle: int
    entry_price: float
    orphaned_at: float
    entry_fee: float = 0.0
    entry_filled_at: float = 0.0
    txid: str = ""
    reason: str = "stale"
    regime_at_entry: int | None = None


@dataclass(frozen=True, slots=True)
class CycleRecord:
    trade_id: str
    cycle: int
    entry_price: float
    exit_price: float
    volume: float
    gross_profit: float
    fees: float
    net_profit: float
    entry_fee: float = 0.0
    exit_fee: float = 0.0
    quote_fee: float = 0.0
    settled_usd: float = 0.0
    entry_time: float = 0.0
    exit_time: float = 0.0
    from_recovery: bool = False
    regime_at_entry: int | None = None


# Deliberately not slots=True: _evolve copies the instance dict (see the module docstring).
@dataclass(frozen=True)
class PairState:
    market_price: float
    now: float
    orders: tuple[OrderState, ...] = ()
    recovery_orders: tuple[RecoveryOrder, ...] = ()
    completed_cycles: tuple[CycleRecord, ...] = ()
    cycle_a: int = 1
    cycle_b: int = 1
    next_order_id: int = 1
    next_recovery_id: int = 1
    total_profit: float = 0.0
    total_settled_usd: float = 0.0
    total_fees: float = 0.0
    today_realized_loss: float = 0.0
    total_round_trips: int = 0
    s2_entered_at: Any = None
    last_price_update_at: Any = None
    consecutive_losses_a: int = 0
    consecutive_losses_b: int = 0
    cooldown_until_a: float = 0.0
    cooldown_until_b: float = 0.0
    long_only: bool = False
    short_only: bool = False
    mode_source: str = "none"
    consecutive_refreshes_a: int = 0
    consecutive_refreshes_b: int = 0
    last_refresh_direction_a: Any = None
    last_refresh_direction_b: Any = None
    refresh_cooldown_until_a: float = 0.0
    refresh_cooldown_until_b: float = 0.0
    profit_pct_runtime: float = 1.0


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class PriceTick:
    price: float
    timestamp: float


@dataclass(frozen=True, slots=True)
class TimerTick:
    timestamp: float


@dataclass(frozen=True, slots=True)
class FillEvent:
    order_local_id: int
    txid: str
    side: str
    price: float
    volume: float
    fee: float
    timestamp: float


@dataclass(frozen=True, slots=True)
class RecoveryFillEvent:
    recovery_id: int
    txid: str
    side: str
    price: float
    volume: float
    fee: float
    timestamp: float


@dataclass(frozen=True, slots=True)
class RecoveryCancelEvent:
    recovery_id: int
    txid: str
    timestamp: float


Event = PriceTick | TimerTick | FillEvent | RecoveryFillEvent | RecoveryCancelEvent


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class PlaceOrderAction:
    local_id: int
    side: str
    role: str
    price: float
    volume: float
    trade_id: str
    cycle: int
    post_only: bool = True
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CancelOrderAction:
    local_id: int
    txid: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class OrphanOrderAction:
    local_id: int
    recovery_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class BookCycleAction:
    trade_id: str
    cycle: int
    net_profit: float
    gross_profit: float
    fees: float
    settled_usd: float = 0.0
    from_recovery: bool = False


Action = PlaceOrderAction | CancelOrderAction | OrphanOrderAction | BookCycleAction


# --------------------------------------------------------------------------- helpers (section 3)

_new_object = object.__new__


def _evolve(state: PairState, **changes: Any) -> PairState:
    """``dataclasses.replace`` for PairState, sharing every unchanged field by reference."""
    new = _new_object(PairState)
    fields = new.__dict__
    fields.update(state.__dict__)
    fields.update(changes)
    return new


def round_price(value: float, price_decimals: int) -> float:
    """Python's ``round``: the double nearest the exact decimal rounding, ties to even on the binary value."""
    return round(value, price_decimals)


def derive_phase(state: PairState) -> PairPhase:
    has_buy_exit = False
    has_sell_exit = False
    for o in state.orders:
        if o.role == "exit":
            if o.side == "buy":
                has_buy_exit = True
            elif o.side == "sell":
                has_sell_exit = True
    if has_buy_exit:
        return "S2" if has_sell_exit else "S1a"
    return "S1b" if has_sell_exit else "S0"


def entry_backoff_multiplier(loss_count: int, cfg: EngineConfig) -> float:
    if loss_count < cfg.loss_backoff_start:
        return 1.0
    return min(cfg.backoff_max_multiplier, 1 + cfg.backoff_factor * (loss_count - cfg.loss_backoff_start + 1))


def _entry_distance(trade_id: str, cfg: EngineConfig) -> float:
    d = cfg.entry_pct
    # Section 9: only "A" takes entry_pct_a and only "B" entry_pct_b; any other trade id uses entry_pct.
    override = cfg.entry_pct_a if trade_id == "A" else cfg.entry_pct_b if trade_id == "B" else None
    if override is not None and override > 0:
        d = override
    if d <= 0:
        d = cfg.entry_pct
    return d


def compute_order_volume(price: float, cfg: EngineConfig, order_size_usd: float) -> float | None:
    min_cost = cfg.min_cost_usd
    if price <= 0 or order_size_usd <= 0 or (min_cost > 0 and order_size_usd < min_cost):
        return None
    raw = order_size_usd / price
    vol = float(round(raw)) if cfg.volume_decimals <= 0 else round(raw, cfg.volume_decimals)
    if vol < cfg.min_volume or (min_cost > 0 and vol * price < min_cost):
        return None
    return vol


def _exit_price(fill_price: float, exit_side: str, state: PairState, cfg: EngineConfig) -> float:
    p = state.profit_pct_runtime or cfg.profit_pct
    e = cfg.entry_pct
    market = state.market_price
    if exit_side == "sell":
        return round(max(fill_price * (1 + p / 100), market * (1 + e / 100)), cfg.price_decimals)
    return round(min(fill_price * (1 - p / 100), market * (1 - e / 100)), cfg.price_decimals)


def _size_for(trade_id: str, order_size_usd: float, order_sizes: Mapping[str, float] | None) -> float:
    if order_sizes is not None and trade_id in order_sizes:
        return order_sizes[trade_id]
    return order_size_usd


def _new_entry(
    state: PairState,
    cfg: EngineConfig,
    side: str,
    trade_id: str,
    cycle: int,
    size: float,
    reason: str,
) -> tuple[PairState, PlaceOrderAction | None]:
    """Place one entry order; when the volume rule refuses, nothing changes (same state object)."""
    d = _entry_distance(trade_id, cfg)
    # Section 9: a buy uses consecutive_losses_b only for trade "B" (else _a); a sell uses
    # consecutive_losses_a only for trade "A" (else _b).
    if side == "buy":
        losses = state.consecutive_losses_b if trade_id == "B" else state.consecutive_losses_a
    else:
        losses = state.consecutive_losses_a if trade_id == "A" else state.consecutive_losses_b
    mult = entry_backoff_multiplier(losses, cfg)
    market = state.market_price
    decimals = cfg.price_decimals
    if side == "buy":
        price = round(market * (1 - d * mult / 100), decimals)
        if price <= 0:
            price = round(market * (1 - d / 100), decimals)
    else:
        price = round(market * (1 + d * mult / 100), decimals)
        if price <= 0:
            price = round(market * (1 + d / 100), decimals)
    volume = compute_order_volume(price, cfg, size)
    if volume is None:
        return state, None
    local_id = state.next_order_id
    order = OrderState(local_id, side, "entry", price, volume, trade_id, cycle, "", state.now)
    new_state = _evolve(state, orders=(*state.orders, order), next_order_id=local_id + 1)
    return new_state, PlaceOrderAction(local_id, side, "entry", price, volume, trade_id, cycle, True, reason)


def _clear_s2_unless_s2(state: PairState) -> PairState:
    if state.s2_entered_at is not None and derive_phase(state) != "S2":
        return _evolve(state, s2_entered_at=None)
    return state


def _book_cycle(
    state: PairState,
    *,
    trade_id: str,
    cycle: int,
    entry_price: float,
    volume: float,
    entry_fee: float,
    entry_time: float,
    regime: int | None,
    fill_price: float,
    fill_fee: float,
    at: float,
    from_recovery: bool,
) -> tuple[PairState, BookCycleAction]:
    # Section 9: both fees are float()ed before anything is computed from them (an int fee of 0 books
    # 0.0); total_fees adds the raw fill fee.
    raw_fill_fee = fill_fee
    entry_fee = float(entry_fee)
    fill_fee = float(fill_fee)
    if trade_id == "A":
        gross = (entry_price - fill_price) * volume
        quote_fee = entry_fee
    else:
        gross = (fill_price - entry_price) * volume
        quote_fee = fill_fee
    fees = entry_fee + fill_fee
    net = gross - fees
    settled = gross - quote_fee
    record = CycleRecord(
        trade_id,
        cycle,
        entry_price,
        fill_price,
        volume,
        gross,
        fees,
        net,
        entry_fee,
        fill_fee,
        quote_fee,
        settled,
        entry_time,
        at,
        from_recovery,
        regime,
    )
    changes: dict[str, Any] = {
        "completed_cycles": (*state.completed_cycles, record),
        "total_profit": state.total_profit + net,
        "total_settled_usd": state.total_settled_usd + settled,
        "total_fees": state.total_fees + raw_fill_fee,
        # Section 9: always reassigned (a stored -0.0 becomes 0.0 after any booking).
        "today_realized_loss": state.today_realized_loss + (abs(net) if net < 0 else 0.0),
        "total_round_trips": state.total_round_trips + 1,
    }
    new_state = _evolve(state, **changes)
    return new_state, BookCycleAction(trade_id, cycle, net, gross, fees, settled, from_recovery)


def _update_loss_counters(state: PairState, trade_id: str, net: float, cfg: EngineConfig) -> PairState:
    now = state.now
    if trade_id == "A":
        cooldown = state.cooldown_until_a
        losses = state.consecutive_losses_a
    else:
        cooldown = state.cooldown_until_b
        losses = state.consecutive_losses_b
    if cfg.reentry_base_cooldown_sec > 0:
        cooldown = max(cooldown, now + cfg.reentry_base_cooldown_sec)
    losses = losses + 1 if net < 0 else 0
    if losses >= cfg.loss_cooldown_start:
        cooldown = max(cooldown, now + cfg.loss_cooldown_sec)
    if trade_id == "A":
        return _evolve(state, consecutive_losses_a=losses, cooldown_until_a=cooldown)
    return _evolve(state, consecutive_losses_b=losses, cooldown_until_b=cooldown)


def _followup_entry(
    state: PairState, cfg: EngineConfig, trade_id: str, size: float, reason: str
) -> tuple[PairState, PlaceOrderAction | None]:
    if trade_id == "A":
        if state.long_only or state.now < state.cooldown_until_a:
            return state, None
        return _new_entry(state, cfg, "sell", "A", state.cycle_a, size, reason)
    if state.short_only or state.now < state.cooldown_until_b:
        return state, None
    return _new_entry(state, cfg, "buy", "B", state.cycle_b, size, reason)


def _book_recovery(
    state: PairState,
    recovery: RecoveryOrder,
    fill_price: float,
    fill_fee: float,
    at: float,
    cfg: EngineConfig,
    actions: list[Action],
    *,
    volume: Any,
    entry_time: Any,
) -> PairState:
    state, book = _book_cycle(
        state,
        trade_id=recovery.trade_id,
        cycle=recovery.cycle,
        entry_price=recovery.entry_price,
        volume=volume,
        entry_fee=recovery.entry_fee,
        entry_time=entry_time,
        regime=recovery.regime_at_entry,
        fill_price=fill_price,
        fill_fee=fill_fee,
        at=at,
        from_recovery=True,
    )
    state = _update_loss_counters(state, recovery.trade_id, book.net_profit, cfg)
    actions.append(book)
    return state


def _recovery_entry_time(r: RecoveryOrder) -> Any:
    """entry_filled_at if > 0, else orphaned_at (a negative or NaN entry_filled_at takes orphaned_at)."""
    return r.entry_filled_at if r.entry_filled_at > 0 else r.orphaned_at


def _evict_for_cap(state: PairState, cfg: EngineConfig, overflow: int, actions: list[Action]) -> PairState:
    recoveries = state.recovery_orders
    market = state.market_price

    def rank(r: RecoveryOrder) -> tuple[float, float, int]:
        # Section 9: the `market > 0` guard (a NaN market ranks every recovery at distance 0).
        distance = abs(r.price - market) / market if market > 0 else 0
        return (-distance, r.orphaned_at, r.recovery_id)

    # Section 9: the module selects *ids*, so every recovery sharing a selected id is evicted (possibly
    # more than `overflow`), booked in original list order.
    evicted = {r.recovery_id for r in sorted(recoveries, key=rank)[:overflow]}
    kept: list[RecoveryOrder] = []
    for r in recoveries:
        if r.recovery_id not in evicted:
            kept.append(r)
            continue
        if r.txid != "":
            actions.append(CancelOrderAction(-r.recovery_id, r.txid, "recovery_cap_evict_priority"))
        market_now = state.market_price
        x = float(market_now if market_now > 0 else r.price)
        if x <= 0:
            x = float(r.entry_price if r.entry_price > 0 else 0.0)
        volume = float(r.volume)
        # Section 9: this grouping, the division first (not x * volume * maker_fee_pct / 100).
        fee = max(0.0, x * volume * (float(cfg.maker_fee_pct) / 100.0))
        state = _book_recovery(
            state,
            r,
            x,
            fee,
            state.now,
            cfg,
            actions,
            volume=volume,
            entry_time=float(_recovery_entry_time(r)),
        )
    return _evolve(state, recovery_orders=tuple(kept))


def _orphan_exit(
    state: PairState,
    cfg: EngineConfig,
    order: OrderState,
    reason: str,
    order_size_usd: float,
    order_sizes: Mapping[str, float] | None,
) -> tuple[PairState, list[Action]]:
    actions: list[Action] = []
    # int(): a config may carry 2.0 or "2" (section 9); config values are otherwise never coerced.
    overflow = len(state.recovery_orders) + 1 - max(1, int(cfg.max_recovery_slots))
    if overflow > 0:
        state = _evict_for_cap(state, cfg, overflow, actions)

    recovery_id = state.next_recovery_id
    recovery = RecoveryOrder(
        recovery_id,
        order.side,
        order.price,
        order.volume,
        order.trade_id,
        order.cycle,
        order.entry_price,
        state.now,
        order.entry_fee,
        order.entry_filled_at,
        order.txid,
        reason,
        order.regime_at_entry,
    )
    local_id = order.local_id
    is_a = order.trade_id == "A"
    changes: dict[str, Any] = {
        "orders": tuple(o for o in state.orders if o.local_id != local_id),
        "recovery_orders": (*state.recovery_orders, recovery),
        "next_recovery_id": recovery_id + 1,
    }
    actions.append(OrphanOrderAction(local_id, recovery_id, reason))

    reentry = cfg.reentry_base_cooldown_sec
    if is_a:
        if reentry > 0:
            changes["cooldown_until_a"] = max(state.cooldown_until_a, state.now + reentry)
        changes["cycle_a"] = state.cycle_a + 1
    else:
        if reentry > 0:
            changes["cooldown_until_b"] = max(state.cooldown_until_b, state.now + reentry)
        changes["cycle_b"] = state.cycle_b + 1
    state = _evolve(state, **changes)

    # Section 9: when orphaning, order_sizes["A"] for trade "A" and order_sizes["B"] for every other id.
    size = _size_for("A" if is_a else "B", order_size_usd, order_sizes)
    state, place = _followup_entry(state, cfg, order.trade_id, size, "orphan_A" if is_a else "orphan_B")
    if place is not None:
        actions.append(place)
    return state, actions


# --------------------------------------------------------------------------- transition (section 4)


def _refresh_stale_entry(
    state: PairState,
    cfg: EngineConfig,
    order_size_usd: float,
    order_sizes: Mapping[str, float] | None,
) -> tuple[PairState, list[Action]]:
    market = state.market_price
    now = state.now
    refresh_pct = cfg.refresh_pct
    max_refreshes = cfg.max_consecutive_refreshes
    for o in state.orders:
        if o.role != "entry":
            continue
        # Section 9: computed only when market > 0 (a NaN market never refreshes).
        drift = abs(o.price - market) / market * 100 if market > 0 else 0
        if drift <= refresh_pct:
            continue
        is_a = o.trade_id == "A"
        if is_a:
            cooldown = state.refresh_cooldown_until_a
            count = state.consecutive_refreshes_a
            last_direction = state.last_refresh_direction_a
        else:
            cooldown = state.refresh_cooldown_until_b
            count = state.consecutive_refreshes_b
            last_direction = state.last_refresh_direction_b
        if now < cooldown:
            continue
        if count >= max_refreshes and cooldown > 0:
            count = 0
            cooldown = 0.0
        if o.side == "buy":
            direction = "down" if market < o.price else "up"
        else:
            direction = "up" if market > o.price else "down"
        count = count + 1 if direction == last_direction else 1

        actions: list[Action] = []
        if count >= max_refreshes:
            cooldown = now + cfg.refresh_cooldown_sec
        else:
            local_id = o.local_id
            state = _evolve(state, orders=tuple(x for x in state.orders if x.local_id != local_id))
            actions.append(CancelOrderAction(local_id, o.txid, "stale_entry"))
            size = _size_for(o.trade_id, order_size_usd, order_sizes)
            state, place = _new_entry(state, cfg, o.side, o.trade_id, o.cycle, size, "refresh_entry")
            if place is not None:
                actions.append(place)
        if is_a:
            state = _evolve(
                state,
                consecutive_refreshes_a=count,
                last_refresh_direction_a=direction,
                refresh_cooldown_until_a=cooldown,
            )
        else:
            state = _evolve(
                state,
                consecutive_refreshes_b=count,
                last_refresh_direction_b=direction,
                refresh_cooldown_until_b=cooldown,
            )
        return state, actions
    return state, []


def _on_timer_tick(
    state: PairState,
    ts: float,
    cfg: EngineConfig,
    order_size_usd: float,
    order_sizes: Mapping[str, float] | None,
) -> tuple[PairState, list[Action]]:
    if cfg.sticky_mode_enabled:
        return _evolve(state, now=ts, s2_entered_at=None), []
    phase = derive_phase(state)
    if phase != "S2" and state.s2_entered_at is not None:
        state = _evolve(state, now=ts, s2_entered_at=None)
    else:
        state = _evolve(state, now=ts)
    now = ts
    if phase == "S1a" or phase == "S1b":
        ex = next(o for o in state.orders if o.role == "exit")
        age = now - (ex.entry_filled_at or ex.placed_at or now)
        market = state.market_price
        moved_away = (ex.side == "sell" and market < ex.price) or (ex.side == "buy" and market > ex.price)
        if age >= cfg.s1_orphan_after_sec and moved_away:
            return _orphan_exit(state, cfg, ex, "s1_timeout", order_size_usd, order_sizes)
    elif phase == "S2":
        entered = state.s2_entered_at
        if entered is None:
            return _evolve(state, s2_entered_at=now), []
        market = state.market_price
        if now - entered >= cfg.s2_orphan_after_sec and market > 0:
            buy_exit = next(o for o in state.orders if o.role == "exit" and o.side == "buy")
            sell_exit = next(o for o in state.orders if o.role == "exit" and o.side == "sell")
            buy_distance = abs(buy_exit.price - market) / market
            sell_distance = abs(sell_exit.price - market) / market
            worse = buy_exit if buy_distance > sell_distance else sell_exit
            state, actions = _orphan_exit(state, cfg, worse, "s2_timeout", order_size_usd, order_sizes)
            return _evolve(state, s2_entered_at=None), actions
    return state, []


def _on_fill(
    state: PairState,
    event: FillEvent,
    cfg: EngineConfig,
    order_size_usd: float,
    order_sizes: Mapping[str, float] | None,
) -> tuple[PairState, list[Action]]:
    ts = event.timestamp
    local_id = event.order_local_id
    order = next((o for o in state.orders if o.local_id == local_id), None)
    if order is None:
        return _evolve(state, now=ts), []
    remaining = tuple(o for o in state.orders if o.local_id != local_id)
    actions: list[Action] = []
    if order.role == "entry":
        exit_side = "sell" if order.side == "buy" else "buy"
        state = _evolve(state, now=ts)
        price = _exit_price(event.price, exit_side, state, cfg)
        exit_id = state.next_order_id
        exit_order = OrderState(
            exit_id,
            exit_side,
            "exit",
            price,
            event.volume,
            order.trade_id,
            order.cycle,
            "",
            ts,
            event.price,
            event.fee,
            ts,
            order.regime_at_entry,
        )
        state = _evolve(
            state,
            orders=(*remaining, exit_order),
            next_order_id=exit_id + 1,
            total_fees=state.total_fees + event.fee,
        )
        actions.append(
            PlaceOrderAction(
                exit_id,
                exit_side,
                "exit",
                price,
                event.volume,
                order.trade_id,
                order.cycle,
                True,
                "entry_fill_exit",
            )
        )
        return _clear_s2_unless_s2(state), actions

    state = _evolve(state, now=ts, orders=remaining)
    state, book = _book_cycle(
        state,
        trade_id=order.trade_id,
        cycle=order.cycle,
        entry_price=order.entry_price,
        volume=order.volume,
        entry_fee=order.entry_fee,
        entry_time=order.entry_filled_at,
        regime=order.regime_at_entry,
        fill_price=event.price,
        fill_fee=event.fee,
        at=ts,
        from_recovery=False,
    )
    state = _update_loss_counters(state, order.trade_id, book.net_profit, cfg)
    actions.append(book)
    next_cycle = order.cycle + 1
    if order.trade_id == "A":
        state = _evolve(state, cycle_a=max(state.cycle_a, next_cycle))
    else:
        state = _evolve(state, cycle_b=max(state.cycle_b, next_cycle))
    size = _size_for(order.trade_id, order_size_usd, order_sizes)
    state, place = _followup_entry(state, cfg, order.trade_id, size, "cycle_complete")
    if place is not None:
        actions.append(place)
    return _clear_s2_unless_s2(state), actions


def _on_recovery_fill(
    state: PairState, event: RecoveryFillEvent, cfg: EngineConfig
) -> tuple[PairState, list[Action]]:
    ts = event.timestamp
    recovery_id = event.recovery_id
    recovery = next((r for r in state.recovery_orders if r.recovery_id == recovery_id), None)
    if recovery is None:
        return _evolve(state, now=ts), []
    state = _evolve(
        state,
        now=ts,
        recovery_orders=tuple(r for r in state.recovery_orders if r.recovery_id != recovery_id),
    )
    actions: list[Action] = []
    # No float() of price, volume or entry time on this path (section 9), unlike eviction.
    state = _book_recovery(
        state,
        recovery,
        event.price,
        event.fee,
        ts,
        cfg,
        actions,
        volume=recovery.volume,
        entry_time=_recovery_entry_time(recovery),
    )
    return _clear_s2_unless_s2(state), actions


def _on_recovery_cancel(state: PairState, event: RecoveryCancelEvent) -> tuple[PairState, list[Action]]:
    recovery_id = event.recovery_id
    recoveries = state.recovery_orders
    if any(r.recovery_id == recovery_id for r in recoveries):
        recoveries = tuple(r for r in recoveries if r.recovery_id != recovery_id)
    state = _evolve(state, now=event.timestamp, recovery_orders=recoveries)
    return _clear_s2_unless_s2(state), []


def transition(
    state: PairState,
    event: Event,
    cfg: EngineConfig,
    order_size_usd: float,
    order_sizes: Mapping[str, float] | None = None,
) -> tuple[PairState, list[Action]]:
    """The pure reducer: one event in, the next state and the actions to carry out."""
    kind = type(event)
    if kind not in _EVENT_CLASSES:
        # Section 9: the module tests isinstance in the order PriceTick, TimerTick, FillEvent,
        # RecoveryFillEvent, RecoveryCancelEvent; an event of none of these classes returns the state
        # unchanged (not even `now` set), no error. (`kind is` below is the fast path.)
        kind = next((cls for cls in _EVENT_CLASSES if isinstance(event, cls)), None)  # type: ignore[assignment]
        if kind is None:
            return state, []
    if kind is PriceTick:
        ts = event.timestamp
        state = _evolve(state, now=ts, market_price=event.price, last_price_update_at=ts)  # type: ignore[union-attr]
        return _refresh_stale_entry(state, cfg, order_size_usd, order_sizes)
    if kind is TimerTick:
        return _on_timer_tick(state, event.timestamp, cfg, order_size_usd, order_sizes)
    if kind is FillEvent:
        return _on_fill(state, event, cfg, order_size_usd, order_sizes)  # type: ignore[arg-type]
    if kind is RecoveryFillEvent:
        return _on_recovery_fill(state, event, cfg)  # type: ignore[arg-type]
    return _on_recovery_cancel(state, event)  # type: ignore[arg-type]


_EVENT_CLASSES = (PriceTick, TimerTick, FillEvent, RecoveryFillEvent, RecoveryCancelEvent)


# --------------------------------------------------------------------------- invariants (section 5)


def check_invariants(state: PairState) -> list[str]:
    violations: list[str] = []
    orders = state.orders
    buy_entries = sell_entries = buy_exits = sell_exits = entries = exits = 0
    for o in orders:
        if o.role == "entry":
            entries += 1
            if o.side == "buy":
                buy_entries += 1
            elif o.side == "sell":
                sell_entries += 1
        elif o.role == "exit":
            exits += 1
            if o.side == "buy":
                buy_exits += 1
            elif o.side == "sell":
                sell_exits += 1

    if len({o.local_id for o in orders}) != len(orders):
        violations.append("duplicate order local_id")

    phase = derive_phase(state)
    if phase == "S0":
        if state.long_only:
            if buy_entries != 1 or sell_entries or exits:
                violations.append("S0 long_only must be exactly one buy entry")
        elif state.short_only:
            if sell_entries != 1 or buy_entries or exits:
                violations.append("S0 short_only must be exactly one sell entry")
        elif buy_entries != 1 or sell_entries != 1 or exits:
            violations.append("S0 must be exactly A sell entry + B buy entry")
    elif phase == "S1a":
        if state.short_only:
            if buy_exits != 1:
                violations.append("S1a short_only must have one buy exit")
        elif buy_exits != 1 or buy_entries != 1 or sell_entries or sell_exits:
            violations.append("S1a must be one buy exit + one buy entry")
    elif phase == "S1b":
        if state.long_only:
            if sell_exits != 1:
                violations.append("S1b long_only must have one sell exit")
        elif sell_exits != 1 or sell_entries != 1 or buy_entries or buy_exits:
            violations.append("S1b must be one sell exit + one sell entry")
    elif buy_exits != 1 or sell_exits != 1 or entries:
        violations.append("S2 must be one buy exit + one sell exit only")

    if phase != "S2" and state.s2_entered_at is not None:
        violations.append("s2_entered_at must be null outside S2")

    for o in orders:
        if o.cycle < 1:
            violations.append("order cycle must be >= 1")
        if o.role == "exit" and o.entry_price <= 0:
            violations.append("exit must carry entry_price")
        if o.volume <= 0:
            violations.append("order volume must be > 0")

    if state.cycle_a < 1 or state.cycle_b < 1:
        violations.append("cycle counters must be >= 1")
    return violations


# --------------------------------------------------------------------------- wire form (section 2)

_REGIME_NAMES = {"BEARISH": 0, "RANGING": 1, "BULLISH": 2}
_MODE_SOURCES = frozenset({"none", "balance", "regime"})


def normalize_regime(value: Any) -> int | None:
    """Normalise a regime tag to 0, 1, 2 or None, exactly as the bot does.

    A digit string that ``str.isdigit`` accepts but ``int`` rejects (a superscript digit) raises
    ``ValueError``, as do float NaN and infinities: that is bad input, not a regime.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        number = int(value)
        return number if number in (0, 1, 2) else None
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            number = int(text)
            return number if number in (0, 1, 2) else None
        return _REGIME_NAMES.get(text.upper())
    return None


def _text(value: Any, default: str) -> str:
    if value is None or (isinstance(value, str) and value == ""):
        return default
    return str(value)


def _maps(value: Iterable[Any]) -> Iterable[Mapping[str, Any]]:
    return (item for item in value if isinstance(item, Mapping))


def _order_from_dict(d: Mapping[str, Any]) -> OrderState:
    g = d.get
    return OrderState(
        local_id=int(g("local_id", 0)),
        side=_text(g("side"), "buy"),
        role=_text(g("role"), "entry"),
        price=float(g("price", 0.0)),
        volume=float(g("volume", 0.0)),
        trade_id=_text(g("trade_id"), "A"),
        cycle=int(g("cycle", 0)),
        txid=_text(g("txid"), ""),
        placed_at=float(g("placed_at", 0.0)),
        entry_price=float(g("entry_price", 0.0)),
        entry_fee=float(g("entry_fee", 0.0)),
        entry_filled_at=float(g("entry_filled_at", 0.0)),
        regime_at_entry=normalize_regime(g("regime_at_entry")),
    )


def _recovery_from_dict(d: Mapping[str, Any]) -> RecoveryOrder:
    g = d.get
    return RecoveryOrder(
        recovery_id=int(g("recovery_id", 0)),
        side=_text(g("side"), "buy"),
        price=float(g("price", 0.0)),
        volume=float(g("volume", 0.0)),
        trade_id=_text(g("trade_id"), "A"),
        cycle=int(g("cycle", 0)),
        entry_price=float(g("entry_price", 0.0)),
        orphaned_at=float(g("orphaned_at", 0.0)),
        entry_fee=float(g("entry_fee", 0.0)),
        entry_filled_at=float(g("entry_filled_at", 0.0)),
        txid=_text(g("txid"), ""),
        reason=_text(g("reason"), "stale"),
        regime_at_entry=normalize_regime(g("regime_at_entry")),
    )


def _cycle_from_dict(d: Mapping[str, Any]) -> CycleRecord:
    g = d.get
    return CycleRecord(
        trade_id=_text(g("trade_id"), "A"),
        cycle=int(g("cycle", 0)),
        entry_price=float(g("entry_price", 0.0)),
        exit_price=float(g("exit_price", 0.0)),
        volume=float(g("volume", 0.0)),
        gross_profit=float(g("gross_profit", 0.0)),
        fees=float(g("fees", 0.0)),
        net_profit=float(g("net_profit", 0.0)),
        entry_fee=float(g("entry_fee", 0.0)),
        exit_fee=float(g("exit_fee", 0.0)),
        quote_fee=float(g("quote_fee", 0.0)),
        settled_usd=float(g("settled_usd", 0.0)),
        entry_time=float(g("entry_time", 0.0)),
        exit_time=float(g("exit_time", 0.0)),
        from_recovery=bool(g("from_recovery", False)),
        regime_at_entry=normalize_regime(g("regime_at_entry")),
    )


def from_dict(d: Mapping[str, Any]) -> PairState:
    """Read the wire form, as leniently as the bot does (DOGE_REDUCER.md section 2)."""
    g = d.get
    mode_source = str(g("mode_source", "none")).strip().lower()
    if mode_source not in _MODE_SOURCES:
        mode_source = "none"
    total_profit = float(g("total_profit", 0.0))
    return PairState(
        market_price=float(g("market_price", 0.0)),
        now=float(g("now", 0.0)),
        orders=tuple(_order_from_dict(o) for o in _maps(g("orders", ()))),
        recovery_orders=tuple(_recovery_from_dict(r) for r in _maps(g("recovery_orders", ()))),
        completed_cycles=tuple(_cycle_from_dict(c) for c in _maps(g("completed_cycles", ()))),
        cycle_a=int(g("cycle_a", 1)),
        cycle_b=int(g("cycle_b", 1)),
        next_order_id=int(g("next_order_id", 1)),
        next_recovery_id=int(g("next_recovery_id", 1)),
        total_profit=total_profit,
        total_settled_usd=float(d["total_settled_usd"]) if "total_settled_usd" in d else total_profit,
        total_fees=float(g("total_fees", 0.0)),
        today_realized_loss=float(g("today_realized_loss", 0.0)),
        total_round_trips=int(g("total_round_trips", 0)),
        s2_entered_at=g("s2_entered_at"),
        last_price_update_at=g("last_price_update_at"),
        consecutive_losses_a=int(g("consecutive_losses_a", 0)),
        consecutive_losses_b=int(g("consecutive_losses_b", 0)),
        cooldown_until_a=float(g("cooldown_until_a", 0.0)),
        cooldown_until_b=float(g("cooldown_until_b", 0.0)),
        long_only=bool(g("long_only", False)),
        short_only=bool(g("short_only", False)),
        mode_source=mode_source,
        consecutive_refreshes_a=int(g("consecutive_refreshes_a", 0)),
        consecutive_refreshes_b=int(g("consecutive_refreshes_b", 0)),
        last_refresh_direction_a=g("last_refresh_direction_a"),
        last_refresh_direction_b=g("last_refresh_direction_b"),
        refresh_cooldown_until_a=float(g("refresh_cooldown_until_a", 0.0)),
        refresh_cooldown_until_b=float(g("refresh_cooldown_until_b", 0.0)),
        profit_pct_runtime=float(g("profit_pct_runtime", g("profit_pct", 1.0))),
    )


def _order_to_dict(o: OrderState) -> dict[str, Any]:
    return {
        "local_id": o.local_id,
        "side": o.side,
        "role": o.role,
        "price": o.price,
        "volume": o.volume,
        "trade_id": o.trade_id,
        "cycle": o.cycle,
        "txid": o.txid,
        "placed_at": o.placed_at,
        "entry_price": o.entry_price,
        "entry_fee": o.entry_fee,
        "entry_filled_at": o.entry_filled_at,
        "regime_at_entry": o.regime_at_entry,
    }


def _recovery_to_dict(r: RecoveryOrder) -> dict[str, Any]:
    return {
        "recovery_id": r.recovery_id,
        "side": r.side,
        "price": r.price,
        "volume": r.volume,
        "trade_id": r.trade_id,
        "cycle": r.cycle,
        "entry_price": r.entry_price,
        "orphaned_at": r.orphaned_at,
        "entry_fee": r.entry_fee,
        "entry_filled_at": r.entry_filled_at,
        "txid": r.txid,
        "reason": r.reason,
        "regime_at_entry": r.regime_at_entry,
    }


def _cycle_to_dict(c: CycleRecord) -> dict[str, Any]:
    return {
        "trade_id": c.trade_id,
        "cycle": c.cycle,
        "entry_price": c.entry_price,
        "exit_price": c.exit_price,
        "volume": c.volume,
        "gross_profit": c.gross_profit,
        "fees": c.fees,
        "net_profit": c.net_profit,
        "entry_fee": c.entry_fee,
        "exit_fee": c.exit_fee,
        "quote_fee": c.quote_fee,
        "settled_usd": c.settled_usd,
        "entry_time": c.entry_time,
        "exit_time": c.exit_time,
        "from_recovery": c.from_recovery,
        "regime_at_entry": c.regime_at_entry,
    }


def to_dict(state: PairState) -> dict[str, Any]:
    """The wire form, keys in the order of DOGE_REDUCER.md section 2."""
    s = state
    return {
        "market_price": s.market_price,
        "now": s.now,
        "orders": [_order_to_dict(o) for o in s.orders],
        "recovery_orders": [_recovery_to_dict(r) for r in s.recovery_orders],
        "completed_cycles": [_cycle_to_dict(c) for c in s.completed_cycles],
        "cycle_a": s.cycle_a,
        "cycle_b": s.cycle_b,
        "next_order_id": s.next_order_id,
        "next_recovery_id": s.next_recovery_id,
        "total_profit": s.total_profit,
        "total_settled_usd": s.total_settled_usd,
        "total_fees": s.total_fees,
        "today_realized_loss": s.today_realized_loss,
        "total_round_trips": s.total_round_trips,
        "s2_entered_at": s.s2_entered_at,
        "last_price_update_at": s.last_price_update_at,
        "consecutive_losses_a": s.consecutive_losses_a,
        "consecutive_losses_b": s.consecutive_losses_b,
        "cooldown_until_a": s.cooldown_until_a,
        "cooldown_until_b": s.cooldown_until_b,
        "long_only": s.long_only,
        "short_only": s.short_only,
        "mode_source": s.mode_source,
        "consecutive_refreshes_a": s.consecutive_refreshes_a,
        "consecutive_refreshes_b": s.consecutive_refreshes_b,
        "last_refresh_direction_a": s.last_refresh_direction_a,
        "last_refresh_direction_b": s.last_refresh_direction_b,
        "refresh_cooldown_until_a": s.refresh_cooldown_until_a,
        "refresh_cooldown_until_b": s.refresh_cooldown_until_b,
        "profit_pct_runtime": s.profit_pct_runtime,
    }


# --------------------------------------------------------------------------- helpers used between transitions


def apply_order_regime_at_entry(state: PairState, local_id: int, regime_at_entry: Any) -> PairState:
    """Tag every order with this local_id with the (normalised) regime; nothing else changes (section 8).

    This is the *bot's wrapper* semantics, which is what the bot shadows (section 9): the wrapper
    ``int()``s the local_id first, then the module compares it and normalises the regime only when some
    order matches (no match: the state unchanged, no error even for a regime that cannot be normalised).
    """
    target = int(local_id)
    if not any(o.local_id == target for o in state.orders):
        return state
    regime = normalize_regime(regime_at_entry)
    if not any(o.local_id == target and o.regime_at_entry != regime for o in state.orders):
        return state
    orders = tuple(replace(o, regime_at_entry=regime) if o.local_id == target else o for o in state.orders)
    return _evolve(state, orders=orders)


def bind_order_txid(state: PairState, local_id: int, txid: str) -> PairState:
    """Record the exchange txid of the order(s) with this local_id (the bot does this after placing)."""
    if not any(o.local_id == local_id and o.txid != txid for o in state.orders):
        return state
    orders = tuple(replace(o, txid=txid) if o.local_id == local_id else o for o in state.orders)
    return _evolve(state, orders=orders)


def bind_recovery_txid(state: PairState, recovery_id: int, txid: str) -> PairState:
    """Record the exchange txid of the recovery order(s) with this recovery_id."""
    if not any(r.recovery_id == recovery_id and r.txid != txid for r in state.recovery_orders):
        return state
    recoveries = tuple(
        replace(r, txid=txid) if r.recovery_id == recovery_id else r for r in state.recovery_orders
    )
    return _evolve(state, recovery_orders=recoveries)


def bootstrap_entries(
    state: PairState,
    cfg: EngineConfig,
    order_size_usd: float,
    order_sizes: Mapping[str, float] | None = None,
) -> tuple[PairState, list[Action]]:
    """Place the S0 pair (B buy entry, then A sell entry) with reason "bootstrap".

    long_only skips the A sell entry and short_only the B buy entry; the mode flags themselves are
    left alone (choosing them is the bot's balance logic, not the reducer's). The B entry goes
    first, as in the bot, so it takes the lower local_id.
    """
    actions: list[Action] = []
    if not state.short_only:
        state, place = _new_entry(
            state, cfg, "buy", "B", state.cycle_b, _size_for("B", order_size_usd, order_sizes), "bootstrap"
        )
        if place is not None:
            actions.append(place)
    if not state.long_only:
        state, place = _new_entry(
            state, cfg, "sell", "A", state.cycle_a, _size_for("A", order_size_usd, order_sizes), "bootstrap"
        )
        if place is not None:
            actions.append(place)
    return state, actions
