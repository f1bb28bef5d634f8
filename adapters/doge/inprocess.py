"""The in-process reducer: any upstream-compatible module (DOGE_REDUCER.md section 1) as a Reducer.

Give it an import name (``state_machine``, ``shadowdiff_doge.reference.state_machine``) or a path to a
``.py`` file (the real bot's ``state_machine.py``). Wire values are converted to the module's classes at
the edge and back.

Cost per step does not grow with the state's history: the module's values are frozen, so a field whose
object is the very object of the previous state is unchanged, and a tuple whose old items are all
still there (by identity) at its front was appended to. The delta is computed from that, converting only
what changed; the whole state is converted only when someone asks for it (``get``).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from shadowdiff.core.reducer import Reducer, Step
from shadowdiff.model import Call, Context, Event, Outcome, StepResult, WireMap
from shadowdiff.model.errors import BadInput, ShadowSetupError
from shadowdiff.wire.codec import apply_delta
from shadowdiff.wire.identity import IdentityWire

from .context import SIZE, SIZES, size_of, sizes_of
from .domain import EVENT_TYPES

REQUIRED = (
    "EngineConfig", "PairState", "transition", "check_invariants", "to_dict", "from_dict", "derive_phase",
    *EVENT_TYPES,
)  # fmt: skip


def load_module(spec: str) -> ModuleType:
    """Import an upstream-compatible module by import name or by path to a .py file."""
    path = Path(spec)
    if spec.endswith(".py") or path.exists():
        if not path.is_file():
            raise ShadowSetupError(f"no such module file: {spec}")
        name = f"_shadowdiff_authoritative_{abs(hash(str(path.resolve()))):x}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise ShadowSetupError(f"cannot load {spec} as a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module  # dataclasses need the module registered while it executes
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            raise ShadowSetupError(f"importing {spec} failed: {type(exc).__name__}: {exc}") from exc
    else:
        try:
            module = importlib.import_module(spec)
        except ImportError as exc:
            raise ShadowSetupError(f"cannot import {spec}: {exc}") from exc
    missing = [name for name in REQUIRED if not hasattr(module, name)]
    if missing:
        raise ShadowSetupError(f"{spec} is not upstream-compatible: it lacks {', '.join(missing)}")
    return module


class InProcessReducer(Reducer):
    """An upstream-compatible Python module, driven in this process."""

    def __init__(self, module: ModuleType | str) -> None:
        super().__init__()
        self.module = load_module(module) if isinstance(module, str) else module
        self.name = getattr(self.module, "__file__", None) or self.module.__name__
        m = self.module
        self._transition = m.transition
        self._check = m.check_invariants
        self._events = {name: getattr(m, name) for name in EVENT_TYPES}
        self._config_fields = {f.name for f in dataclasses.fields(m.EngineConfig)}
        self._state_fields = tuple(f.name for f in dataclasses.fields(m.PairState))
        self._states: dict[str, Any] = {}
        self._configs: dict[int, tuple[Mapping[str, Any], Any]] = {}
        self._wire = IdentityWire(self.module)

    # -- conversions -------------------------------------------------------------------------------
    def _config(self, config: Mapping[str, Any]) -> Any:
        cached = self._configs.get(id(config))
        if cached is not None and cached[0] is config:
            return cached[1]
        try:
            built = self.module.EngineConfig(**{k: v for k, v in config.items() if k in self._config_fields})
        except (TypeError, ValueError) as exc:
            raise BadInput(f"the authoritative EngineConfig rejected the config: {exc}") from exc
        if len(self._configs) > 64:
            self._configs.clear()
        self._configs[id(config)] = (config, built)
        return built

    def _event(self, event: Event) -> Any:
        cls = self._events.get(event.type)
        if cls is None:
            raise BadInput(f"unknown event type {event.type!r} (one of {', '.join(EVENT_TYPES)})")
        try:
            return cls(**event.payload)
        except TypeError as exc:
            raise BadInput(f"bad {event.type} payload: {exc}") from exc

    def _load(self, state: Mapping[str, Any]) -> Any:
        try:
            return self.module.from_dict(dict(state))
        except Exception as exc:
            raise BadInput(
                f"the authoritative from_dict rejected the state: {type(exc).__name__}: {exc}"
            ) from exc

    def _wire_action(self, action: Any) -> WireMap:
        return self._wire.typed(action)

    def _delta(self, pre: Any, post: Any) -> WireMap:
        return self._wire.delta(pre, post)

    # -- sessions ----------------------------------------------------------------------------------
    def open(self, slot: str, state: WireMap) -> None:
        loaded = self._load(state)
        if self._wire.generic_ok is None:  # field-by-field conversion must match the module's to_dict
            self._wire.state(loaded)
        self._states[slot] = loaded

    def step(self, request: Step) -> StepResult:
        pre = self._states[request.slot]
        item = request.input
        if isinstance(item, Call):
            post = self._call(item.function, pre, item.args)
            self.answered["call"] += 1
            self._states[request.slot] = post
            return StepResult([], self._delta(pre, post), None)
        ctx = request.context
        event = self._event(item)
        params = ctx.params
        post, actions = self._transition(
            pre, event, self._config(ctx.config), params.get(SIZE, 0.0), params.get(SIZES)
        )
        self.answered["transition"] += 1
        violations = None
        if request.with_invariants:
            violations = list(self._check(post))
            self.answered["invariants"] += 1
        self._states[request.slot] = post
        return StepResult([self._wire_action(a) for a in actions], self._delta(pre, post), violations)

    def patch(self, slot: str, delta: WireMap) -> None:
        """Load only what the patch names (appended items alone, never the untouched history) through
        the module's own ``from_dict``, and put those fields into a copy of the current state."""
        current = self._states[slot]
        sets = {k: v for k, v in delta.get("set", {}).items() if k in self._state_fields}
        appends = {k: v for k, v in delta.get("append", {}).items() if k in self._state_fields}
        if not sets and not appends:
            return
        if not self._wire.generic_ok:  # a module whose to_dict we do not mirror: the whole-state path
            self._states[slot] = self._load(apply_delta(self.module.to_dict(current), delta))
            return
        partial = self._load({**sets, **appends})
        patched = copy.copy(current)
        for name in sets:
            object.__setattr__(patched, name, getattr(partial, name))
        for name in appends:
            object.__setattr__(patched, name, tuple(getattr(current, name)) + tuple(getattr(partial, name)))
        self._states[slot] = patched

    def get(self, slot: str) -> WireMap:
        state: WireMap = self.module.to_dict(self._states[slot])
        return state

    def close_slot(self, slot: str) -> None:
        self._states.pop(slot, None)

    # -- the module's own objects (for benchmarks that drive the module as the bot does) -------------
    def held(self, slot: str) -> Any:
        """A slot's state as the module's own object (``PairState``), not its wire form."""
        return self._states[slot]

    def hold(self, slot: str, state: Any) -> None:
        """Set a slot's state to a module object (what the module itself returned)."""
        self._states[slot] = state

    def module_event(self, event: Event) -> Any:
        """The module's event object for ``event`` (``BadInput`` if it cannot be built)."""
        return self._event(event)

    def module_config(self, config: Mapping[str, Any]) -> Any:
        """The module's ``EngineConfig`` for ``config`` (cached by identity, as the hot path does)."""
        return self._config(config)

    # -- stateless ---------------------------------------------------------------------------------
    def _call(self, function: str, state: Any, args: Mapping[str, Any]) -> Any:
        fn = getattr(self.module, function, None) if not function.startswith("_") else None
        if fn is None:
            raise BadInput(f"the authoritative module has no function {function!r}")
        try:
            return fn(state, **args)
        except TypeError as exc:
            raise BadInput(f"bad arguments for {function}: {exc}") from exc

    def transition(
        self, state: WireMap, event: Event, context: Context, with_invariants: bool = False
    ) -> Outcome:
        post, actions = self._transition(
            self._load(state), self._event(event), self._config(context.config), size_of(context),
            sizes_of(context),
        )  # fmt: skip
        violations = list(self._check(post)) if with_invariants else None
        return Outcome(self.module.to_dict(post), [self._wire_action(a) for a in actions], violations)

    def check_invariants(self, state: WireMap) -> list[str]:
        return list(self._check(self._load(state)))

    def call(self, function: str, state: WireMap, args: Mapping[str, Any]) -> WireMap:
        result: WireMap = self.module.to_dict(self._call(function, self._load(state), args))
        return result

    def normalize(self, state: WireMap) -> WireMap:
        result: WireMap = self.module.to_dict(self._load(state))
        return result
