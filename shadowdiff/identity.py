"""Wire form and canonical deltas of frozen dataclass values, found by identity. Standard library only.

An upstream reducer's values are frozen dataclasses of tuples, and a transition keeps every field it
does not change as the very same object. So the delta of a step (PROTOCOL.md: ``set`` a field's new
value, ``append`` the items a list gained at its end) is found by identity, converting only what
changed: a month of history costs nothing per step. Shared by the live tap (which must stay light), the
in-process adapter, and the codec's whole-state path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import ModuleType
from typing import Any


def _weak(value: Any) -> bool:
    """A value any fresh state may share with any other: no evidence of where a state came from."""
    kind = type(value)
    return value is None or kind in (bool, int, str, bytes) or (kind is tuple and not value)


def same_value(a: Any, b: Any) -> bool:
    return bool(a == b) or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)


def compute_delta(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical delta between two whole wire states (PROTOCOL.md); the slow, generic path."""
    sets: dict[str, Any] = {}
    appends: dict[str, Any] = {}
    for key, value in new.items():
        if key not in old:
            sets[key] = value
            continue
        before = old[key]
        if same_value(before, value):
            continue
        if isinstance(before, list) and isinstance(value, list) and len(value) > len(before):
            n = len(before)
            if all(same_value(x, y) for x, y in zip(before, value[:n], strict=True)):
                appends[key] = value[n:]
                continue
        sets[key] = value
    return make_delta(sets, appends)


def make_delta(sets: dict[str, Any], appends: dict[str, Any]) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if sets:
        delta["set"] = sets
    if appends:
        delta["append"] = appends
    return delta


class IdentityWire:
    """Converts one module's frozen values to wire form, and finds a step's delta by identity."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module
        self._fields: dict[type, tuple[str, ...]] = {}
        self._defaults: dict[type, dict[str, Any]] = {}
        self.generic_ok: bool | None = None

    def fields(self, value: Any) -> tuple[str, ...]:
        cls = type(value)
        names = self._fields.get(cls)
        if names is None:
            found = dataclasses.fields(value) if dataclasses.is_dataclass(value) else ()
            names = self._fields[cls] = tuple(f.name for f in found)
            self._defaults[cls] = {f.name: f.default for f in found if f.default is not dataclasses.MISSING}
        return names

    def item(self, value: Any) -> Any:
        if not dataclasses.is_dataclass(value) or isinstance(value, type):
            return value
        return {name: getattr(value, name) for name in self.fields(value)}

    def typed(self, value: Any) -> dict[str, Any]:
        return {"type": type(value).__name__, "payload": self.item(value)}

    def state(self, state: Any) -> dict[str, Any]:
        whole: dict[str, Any] = self.module.to_dict(state)
        if self.generic_ok is None:
            self.generic_ok = self._generic(state) == whole
        return whole

    def _generic(self, state: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.fields(state):
            value = getattr(state, name)
            out[name] = [self.item(x) for x in value] if isinstance(value, tuple) else value
        return out

    def delta(self, pre: Any, post: Any) -> dict[str, Any]:
        if pre is post:
            return {}
        if self.generic_ok is None:
            self.state(pre)
        if not self.generic_ok or type(pre) is not type(post):
            return compute_delta(self.module.to_dict(pre), self.module.to_dict(post))
        sets: dict[str, Any] = {}
        appends: dict[str, Any] = {}
        item = self.item
        try:  # a dataclass with an instance dict: walk it (far cheaper than two getattr per field)
            before, after = vars(pre), vars(post)
            changed = [(n, before[n], v) for n, v in after.items() if v is not before[n]]
        except (TypeError, KeyError):  # slotted dataclasses
            changed = [(n, getattr(pre, n), getattr(post, n)) for n in self.fields(post)]
        for name, old, new in changed:
            if old is new:
                continue
            if isinstance(new, tuple) and isinstance(old, tuple):
                n = len(old)
                # the old items still there at the front: compared in C, where an item that is the
                # very same object costs one pointer test (a generator here cost 3x as much a history item)
                if len(new) >= n and new[:n] == old:
                    if len(new) > n:
                        appends[name] = [item(x) for x in new[n:]]
                    continue
                if new == old:
                    continue
                sets[name] = [item(x) for x in new]
            elif not (old == new and type(old) is type(new)):
                sets[name] = new
        return make_delta(sets, appends)

    def evidence(self, pre: Any, known: Any, origin: Any) -> dict[int, int]:
        """What ``pre`` holds of a slot's last state ``known`` by identity: {id(object): weight}.

        Only objects a slot could have made count, never what any fresh state may share: None, bools,
        ints, strings and empty tuples are skipped, and a scalar field counts only when the slot got it
        after it was first seen (``origin`` is that first state), so a config float every fresh state
        copies is no evidence. A non-empty tuple held as is weighs 4 (a slot's history, its orders); a
        tuple rebuilt outside the reducer (a txid bound) weighs 2 if its first or last item is the very
        same object, or a copy of it sharing at least two of its fields (prices, volumes, times; not
        zeros or the field's default, which every fresh item shares); any
        other object held as is weighs 1. The caller drops objects several slots hold (ambiguous).
        O(fields), never O(history): only the two ends of a tuple are looked at."""
        if type(pre) is not type(known):
            return {}
        out: dict[int, int] = {}
        for name in self.fields(pre):
            a = getattr(pre, name)
            if _weak(a):
                continue
            b = getattr(known, name)
            if a is b:
                if isinstance(a, tuple):
                    out[id(a)] = 4
                elif a is not getattr(origin, name, None):
                    out.setdefault(id(a), 1)
            elif isinstance(a, tuple) and isinstance(b, tuple) and b:
                for x, y in ((a[0], b[0]), (a[-1], b[-1])):
                    if x is y:
                        if not _weak(x):
                            out[id(x)] = 2
                    elif type(x) is type(y) and dataclasses.is_dataclass(x):
                        defaults = self._defaults[type(x)]
                        shared = [id(v) for f in self.fields(x) if (v := getattr(x, f)) is getattr(y, f)
                                  and not _weak(v) and v != 0.0 and v is not defaults.get(f)]  # fmt: skip
                        if len(shared) >= 2:
                            out[shared[0]] = 2
        return out

    def config(self, cfg: Any) -> dict[str, Any]:
        if isinstance(cfg, Mapping):
            return dict(cfg)
        out = self.item(cfg)
        return out if isinstance(out, dict) else {}
