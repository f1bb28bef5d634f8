"""The DOGE pair reducer as a shadowdiff domain: names, hot paths, and the older JSON shapes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shadowdiff.domain import Domain
from shadowdiff.model import WireMap

if TYPE_CHECKING:
    from shadowdiff.records import LogItem

HERE = Path(__file__).resolve().parent
REFERENCE_MODULE = "adapters.doge.reference.state_machine"
HASKELL_DIR = HERE / "haskell"
DEFAULT_EXE = HASKELL_DIR / "build" / "doge-core-exe"
# the same port with the seeded mutants compiled in (--mutant, --list-mutants); never shipped
MUTANT_EXE = HASKELL_DIR / "build" / "doge-core-mutants"
BUILD_SCRIPT = HASKELL_DIR / "build.sh"

EVENT_TYPES = ("PriceTick", "TimerTick", "FillEvent", "RecoveryFillEvent", "RecoveryCancelEvent")
ACTION_TYPES = ("PlaceOrderAction", "CancelOrderAction", "OrphanOrderAction", "BookCycleAction")
FILL_KEYS = frozenset({"order_local_id", "txid", "side", "price", "volume", "fee", "timestamp"})
RECOVERY_FILL_KEYS = frozenset({"recovery_id", "txid", "side", "price", "volume", "fee", "timestamp"})
PLACE_KEYS = frozenset({"local_id", "side", "role", "price", "volume", "trade_id", "cycle"})
BOOK_KEYS = frozenset({"trade_id", "cycle", "net_profit", "gross_profit", "fees"})

DEFAULT_CONFIG: WireMap = {
    "entry_pct": 0.2, "entry_pct_a": None, "entry_pct_b": None, "profit_pct": 1.0, "refresh_pct": 1.0,
    "order_size_usd": 2.0, "price_decimals": 6, "volume_decimals": 0, "min_volume": 13.0,
    "min_cost_usd": 0.0, "maker_fee_pct": 0.25, "stale_price_max_age_sec": 60.0,
    "s1_orphan_after_sec": 1350.0, "s2_orphan_after_sec": 1800.0, "loss_backoff_start": 3,
    "loss_cooldown_start": 5, "loss_cooldown_sec": 900.0, "reentry_base_cooldown_sec": 0.0,
    "backoff_factor": 0.5, "backoff_max_multiplier": 5.0, "max_consecutive_refreshes": 3,
    "refresh_cooldown_sec": 300.0, "max_recovery_slots": 2, "sticky_mode_enabled": False,
}  # fmt: skip


class DogeDomain(Domain):
    name = "doge"
    event_types = EVENT_TYPES
    action_types = ACTION_TYPES
    call_functions = ("apply_order_regime_at_entry",)
    hot_path_events = frozenset({"FillEvent", "TimerTick", "PriceTick"})
    history_fields = ("completed_cycles",)  # DOGE_REDUCER.md sections 2, 4 and 9: appended, never read

    # the bot's environment for runtime files (adapters/doge/runtime.py load_env); None: read the
    # process environment when a file is read
    runtime_env: Mapping[str, Any] | None = None

    def json_corpus(self, data: Any, where: str) -> Iterable[LogItem] | None:
        from .runtime import is_runtime, runtime_items

        return runtime_items(data, where, self.runtime_env) if is_runtime(data) else None

    def event_type_of(self, payload: Mapping[str, Any]) -> str | None:
        keys = set(payload)
        if keys >= FILL_KEYS:
            return "FillEvent"
        if keys >= RECOVERY_FILL_KEYS:
            return "RecoveryFillEvent"
        if {"recovery_id", "txid", "timestamp"} <= keys:
            return "RecoveryCancelEvent"
        if keys == {"timestamp"}:
            return "TimerTick"
        if {"price", "timestamp"} <= keys:
            return "PriceTick"
        return None

    def action_type_of(self, payload: Mapping[str, Any]) -> str | None:
        keys = set(payload)
        if keys >= PLACE_KEYS:
            return "PlaceOrderAction"
        if {"recovery_id", "local_id"} <= keys and "trade_id" not in keys:
            return "OrphanOrderAction"
        if keys >= BOOK_KEYS:
            return "BookCycleAction"
        if {"local_id", "txid"} <= keys:
            return "CancelOrderAction"
        return None

    def describe_state(self, state: WireMap) -> str:
        orders = state.get("orders") or []
        return (
            f"{phase_of(state)}, {len(orders)} orders, {len(state.get('recovery_orders') or [])} recoveries, "
            f"{len(state.get('completed_cycles') or [])} cycles"
        )


def phase_of(state: WireMap) -> str:
    exits = {
        o.get("side") for o in state.get("orders") or [] if isinstance(o, dict) and o.get("role") == "exit"
    }
    if {"buy", "sell"} <= exits:
        return "S2"
    if "buy" in exits:
        return "S1a"
    if "sell" in exits:
        return "S1b"
    return "S0"


def default_shadow_command() -> list[str]:
    return [str(DEFAULT_EXE), "--msgpack"]
