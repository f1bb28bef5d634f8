"""A simulated DOGE bot to tap: several slots trading on a seeded price walk, the way the real bot does.

Every loop the price moves; per slot the bot sends a PriceTick, fills an order the price crossed
(entries become exits, exits book cycles; now and then at zero fee, a maker rebate), fills or cancels
a recovery now and then, sends TimerTicks, binds the exchange txids of new orders *between*
transitions through the reducer module's helpers (so the next pre-state is not the last post-state),
reseeds a slot left without orders (placing its entries itself, as the bot does), and calls
``apply_order_regime_at_entry`` on fresh orders with regimes as the bot's classifier spells them (ints,
upper and mixed case).

It needs only the module interface of DOGE_REDUCER.md section 1 (and ``apply_order_regime_at_entry``,
section 8), so it drives the real ``state_machine.py`` as well as the reference: placing the first
entries and binding txids are the bot's own code here (frozen-dataclass replaces), not reducer helpers.
With ``recovery_disabled`` the orphan timeouts are infinite, as the live bot sets them when recovery
orders are disabled (DOGE_REDUCER.md section 9): configs, logs and taps then carry ``Infinity``.

It calls the reducer through the module's attributes at call time (``sm.transition(...)``), exactly as
a bot that imported the module would, so a tap installed on the module sees every call. Deterministic
for a seed: the wall clock only paces the loop, it never feeds the simulation.

    python -m shadowdiff_doge.simbot --seconds 5 --rate 200 --seed 1 [--slots 3] [--slot-hints]
                                   [--identical-slots] [--module NAME|PATH] [--recovery-disabled]

``--slot-hints`` names each slot to the tap (``with tap.slot(name):``); ``--no-slot-hints`` (the
default) leaves the tap to infer them. ``--identical-slots`` runs every slot from the same start with
its own random stream seeded alike and the very same event objects (as a backtester does), so the slots'
states stay equal in value and differ only in identity: the hardest case for the tap's inference.

prints one JSON line: the digest (sha256 of the canonical JSON of every slot's ``to_dict``), and the
number of transitions, calls and txid patches it made.

    from shadowdiff_doge.simbot import generate_log
    generate_log(events, seed=1, slots=3) -> Iterator[dict]    # a recorded-outcome log, header first
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import random
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from shadowdiff.wire.format import log_header

DEFAULT_MODULE = "shadowdiff_doge.reference.state_machine"
START = 1_767_225_600.0
LOOP_SECONDS = 60.0
CONFIG: dict[str, Any] = {
    "entry_pct": 0.35, "profit_pct": 0.9, "refresh_pct": 1.2, "order_size_usd": 4.0, "price_decimals": 5,
    "volume_decimals": 0, "min_volume": 13.0, "maker_fee_pct": 0.25, "s1_orphan_after_sec": 1350.0,
    "s2_orphan_after_sec": 1800.0, "max_recovery_slots": 2, "loss_cooldown_sec": 900.0,
    "max_consecutive_refreshes": 3, "refresh_cooldown_sec": 300.0,
}  # fmt: skip
REGIMES: tuple[Any, ...] = (0, 1, 2, "BULLISH", "bearish", "Ranging", None)

Observer = Callable[[str, str, tuple[Any, ...], Any], None]
"""Called after each reducer call with (function, slot, args, result)."""


def config(recovery_disabled: bool = False) -> dict[str, Any]:
    """The simulated bot's EngineConfig fields; infinite orphan timeouts when recovery is disabled."""
    out = dict(CONFIG)
    if recovery_disabled:
        out["s1_orphan_after_sec"] = out["s2_orphan_after_sec"] = math.inf
    return out


def load(module: str | ModuleType) -> ModuleType:
    """An upstream-compatible module by import name or by path to its .py file (the real one too)."""
    if not isinstance(module, str):
        return module
    from .inprocess import load_module

    return load_module(module)


