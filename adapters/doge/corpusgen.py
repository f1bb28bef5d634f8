"""Generate realistic DOGE event logs: several slots trading on a seeded price walk.

Each slot starts bootstrapped (S0: an A sell entry and a B buy entry). Every simulated tick the price
moves; an order the price crosses is filled (entries become exits, exits book cycles); timer ticks run
the S1/S2 orphan logic, recoveries are filled or cancelled now and then, the exchange txid of every new
order is bound between transitions (a ``patch`` record, as the live bot's helpers do), and
``apply_order_regime_at_entry`` is called on fresh orders (a ``call`` record). The state's history only
grows, so a long log exercises the flat-cost path.

    python -m shadowdiff_doge.corpusgen OUT.msgpack.gz --events 24000 --slots 3 --seed 7 [--outcomes]
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Iterator
from typing import Any

from shadowdiff.wire.format import log_header

from .reference import state_machine as sm
from .simbot import CONFIG

# the simulated live bot and the offline logs trade with the same configuration
TICK_SECONDS = 120.0


def _delta(pre: Any, post: Any) -> dict[str, Any]:
    """Canonical delta by identity (the reference keeps unchanged fields as the same objects)."""
    from shadowdiff.wire.codec import make_delta

    sets: dict[str, Any] = {}
    appends: dict[str, Any] = {}
    old_d = None
    for name in sm.PairState.__dataclass_fields__:
        old, new = getattr(pre, name), getattr(post, name)
        if old is new:
            continue
        if isinstance(new, tuple):
            if len(new) >= len(old) and all(a is b for a, b in zip(old, new, strict=False)):
                if len(new) > len(old):
                    old_d = old_d or sm.to_dict(post)
                    appends[name] = old_d[name][len(old) :]
                continue
            old_d = old_d or sm.to_dict(post)
            sets[name] = old_d[name]
        elif not (old == new and type(old) is type(new)):
            sets[name] = new
    return make_delta(sets, appends)


def _action(a: Any) -> dict[str, Any]:
    return {"type": type(a).__name__, "payload": {k: getattr(a, k) for k in a.__dataclass_fields__}}


class _Slot:
    def __init__(self, name: str, price: float, now: float, rng: random.Random) -> None:
        self.name = name
        self.cfg = sm.EngineConfig(**CONFIG)
        self.size = 4.0 + rng.choice([0.0, 1.0, 2.5])
        state = sm.from_dict({"market_price": price, "now": now, "last_price_update_at": now})
        self.state, _ = sm.bootstrap_entries(state, self.cfg, self.size)
        self.txn = 0


def generate(events: int, slots: int = 3, seed: int = 7, outcomes: bool = False,
             start: float = 1_767_225_600.0) -> Iterator[dict[str, Any]]:  # fmt: skip
    """Log records (docs/formats.md): a header, then step, call and patch records, ``events`` steps."""
    rng = random.Random(seed)
    price = 0.12
    now = start
    pool = [_Slot(f"slot-{i}", price, now, rng) for i in range(slots)]
    context = {"config": CONFIG, "order_sizes": None}
    yield log_header(
        {
            s.name: {"context": {**context, "order_size_usd": s.size}, "state": sm.to_dict(s.state)}
            for s in pool
        },
        {"source": "shadowdiff_doge.corpusgen", "seed": seed, "synthetic": True},
    )
    seq = 0
    vol = 0.0025
    while seq < events:
        now += TICK_SECONDS
        # a slowly mean-reverting walk with bursts, so orders get crossed and history builds up
        shock = rng.gauss(0.0, vol * (3.0 if rng.random() < 0.02 else 1.0))
        price = max(0.02, price * math.exp(shock - 0.02 * math.log(price / 0.12)))
        price = round(price, 6)
        for slot in pool:
            if seq >= events:
                break
            for kind, payload in _events_for(slot, price, now, rng):
                if seq >= events:
                    break
                yield from _step(slot, kind, payload, seq, outcomes)
                seq += 1
                yield from _reseed(slot)
                yield from _bind_txids(slot, outcomes, rng)
                if rng.random() < 0.05:
                    fresh = [o for o in slot.state.orders if o.regime_at_entry is None]
                    if fresh and seq < events:
                        yield from _call(
                            slot,
                            fresh[-1].local_id,
                            rng.choice([0, 1, 2, "BULLISH", "ranging"]),
                            seq,
                            outcomes,
                        )
                        seq += 1


def _events_for(
    slot: _Slot, price: float, now: float, rng: random.Random
) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = [("PriceTick", {"price": price, "timestamp": now})]
    for order in slot.state.orders:
        crossed = price <= order.price if order.side == "buy" else price >= order.price
        if crossed and rng.random() < 0.9:
            fee = round(order.price * order.volume * 0.0025, 8)
            out.append(("FillEvent", {
                "order_local_id": order.local_id, "txid": order.txid or f"TX{order.local_id}",
                "side": order.side,
                "price": order.price, "volume": order.volume, "fee": fee, "timestamp": now + 1.0,
            }))  # fmt: skip
            break
    for rec in slot.state.recovery_orders:
        crossed = price <= rec.price if rec.side == "buy" else price >= rec.price
        if crossed or rng.random() < 0.002:
            if rng.random() < 0.8:
                fee = round(rec.price * rec.volume * 0.0025, 8)
                out.append(("RecoveryFillEvent", {
                    "recovery_id": rec.recovery_id, "txid": rec.txid or f"RX{rec.recovery_id}",
                    "side": rec.side,
                    "price": rec.price, "volume": rec.volume, "fee": fee, "timestamp": now + 2.0,
                }))  # fmt: skip
            else:
                out.append(
                    (
                        "RecoveryCancelEvent",
                        {"recovery_id": rec.recovery_id, "txid": rec.txid, "timestamp": now + 2.0},
                    )
                )
            break
    if rng.random() < 0.5:
        out.append(("TimerTick", {"timestamp": now + 5.0}))
    return out


def _step(
    slot: _Slot, kind: str, payload: dict[str, Any], seq: int, outcomes: bool
) -> Iterator[dict[str, Any]]:
    pre = slot.state
    event = getattr(sm, kind)(**payload)
    post, actions = sm.transition(pre, event, slot.cfg, slot.size, None)
    slot.state = post
    record: dict[str, Any] = {
        "kind": "step",
        "slot": slot.name,
        "seq": seq,
        "event": {"type": kind, "payload": payload},
    }
    if outcomes:
        record["outcome"] = {"delta": _delta(pre, post), "actions": [_action(a) for a in actions],
                             "violations": sm.check_invariants(post)}  # fmt: skip
    yield record


def _call(slot: _Slot, local_id: int, regime: Any, seq: int, outcomes: bool) -> Iterator[dict[str, Any]]:
    pre = slot.state
    slot.state = sm.apply_order_regime_at_entry(pre, local_id, regime)
    args = {"local_id": local_id, "regime_at_entry": regime}
    record: dict[str, Any] = {
        "kind": "call",
        "slot": slot.name,
        "seq": seq,
        "call": "apply_order_regime_at_entry",
        "args": args,
    }
    if outcomes:
        record["outcome"] = {"delta": _delta(pre, slot.state)}
    yield record


def _reseed(slot: _Slot) -> Iterator[dict[str, Any]]:
    """A trade with no order at all gets a fresh entry once its cooldown is over, as the bot reseeds."""
    pre = state = slot.state
    for trade, skip_other in (("A", {"short_only": True}), ("B", {"long_only": True})):
        cooldown = state.cooldown_until_a if trade == "A" else state.cooldown_until_b
        if state.now < cooldown or any(o.trade_id == trade for o in state.orders):
            continue
        flags = {"long_only": state.long_only, "short_only": state.short_only}
        blocked = sm._evolve(state, **{**flags, **skip_other})
        placed, _ = sm.bootstrap_entries(blocked, slot.cfg, slot.size)
        state = sm._evolve(placed, **flags)
    if state is not pre:
        slot.state = state
        yield {"kind": "patch", "slot": slot.name, "delta": _delta(pre, state)}


def _bind_txids(slot: _Slot, outcomes: bool, rng: random.Random) -> Iterator[dict[str, Any]]:
    """The exchange acknowledges new orders: the bot binds txids outside the reducer (a patch)."""
    pre = slot.state
    state = pre
    for order in pre.orders:
        if not order.txid:
            slot.txn += 1
            state = sm.bind_order_txid(state, order.local_id, f"{slot.name}-O{slot.txn:06d}")
    for rec in pre.recovery_orders:
        if not rec.txid and rng.random() < 0.5:
            slot.txn += 1
            state = sm.bind_recovery_txid(state, rec.recovery_id, f"{slot.name}-R{slot.txn:06d}")
    if state is not pre:
        slot.state = state
        yield {"kind": "patch", "slot": slot.name, "delta": _delta(pre, state)}


def main(argv: list[str] | None = None) -> int:
    from shadowdiff.runtime.corpus import LogWriter

    parser = argparse.ArgumentParser(prog="python -m shadowdiff_doge.corpusgen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("out")
    parser.add_argument("--events", type=int, default=24_000)
    parser.add_argument("--slots", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--outcomes", action="store_true", help="record the authoritative outcome of each step"
    )
    args = parser.parse_args(argv)
    with LogWriter(args.out) as writer:
        for record in generate(args.events, args.slots, args.seed, args.outcomes):
            writer.write(record)
    print(f"{args.out}: {writer.records:,} records")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
