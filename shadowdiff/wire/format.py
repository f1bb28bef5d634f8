"""The format facts, each defined once: the record log's tag, version and header, the protocol versions,
and the declaration of how a domain's reducer is called (what the live tap reads of a call).

Standard library only: the live tap (inside the bot's process), the corpus reader, the record log, the
sidecar and the domains' generators all import these names rather than spelling the literals.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

__all__ = [
    "LOG_FORMAT",
    "LOG_VERSION",
    "PROTOCOL_VERSION",
    "TAP_PROTOCOL",
    "CallView",
    "ContextParam",
    "header_error",
    "log_header",
]

LOG_FORMAT = "shadowdiff-log"
"""The ``format`` of a record log's header (docs/formats.md)."""
LOG_VERSION = 1
"""The ``version`` of a record log's header."""
PROTOCOL_VERSION = 1
"""The shadow protocol (PROTOCOL.md): the ``protocol`` of the client's hello and the server's answer."""
TAP_PROTOCOL = 1
"""The tap-to-sidecar framing: the ``protocol`` of the tap's hello frame."""


def log_header(slots: Mapping[str, Any], provenance: Mapping[str, Any]) -> dict[str, Any]:
    """A record log's first record, keys in the order every writer has always written them."""
    return {
        "kind": "header",
        "format": LOG_FORMAT,
        "version": LOG_VERSION,
        "provenance": dict(provenance),
        "slots": dict(slots),
    }


def header_error(header: Mapping[str, Any]) -> str | None:
    """Why ``header`` is not a header this reader understands, or None when it is."""
    if header.get("format") != LOG_FORMAT:
        return f"header format must be {LOG_FORMAT!r}"
    return None


@dataclasses.dataclass(frozen=True)
class ContextParam:
    """One context value a step call carries besides the state and the event.

    ``key`` is its name in records and requests (e.g. ``size_usd``), ``parameter`` the reducer's
    parameter that holds it (``size``), ``kind`` how the tap records it: ``"config"`` (the config object,
    recorded through the identity wire), ``"float"`` (a number, recorded as a float) or ``"mapping"``
    (a mapping recorded as a dict, anything else as None); ``default`` its value when a call or a corpus
    leaves it out.
    """

    key: str
    parameter: str
    kind: str = "float"
    default: Any = None


@dataclasses.dataclass(frozen=True)
class CallView:
    """How a domain's reducer module is called, by parameter name (never by position): the step function
    with its state, event and context parameters, and the other state-changing functions, recorded as
    ``call`` records. The tap resolves the names against the module's own signatures once."""

    step: str = "transition"
    state: str = "state"
    event: str = "event"
    context: tuple[ContextParam, ...] = ()
    calls: tuple[str, ...] = ()
    invariants: str = "check_invariants"
    modules: tuple[str, ...] = ()
    """The bot's reducer modules ``python -m shadowdiff.tap`` taps when not told (``--module``)."""

    def context_defaults(self) -> dict[str, Any]:
        """The context keys a record carries, besides ``config``, with their defaults (in order)."""
        return {p.key: p.default for p in self.context if p.kind != "config"}
