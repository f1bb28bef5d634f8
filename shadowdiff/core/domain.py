"""What a domain tells the domain-free core: names, hot paths, tolerances, the older JSON shapes.

The core never imports a domain. A domain is handed in (the CLI finds the DOGE one in ``adapters``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from shadowdiff.core.diff import Rules
from shadowdiff.model.values import WireMap

if TYPE_CHECKING:
    from shadowdiff.model.records import LogItem


class Domain:
    """Defaults describe a domain that needs nothing special; the DOGE domain overrides what it must."""

    name = "generic"
    event_types: tuple[str, ...] = ()
    action_types: tuple[str, ...] = ()
    call_functions: tuple[str, ...] = ()
    hot_path_events: frozenset[str] = frozenset()
    history_fields: tuple[str, ...] = ()
    """Top-level state fields that are append-only history: a transition only ever appends to them and
    never reads them. A whole-state shadow can then be sent them empty (the client stays linear in the
    stream) and checked whole every so often."""

    def default_rules(self) -> Rules:
        return Rules()

    # The older JSON-lines transport sends bare payloads and answers bare actions: the types are read
    # from the key sets, which only the domain knows.
    def event_type_of(self, payload: Mapping[str, Any]) -> str | None:
        return None

    def action_type_of(self, payload: Mapping[str, Any]) -> str | None:
        return None

    def describe_state(self, state: WireMap) -> str:
        """A one-line summary of a state for people (e.g. the phase and open orders)."""
        return f"{len(state)} fields"

    def json_corpus(self, data: Any, where: str) -> Iterable[LogItem] | None:
        """The replay items of a ``.json`` corpus file in a format of the domain's own (``data`` is the
        parsed file), or None when it is not one (it is then read as a scenario). The DOGE domain reads
        the bot's ``bot_runtime.json`` here; the core never imports a domain to know such formats."""
        return None
