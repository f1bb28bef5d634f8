"""The one plug of a domain: what a domain tells the domain-free engine and every command.

A domain is a :class:`Domain` object registered under the entry point group ``shadowdiff.domains``
(``doge = "shadowdiff_doge.domain:DOGE"``); the command line finds it there (``--domain NAME``,
``shadowdiff.cli.domains``) and hands it to every command. The engine never imports a domain.

Its members: names (event and action types, the history fields, the hot-path events the gate weighs),
the older JSON shapes, the context parameters a step carries besides the config, how the live tap reads
a call of its reducer (:attr:`tap_calls`), and the wiring the commands need (the in-process authority,
the default shadow, the bundled corpus, strategies and shrink hooks for ``fuzz``, the ``expected`` block
of reproducers, its own corpus formats and which of them hold private data, the simulated bot of ``demo
live``). The defaults describe a domain that needs nothing special and has none of that wiring.

Light on purpose: the standard library and ``shadowdiff.wire.format`` at import (the rest is imported
when a method runs), so the live tap can read a domain's call declaration inside the bot's process.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shadowdiff.wire.format import CallView

if TYPE_CHECKING:
    from shadowdiff.core.diff import Rules
    from shadowdiff.core.reducer import Reducer
    from shadowdiff.core.shrink import ShrinkHooks
    from shadowdiff.model.records import LogItem
    from shadowdiff.model.values import Context, WireMap

__all__ = ["Domain"]


class Domain:
    """Defaults describe a domain that needs nothing special; the DOGE domain overrides what it must."""

    name = "generic"
    event_types: tuple[str, ...] = ()
    action_types: tuple[str, ...] = ()
    call_functions: tuple[str, ...] = ()
    hot_path_events: frozenset[str] = frozenset()
    """Events on the bot's hot path: a divergence that repeats on one of them fails the gate."""
    history_fields: tuple[str, ...] = ()
    """Top-level state fields that are append-only history: a transition only ever appends to them and
    never reads them. A whole-state shadow can then be sent them empty (the client stays linear in the
    stream) and checked whole every so often."""
    tap_calls: CallView = CallView()
    """How the reducer module is called (by parameter name): what the live tap records of a call, and
    the context parameters (besides ``config``) every step carries, with their defaults."""

    reference_module: str | None = None
    """The import name of the domain's reference reducer (the default authority), if it has one."""
    shadow_name: str = "the default shadow"
    """How reports name the default shadow."""
    shadow_executable: Path | None = None
    build_script: Path | None = None

    # -- comparison ---------------------------------------------------------------------------------
    def default_rules(self) -> Rules:
        from shadowdiff.core.diff import Rules

        return Rules()

    # -- the older JSON-lines transport sends bare payloads and answers bare actions: the types are read
    # from the key sets, which only the domain knows.
    def event_type_of(self, payload: Mapping[str, Any]) -> str | None:
        return None

    def action_type_of(self, payload: Mapping[str, Any]) -> str | None:
        return None

    def describe_state(self, state: WireMap) -> str:
        """A one-line summary of a state for people (e.g. the phase and open orders)."""
        return f"{len(state)} fields"

    # -- context --------------------------------------------------------------------------------------
    def context_defaults(self) -> dict[str, Any]:
        """The context parameters a step carries besides ``config``, in wire order, with defaults."""
        return self.tap_calls.context_defaults()

    def context_maps(self) -> tuple[str, ...]:
        """The context parameters that hold a map (or null), besides ``config``: what a reader checks."""
        return tuple(p.key for p in self.tap_calls.context if p.kind == "mapping")

    def blank_context(self) -> Context:
        """The context a slot starts from where a corpus says nothing: an empty config and every
        parameter at its default, in wire order."""
        from shadowdiff.model.values import Context

        return Context({}, self.context_defaults())

    # -- corpora ------------------------------------------------------------------------------------
    def json_corpus(self, data: Any, where: str) -> Iterable[LogItem] | None:
        """The replay items of a ``.json`` corpus file in a format of the domain's own (``data`` is the
        parsed file), or None when it is not one (it is then read as a scenario). The DOGE domain reads
        the bot's ``bot_runtime.json`` here; the core never imports a domain to know such formats."""
        return None

    def holds_private(self, paths: Sequence[str]) -> bool:
        """True when these corpora hold a format of the domain's own with real data (orders, txids):
        what is derived from them is then marked as such."""
        return False

    def with_runtime_env(self, path: str | None) -> Domain:
        """This domain reading its own corpus formats with the environment values in ``path`` (a file
        the domain defines, e.g. the bot's environment as TOML); ``self`` when there is none."""
        if path is None:
            return self
        from shadowdiff.model.errors import UsageError

        raise UsageError(f"the {self.name} domain takes no runtime environment", where=path)

    def bundled_corpus(self) -> list[str]:
        """The corpus a bare ``shadowdiff replay`` replays."""
        from shadowdiff.model.errors import UsageError

        raise UsageError(f"the {self.name} domain bundles no corpus: name one")

    # -- reducers -----------------------------------------------------------------------------------
    def authority(self, spec: str | None = None) -> Reducer:
        """The in-process authoritative reducer: the module ``spec`` (an import name or a .py path) or,
        without one, the domain's reference reducer."""
        from shadowdiff.model.errors import UsageError

        raise UsageError(f"the {self.name} domain has no in-process authority: name a recorded log")

    def describe_reference(self) -> str:
        return f"the reference reducer ({self.reference_module})"

    def shadow_command(self, codec: str = "msgpack", mutants: Sequence[str] = ()) -> list[str]:
        """The default shadow's command line for ``codec``; ShadowSetupError when it is not built.

        ``mutants``: the same shadow with these seeded bugs switched on (a separate build where the domain
        keeps them out of the executable a takeover would ship); UsageError if the domain has none.
        """
        from shadowdiff.model.errors import UsageError

        raise UsageError(f"the {self.name} domain has no default shadow: give --shadow")

    def python_shadow_command(self) -> list[str] | None:
        """A shadow that needs no build (the reference reducer served over the protocol), if any."""
        return None

    # -- search -------------------------------------------------------------------------------------
    def strategies(self) -> Any:
        """The domain's ``shadowdiff.search.generate.Strategies`` (for ``fuzz``)."""
        from shadowdiff.model.errors import UsageError

        raise UsageError(f"the {self.name} domain has no strategies to fuzz with")

    def shrink_hooks(self) -> ShrinkHooks:
        from shadowdiff.core.shrink import ShrinkHooks

        return ShrinkHooks()

    def expected(
        self, final_state: WireMap, actions: list[list[WireMap]], violations: list[str]
    ) -> WireMap | None:
        """The ``expected`` block a reproducer carries (fixture format), or None for none."""
        return None

    # -- live ---------------------------------------------------------------------------------------
    def demo_bot(self, seconds: float, rate: float, seed: int) -> list[str] | None:
        """``python -m shadowdiff.tap`` arguments running a simulated bot under the tap (``demo live``)."""
        return None