def place_entries(sm: ModuleType, state: Any, cfg: Mapping[str, Any], size: float) -> Any:
    """The bot's own bootstrapping: a B buy entry below and an A sell entry above the market.

    Built from the module's frozen dataclasses only (``OrderState`` and ``dataclasses.replace``), so any
    section-1 module works; the prices and volumes are the bot's (entry_pct around the market, rounded
    to the pair's decimals, skipped below min_volume), not a reducer helper's."""
    market = float(state.market_price)
    orders = list(state.orders)
    next_id = int(state.next_order_id)
    legs = [
        ("buy", "B", state.cycle_b, -1.0, state.short_only),
        ("sell", "A", state.cycle_a, 1.0, state.long_only),
    ]
    for side, trade, cycle, sign, skipped in legs:
        if skipped or market <= 0:
            continue
        price = round(market * (1 + sign * float(cfg["entry_pct"]) / 100), int(cfg["price_decimals"]))
        volume = float(round(size / price)) if price > 0 else 0.0
        if price <= 0 or volume < float(cfg["min_volume"]):
            continue
        orders.append(
            sm.OrderState(
                local_id=next_id, side=side, role="entry", price=price, volume=volume, trade_id=trade,
                cycle=cycle, txid="", placed_at=state.now,
            )
        )  # fmt: skip
        next_id += 1
    if next_id == state.next_order_id:
        return state
    return dataclasses.replace(state, orders=type(state.orders)(orders), next_order_id=next_id)


def bind_txids(state: Any, orders: Mapping[int, str], recoveries: Mapping[int, str]) -> Any:
    """The exchange acknowledged orders: their txids, bound by the bot outside the reducer."""
    if not orders and not recoveries:
        return state
    changes: dict[str, Any] = {}
    if orders:
        bound = [dataclasses.replace(o, txid=orders[o.local_id]) if o.local_id in orders else o
                 for o in state.orders]  # fmt: skip
        changes["orders"] = type(state.orders)(bound)
    if recoveries:
        bound = [dataclasses.replace(r, txid=recoveries[r.recovery_id]) if r.recovery_id in recoveries
                 else r for r in state.recovery_orders]  # fmt: skip
        changes["recovery_orders"] = type(state.recovery_orders)(bound)
    return dataclasses.replace(state, **changes)


class _Slot:
    def __init__(
        self, sm: ModuleType, name: str, index: int, price: float, rng: random.Random, cfg: Mapping[str, Any]
    ) -> None:
        self.name = name
        self.offset = index * 0.5  # the bot walks its slots one after the other
        self.config = dict(cfg)
        self.cfg = sm.EngineConfig(**cfg)
        self.size = 4.0 + rng.choice([0.0, 1.0, 2.5])
        now = START + self.offset
        state = sm.from_dict({"market_price": price, "now": now, "last_price_update_at": now})
        self.state = place_entries(sm, state, cfg, self.size)
        self.txn = 0


