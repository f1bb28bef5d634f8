"""The DOGE reducer's context: ``transition(state, event, cfg, order_size_usd, order_sizes=None)`` (section
1) carries the config and two call parameters, which shadowdiff keeps as a domain-free
``Context(config, params)``; the names and defaults are the domain's declaration (``domain.TAP_CALLS``).
"""

from __future__ import annotations

from typing import Any

from shadowdiff.model.values import Context, WireMap

SIZE = "order_size_usd"
SIZES = "order_sizes"


def doge_context(config: WireMap, size: Any = 0.0, sizes: WireMap | None = None) -> Context:
    """A context in the wire order the domain declares: the config, the order size, the per-trade sizes."""
    return Context(config, {SIZE: size, SIZES: sizes})


def size_of(context: Context) -> Any:
    """The order size (``order_size_usd``), 0.0 when the context does not carry one."""
    return context.params.get(SIZE, 0.0)


def sizes_of(context: Context) -> Any:
    """The per-trade sizes (``order_sizes``), None when the context does not carry them."""
    return context.params.get(SIZES)
