"""The DOGE shrink hooks, and module-level spellings of ``DOGE``'s members for scripts (bench/).

The commands use the registered domain object (``shadowdiff_doge.domain.DOGE``, entry point
``shadowdiff.domains: doge``); these functions are the same members under their older names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from shadowdiff.core.reducer import Reducer
from shadowdiff.core.shrink import ShrinkHooks
from shadowdiff.model import WireMap

from .domain import BUILD_SCRIPT, DEFAULT_EXE, DOGE, MUTANT_EXE, DogeDomain

__all__ = [
    "BUILD_SCRIPT",
    "DEFAULT_EXE",
    "MUTANT_EXE",
    "DogeShrinkHooks",
    "default_authoritative",
    "default_shadow_command",
    "domain",
    "expected",
    "shrink_hooks",
    "strategies",
]


def default_authoritative(spec: str | None = None) -> Reducer:
    return DOGE.authority(spec)


def default_shadow_command() -> list[str]:
    return [str(DEFAULT_EXE), "--msgpack"]


def domain() -> DogeDomain:
    return DogeDomain()


def strategies() -> Any:
    return DOGE.strategies()


def expected(final_state: WireMap, actions: list[list[WireMap]], violations: list[str]) -> WireMap:
    return DOGE.expected(final_state, actions, violations)


def _default_state() -> WireMap:
    from .reference import state_machine

    state: WireMap = state_machine.to_dict(state_machine.from_dict({}))
    return state


ITEM_DEFAULTS: dict[str, WireMap] = {
    "orders": {"txid": "", "placed_at": 0.0, "entry_fee": 0.0, "entry_filled_at": 0.0,
               "regime_at_entry": None},
    "recovery_orders": {"txid": "", "entry_fee": 0.0, "entry_filled_at": 0.0, "regime_at_entry": None,
                        "reason": "stale"},
    "completed_cycles": {"regime_at_entry": None, "from_recovery": False},
}  # fmt: skip


class DogeShrinkHooks(ShrinkHooks):
    """State candidates: each top-level field back to its default, then item fields to theirs."""

    def __init__(self) -> None:
        self.defaults = _default_state()

    def state_candidates(self, state: WireMap) -> Iterator[WireMap]:
        for key in sorted(state):
            default: Any = self.defaults.get(key, ...)
            if default is ... or isinstance(default, list) or state[key] == default:
                continue
            yield {**state, key: default}
        for field, defaults in ITEM_DEFAULTS.items():
            items = state.get(field)
            if not isinstance(items, list):
                continue
            for i, item in enumerate(items):
                if not isinstance(item, dict):
                    continue
                for key, default in defaults.items():
                    if key in item and item[key] != default:
                        changed = list(items)
                        changed[i] = {**item, key: default}
                        yield {**state, field: changed}


def shrink_hooks() -> DogeShrinkHooks:
    return DogeShrinkHooks()
