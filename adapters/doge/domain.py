"""The DOGE pair reducer as a shadowdiff domain: ``DOGE``, registered as the entry point
``shadowdiff.domains: doge`` (pyproject.toml), is everything the commands know of DOGE.

Light at import (the standard library and ``shadowdiff.core.domain``): the live tap reads ``DOGE.tap_calls``
inside the bot's process. The reference reducer, the strategies and the runtime-file reader are imported
when a method runs.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shadowdiff.core.domain import Domain
from shadowdiff.wire.format import CallView, ContextParam

if TYPE_CHECKING:
    from shadowdiff.core.reducer import Reducer
    from shadowdiff.core.shrink import ShrinkHooks
    from shadowdiff.model.records import LogItem
    from shadowdiff.model.values import WireMap

HERE = Path(__file__).resolve().parent
REFERENCE_MODULE = "shadowdiff_doge.reference.state_machine"
HASKELL_DIR = HERE / "haskell"
DEFAULT_EXE = HASKELL_DIR / "build" / "doge-core-exe"
# the same port with the seeded mutants compiled in (--mutant, --list-mutants); never shipped
MUTANT_EXE = HASKELL_DIR / "build" / "doge-core-mutants"
BUILD_SCRIPT = HASKELL_DIR / "build.sh"
BUNDLED_CORPUS = HERE.parent.parent / "corpora" / "sample"

EVENT_TYPES = ("PriceTick", "TimerTick", "FillEvent", "RecoveryFillEvent", "RecoveryCancelEvent")
ACTION_TYPES = ("PlaceOrderAction", "CancelOrderAction", "OrphanOrderAction", "BookCycleAction")
FILL_KEYS = frozenset({"order_local_id", "txid", "side", "price", "volume", "fee", "timestamp"})
RECOVERY_FILL_KEYS = frozenset({"recovery_id", "txid", "side", "price", "volume", "fee", "timestamp"})
PLACE_KEYS = frozenset({"local_id", "side", "role", "price", "volume", "trade_id", "cycle"})
BOOK_KEYS = frozenset({"trade_id", "cycle", "net_profit", "gross_profit", "fees"})

# DOGE_REDUCER.md section 1: transition(state, event, cfg, order_size_usd, order_sizes=None) and the
# bot's wrapper apply_order_regime_at_entry(state, local_id, regime_at_entry); read by name, not position
TAP_CALLS = CallView(
    step="transition",
    state="state",
    event="event",
    context=(
        ContextParam("config", "cfg", "config"),
        ContextParam("order_size_usd", "order_size_usd", "float", 0.0),
        ContextParam("order_sizes", "order_sizes", "mapping", None),
    ),
    calls=("apply_order_regime_at_entry",),
    modules=("doge_core", "state_machine"),
)

DEFAULT_CONFIG: dict[str, Any] = {
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
    tap_calls = TAP_CALLS
    reference_module = REFERENCE_MODULE
    shadow_name = "reference doge-core-exe"
    shadow_executable = DEFAULT_EXE
    build_script = BUILD_SCRIPT

    # the bot's environment for runtime files (adapters/doge/runtime.py load_env); None: read the
    # process environment when a file is read
    runtime_env: Mapping[str, Any] | None = None

    # -- corpora: the bot's logs/bot_runtime.json ------------------------------------------------------
    def holds_private(self, paths: Sequence[str]) -> bool:
        from .runtime import holds_runtime

        return holds_runtime(list(paths))

    def with_runtime_env(self, path: str | None) -> DogeDomain:
        if path is None:
            return self
        from .runtime import load_env

        domain = DogeDomain()
        domain.runtime_env = load_env(path)
        return domain

    def bundled_corpus(self) -> list[str]:
        return [str(BUNDLED_CORPUS)]

    # -- reducers ---------------------------------------------------------------------------------------
    def authority(self, spec: str | None = None) -> Reducer:
        from .inprocess import InProcessReducer

        return InProcessReducer(spec or REFERENCE_MODULE)

    def shadow_command(self, codec: str = "msgpack", mutants: Sequence[str] = ()) -> list[str]:
        exe = MUTANT_EXE if mutants else DEFAULT_EXE  # the seeded bugs live in a build of their own
        if not exe.exists():
            from shadowdiff.model.errors import ShadowSetupError

            raise ShadowSetupError(
                f"the reference shadow {exe} is not built; build it with: bash {BUILD_SCRIPT}"
            )
        mode = "--msgpack" if codec == "msgpack" else "--server"
        return [str(exe), mode] + (["--mutant", ",".join(mutants)] if mutants else [])

    def python_shadow_command(self) -> list[str]:
        return [sys.executable, "-m", "shadowdiff_doge.pyserver", "--msgpack"]

    # -- search -----------------------------------------------------------------------------------------
    def strategies(self) -> Any:
        from .strategies import DogeStrategies

        return DogeStrategies()

    def shrink_hooks(self) -> ShrinkHooks:
        from .defaults import DogeShrinkHooks

        return DogeShrinkHooks()

    def expected(self, final_state: WireMap, actions: list[list[WireMap]], violations: list[str]) -> WireMap:
        from .expected import compute_expected

        return compute_expected(final_state, actions, violations)

    # -- live -------------------------------------------------------------------------------------------
    def demo_bot(self, seconds: float, rate: float, seed: int) -> list[str]:
        return ["--module", REFERENCE_MODULE, "-m", "shadowdiff_doge.simbot", "--seconds", str(seconds),
                "--rate", str(rate), "--seed", str(seed)]  # fmt: skip

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


DOGE = DogeDomain()
"""The registered domain (entry point ``shadowdiff.domains: doge``)."""