class SimBot:
    """The bot's loop, one ``loop()`` call per simulated minute."""

    def __init__(
        self,
        seed: int = 1,
        slots: int = 3,
        module: str | ModuleType = DEFAULT_MODULE,
        observer: Observer | None = None,
        slot_hints: bool = False,
        identical: bool = False,
        recovery_disabled: bool = False,
    ) -> None:
        self.sm = load(module)
        self.rng = random.Random(seed)
        self.price = 0.12
        self.now = START
        self.identical = identical
        cfg = config(recovery_disabled)
        self.slots = []
        for i in range(slots):
            # identical slots: one start, and a random stream per slot seeded alike (so the same events)
            rng = random.Random(seed) if identical else self.rng
            price = self.price if identical else self.price * (1 + 0.001 * i)
            slot = _Slot(self.sm, f"slot-{i}", 0 if identical else i, price, rng, cfg)
            slot.rng = rng
            slot.txid_prefix = "" if identical else f"{slot.name}-"
            if identical:  # as the backtester does: the config's profit target copied into every slot
                slot.state = dataclasses.replace(slot.state, profit_pct_runtime=slot.cfg.profit_pct)
            self.slots.append(slot)
        self._events: dict[tuple[Any, ...], Any] = {}  # identical slots: this loop's shared event objects
        self.observer = observer
        self.hints = None
        if slot_hints:
            from shadowdiff import tap

            self.hints = tap.slot
        self.transitions = 0
        self.calls = 0
        self.patches = 0
        self._vol = 0.0025

    # -- reducer calls, through the module's attributes ------------------------------------------------
    def _transition(self, slot: _Slot, kind: str, payload: dict[str, Any]) -> None:
        sm = self.sm
        if self.identical:
            key = (kind, *payload.items())
            event = self._events.get(key)
            if event is None:
                event = self._events[key] = getattr(sm, kind)(**payload)
        else:
            event = getattr(sm, kind)(**payload)
        args = (slot.state, event, slot.cfg, slot.size, None)
        if self.hints is not None:
            with self.hints(slot.name):
                result = sm.transition(*args)
        else:
            result = sm.transition(*args)
        self.transitions += 1
        slot.state = result[0]
        if self.observer is not None:
            self.observer("transition", slot.name, args, result)

    def _regime(self, slot: _Slot, local_id: int, regime: Any) -> None:
        args = (slot.state, local_id, regime)
        if self.hints is not None:
            with self.hints(slot.name):
                result = self.sm.apply_order_regime_at_entry(*args)
        else:
            result = self.sm.apply_order_regime_at_entry(*args)
        self.calls += 1
        slot.state = result
        if self.observer is not None:
            self.observer("apply_order_regime_at_entry", slot.name, args, result)

    # -- the loop ------------------------------------------------------------------------------------
    def loop(self) -> None:
        rng = self.rng
        self.now += LOOP_SECONDS
        shock = rng.gauss(0.0, self._vol * (3.0 if rng.random() < 0.02 else 1.0))
        self.price = round(max(0.02, self.price * math.exp(shock - 0.02 * math.log(self.price / 0.12))), 6)
        self._events.clear()
        for slot in self.slots:
            rng = slot.rng
            now = self.now + slot.offset
            price = self.price
            if slot.state.orders and rng.random() < 0.01:  # the market touches an order without crossing
                price = slot.state.orders[0].price
            self._transition(slot, "PriceTick", {"price": price, "timestamp": now})
            self._fill(slot, now)
            self._recovery(slot, now)
            if rng.random() < 0.5:
                self._transition(slot, "TimerTick", {"timestamp": now + 5.0})
            self._bind_txids(slot)
            self._reseed(slot)
            if rng.random() < 0.08:
                fresh = [o for o in slot.state.orders if o.regime_at_entry is None]
                if fresh:
                    self._regime(slot, fresh[-1].local_id, rng.choice(REGIMES))

    def _fill(self, slot: _Slot, now: float) -> None:
        for order in slot.state.orders:
            crossed = self.price <= order.price if order.side == "buy" else self.price >= order.price
            if crossed and slot.rng.random() < 0.9:
                rebate = slot.rng.random() < 0.03
                fee = 0.0 if rebate else round(order.price * order.volume * 0.0025, 8)
                self._transition(slot, "FillEvent", {
                    "order_local_id": order.local_id, "txid": order.txid or f"TX{order.local_id}",
                    "side": order.side, "price": order.price, "volume": order.volume, "fee": fee,
                    "timestamp": now + 1.0,
                })  # fmt: skip
                return

    def _recovery(self, slot: _Slot, now: float) -> None:
        for rec in slot.state.recovery_orders:
            crossed = self.price <= rec.price if rec.side == "buy" else self.price >= rec.price
            if crossed or slot.rng.random() < 0.01:
                if slot.rng.random() < 0.8:
                    fee = round(rec.price * rec.volume * 0.0025, 8)
                    self._transition(slot, "RecoveryFillEvent", {
                        "recovery_id": rec.recovery_id, "txid": rec.txid or f"RX{rec.recovery_id}",
                        "side": rec.side, "price": rec.price, "volume": rec.volume, "fee": fee,
                        "timestamp": now + 2.0,
                    })  # fmt: skip
                else:
                    payload = {"recovery_id": rec.recovery_id, "txid": rec.txid, "timestamp": now + 2.0}
                    self._transition(slot, "RecoveryCancelEvent", payload)
                return

    def _bind_txids(self, slot: _Slot) -> None:
        """The exchange acknowledged new orders: bind their txids outside the reducer."""
        state = slot.state
        orders: dict[int, str] = {}
        for order in state.orders:
            if not order.txid and order.local_id not in orders:
                slot.txn += 1
                orders[order.local_id] = f"{slot.txid_prefix}O{slot.txn:06d}"
        recoveries: dict[int, str] = {}
        for rec in state.recovery_orders:
            if not rec.txid and rec.recovery_id not in recoveries and slot.rng.random() < 0.5:
                slot.txn += 1
                recoveries[rec.recovery_id] = f"{slot.txid_prefix}R{slot.txn:06d}"
        state = bind_txids(state, orders, recoveries)
        if state is not slot.state:
            self.patches += 1
            slot.state = state

    def _reseed(self, slot: _Slot) -> None:
        """A slot left without any order (cooldowns) is bootstrapped again, as the bot's reseeding does."""
        if not slot.state.orders and not slot.state.recovery_orders and slot.rng.random() < 0.2:
            state = place_entries(self.sm, slot.state, slot.config, slot.size)
            if state is not slot.state:
                self.patches += 1
                slot.state = state

    # -- results -------------------------------------------------------------------------------------
    def states(self) -> dict[str, Any]:
        return {slot.name: self.sm.to_dict(slot.state) for slot in self.slots}

    def digest(self) -> str:
        canonical = json.dumps(self.states(), sort_keys=True, separators=(",", ":"), allow_nan=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def summary(self) -> dict[str, Any]:
        return {
            "digest": self.digest(),
            "transitions": self.transitions,
            "calls": self.calls,
            "patches": self.patches,
            "slots": len(self.slots),
        }


def run(seconds: float, rate: float, seed: int = 1, slots: int = 3, slot_hints: bool = False,
        module: str = DEFAULT_MODULE, identical: bool = False,
        recovery_disabled: bool = False) -> SimBot:  # fmt: skip
    """``seconds * rate`` loops, paced to ``rate`` loops a second (never faster; slower if the host is)."""
    bot = SimBot(seed, slots, module, slot_hints=slot_hints, identical=identical,
                 recovery_disabled=recovery_disabled)  # fmt: skip
    loops = round(seconds * rate)
    started = time.monotonic()
    for i in range(loops):
        bot.loop()
        ahead = started + (i + 1) / rate - time.monotonic() if rate > 0 else 0.0
        if ahead > 0:
            time.sleep(ahead)
    return bot


def generate_log(events: int, *, seed: int = 1, slots: int = 3, module: str | ModuleType = DEFAULT_MODULE,
                 recovery_disabled: bool = False) -> Iterator[dict[str, Any]]:  # fmt: skip
    """A recorded-outcome log (docs/formats.md) of the simulated bot: a header opening every slot, then
    ``step`` and ``call`` records with their outcomes (``events`` of them in all) and ``patch`` records
    where the bot bound txids or reseeded between calls. Built by the tap's own record builder, so it is
    exactly what a live tap would have sent."""
    from shadowdiff.tap import CALL, TRANSITION, RecordBuilder

    from .domain import TAP_CALLS

    sm = load(module)
    pending: list[tuple[Any, ...]] = []
    seq = 0

    def observe(function: str, slot: str, args: tuple[Any, ...], result: Any) -> None:
        nonlocal seq
        kind = TRANSITION if function == "transition" else CALL
        pending.append((kind, function, slot, seq, args, {}, result))
        seq += 1

    bot = SimBot(seed, slots, sm, observer=observe, recovery_disabled=recovery_disabled)
    builder = RecordBuilder(sm, calls=TAP_CALLS)
    header_slots = {}
    for slot in bot.slots:
        context = {"config": dict(slot.config), "order_size_usd": slot.size, "order_sizes": None}
        snap = builder.open(slot.name, slot.state, context)
        builder.tracks[slot.name].cfg = slot.cfg
        header_slots[slot.name] = {"context": snap["context"], "state": snap["state"]}
    yield log_header(header_slots, {"source": "shadowdiff_doge.simbot", "seed": seed, "synthetic": True})
    emitted = 0
    while emitted < events:
        bot.loop()
        for item in pending:
            if emitted >= events:
                break
            yield from builder.records_for(item)
            emitted += 1
        pending.clear()


def write_log(path: str | Path, events: int, *, seed: int = 1, slots: int = 3,
              module: str | ModuleType = DEFAULT_MODULE, recovery_disabled: bool = False) -> int:  # fmt: skip
    """Write ``generate_log`` to a file (msgpack or JSONL, gzip by name); the number of records."""
    from shadowdiff.runtime.corpus import LogWriter

    with LogWriter(path) as writer:
        for record in generate_log(
            events, seed=seed, slots=slots, module=module, recovery_disabled=recovery_disabled
        ):
            writer.write(record)
    return writer.records


ALIASES = ("wow", "such", "much", "very", "many", "so")


def write_runtime(path: str | Path, bot: SimBot, legacy: bool = False) -> int:
    """Save the bot's slots as the real bot saves ``logs/bot_runtime.json`` (DOGE_REDUCER.md section 8;
    slot ids 0, 1, ..., aliases from the bot's pool); ``legacy``: as an older bot wrote it (the newer
    state keys missing, adapters/doge/runtime.py ``LEGACY_DROPPED``). Written atomically, 0600 (it is
    what a real bot's file is: orders and txids). The number of slots."""
    import os

    from .runtime import runtime_document

    states = {str(i): bot.sm.to_dict(slot.state) for i, slot in enumerate(bot.slots)}
    aliases = {str(i): ALIASES[i % len(ALIASES)] for i in range(len(bot.slots))}
    sticky = {str(i): i % 3 == 2 for i in range(len(bot.slots))}
    document = runtime_document(states, CONFIG, bot.now + 30.0, aliases, sticky, legacy)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(target.name + ".tmp")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=1)  # Python's defaults, as the bot: Infinity travels bare
    os.replace(scratch, target)
    return len(states)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shadowdiff_doge.simbot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--rate", type=float, default=200.0, help="bot loops per second (each loop steps every slot)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--slots", type=int, default=3)
    parser.add_argument("--module", default=DEFAULT_MODULE, help="upstream-compatible reducer module")
    parser.add_argument(
        "--slot-hints",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="name each slot to the tap with tap.slot (default: off, the tap infers them)",
    )
    parser.add_argument(
        "--identical-slots",
        action="store_true",
        help="every slot from the same start, same seed and the same event objects",
    )
    parser.add_argument(
        "--log", metavar="FILE", help="instead: write a recorded-outcome log of --events calls"
    )
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument(
        "--runtime-out", metavar="FILE", help="also save the slots at the end as logs/bot_runtime.json"
    )
    parser.add_argument(
        "--runtime-legacy", action="store_true", help="save it as an older bot did (newer keys missing)"
    )
    parser.add_argument(
        "--recovery-disabled", action="store_true", help="infinite orphan timeouts, as the live bot sets"
    )
    args = parser.parse_args(argv)
    if args.log:
        records = write_log(args.log, args.events, seed=args.seed, slots=args.slots, module=args.module,
                            recovery_disabled=args.recovery_disabled)  # fmt: skip
        print(json.dumps({"log": args.log, "records": records}))
        return 0
    bot = run(args.seconds, args.rate, args.seed, args.slots, args.slot_hints, args.module,
              args.identical_slots, args.recovery_disabled)  # fmt: skip
    if args.runtime_out:
        write_runtime(args.runtime_out, bot, args.runtime_legacy)
    print(json.dumps(bot.summary(), sort_keys=True))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
