"""Wire form and canonical deltas of frozen dataclass values, found by identity. Standard library only.

An upstream reducer's values are frozen dataclasses of tuples, and a transition keeps every field it
does not change as the very same object. So the delta of a step (PROTOCOL.md: ``set`` a field's new
value, ``append`` the items a list gained at its end) is found by identity, converting only what
changed: a month of history costs nothing per step. Shared by the live tap (which must stay light), the
in-process adapter, and the codec's whole-state path.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Callable, Mapping
from itertools import compress
from operator import is_, is_not
from types import ModuleType
from typing import Any

_NO_DEFAULT = object()


_WEAK_TYPES = frozenset({bool, int, str, bytes, type(None)})


def _weak(value: Any) -> bool:
    """A value any fresh state may share with any other: no evidence of where a state came from."""
    kind = type(value)
    return kind in _WEAK_TYPES or (kind is tuple and not value)


def same_value(a: Any, b: Any) -> bool:
    """Equal type for type (an int is not an equal float, -0.0 is not 0.0, True is not 1); NaN equals
    NaN. A field turning from 0 to 0.0 is a change, so it is in the delta."""
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return bool(a == b) and same_types(a, b)


def same_types(a: Any, b: Any) -> bool:
    """Given ``a == b``: does every leaf have the same type on both sides, and every float the same
    sign (the only bits ``==`` does not see on equal non-NaN floats)?"""
    ta = type(a)
    if ta is not type(b):
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            return all(same_types(value, b[key]) for key, value in a.items())
        if isinstance(a, list | tuple) and isinstance(b, list | tuple):
            return all(map(same_types, a, b))
        return False
    if ta is float:
        return math.copysign(1.0, a) == math.copysign(1.0, b)
    if ta is dict:
        return all(same_types(value, b[key]) for key, value in a.items())
    if ta is list or ta is tuple:
        return all(map(same_types, a, b))
    return True


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
        self._getters: dict[type, Callable[[Any], tuple[Any, ...]]] = {}
        self._default_values: dict[type, tuple[Any, ...]] = {}
        self._positions: dict[type, tuple[int, ...]] = {}
        self.generic_ok: bool | None = None

    def fields(self, value: Any) -> tuple[str, ...]:
        cls = type(value)
        names = self._fields.get(cls)
        if names is None:
            found = dataclasses.fields(value) if dataclasses.is_dataclass(value) else ()
            names = self._fields[cls] = tuple(f.name for f in found)
            self._defaults[cls] = {f.name: f.default for f in found if f.default is not dataclasses.MISSING}
        return names

    def defaults(self, value: Any) -> dict[str, Any]:
        """The fields of ``value``'s class that have a default, with it (a class no value was read of
        yet: none)."""
        self.fields(value)
        return self._defaults.get(type(value), {})

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
        cls = type(pre)
        if not self.generic_ok or cls is not type(post):
            return compute_delta(self.module.to_dict(pre), self.module.to_dict(post))
        sets: dict[str, Any] = {}
        appends: dict[str, Any] = {}
        item = self.item
        try:  # a dataclass with an instance dict: walk it (far cheaper than two getattr per field; this
            # list comprehension measured faster than attrgetter tuples compared by map(is_not) in C,
            # whose getattr per field costs more than a dict walk)
            before, after = vars(pre), vars(post)
            changed = [(n, before[n], v) for n, v in after.items() if v is not before[n]]
        except (TypeError, KeyError):  # slotted dataclasses: two attrgetter calls, compared in C
            old_values, new_values = self.values(pre), self.values(post)
            names = self._fields[cls]
            moved = compress(self._positions[cls], map(is_not, old_values, new_values))
            changed = [(names[i], old_values[i], new_values[i]) for i in moved]
        for name, old, new in changed:
            kind = type(new)
            if kind is tuple and type(old) is tuple:
                n = len(old)
                # the old items still there at the front, the very same objects: one C pass (map stops
                # at old's end), no slice; a tuple rebuilt of equal items takes the slower look below
                if len(new) >= n and all(map(is_, new, old)):
                    if len(new) > n:
                        appends[name] = [item(x) for x in new[n:]]
                    continue
                if len(new) > n and new[:n] == old and self._same_items(new[:n], old):
                    appends[name] = [item(x) for x in new[n:]]
                    continue
                if new == old and self._same_items(new, old):
                    continue
                sets[name] = [item(x) for x in new]
            # a new value of the same type (not NaN), or else type for type: 0 -> 0.0 and -0.0 -> 0.0
            # are changes
            elif (kind is type(old) and old != new and old == old) or not same_value(old, new):
                sets[name] = new
        return make_delta(sets, appends)

    def _same_items(self, new: tuple[Any, ...], old: tuple[Any, ...]) -> bool:
        """Given ``new == old`` (by value): the same wire values type for type. Items still the very
        same objects (one C pass) need no look; a rebuilt item is compared as its wire map."""
        if all(map(is_, new, old)):
            return True
        return all(x is y or same_value(self.item(x), self.item(y)) for x, y in zip(new, old, strict=True))

    def values(self, value: Any) -> tuple[Any, ...]:
        """A dataclass's field values in field order (one C call), () for anything else."""
        getter = self._getters.get(type(value))
        if getter is None:
            names = self.fields(value)
            if not names:
                return ()
            defaults = self._defaults[type(value)]
            self._default_values[type(value)] = tuple(defaults.get(n, _NO_DEFAULT) for n in names)
            self._positions[type(value)] = tuple(range(len(names)))
            many = operator.attrgetter(*names)
            getter = self._getters[type(value)] = many if len(names) > 1 else lambda v: (many(v),)
        out: tuple[Any, ...] = getter(value)
        return out

    def evidence(self, pre: Any, known: list[tuple[Any, tuple[Any, ...], set[int]]]) -> list[dict[int, int]]:
        """What ``pre`` holds of each slot's last state by identity: per ``(post, origin values,
        copied)`` of ``known``, {id(object): weight}.

        Only objects a slot could have made count, never what any fresh state may share: None, bools,
        ints, strings, empty tuples, zeros and field defaults are skipped, and a scalar the slot
        started with (``origin values``: its first state's) or one in ``copied`` (ids of its recent
        events' fields, which the reducer copies into states) weighs 0, so a config float every fresh
        state copies, or an event's price, is no evidence. A non-empty tuple held as is weighs 4 (a
        slot's history, its orders); an item at either end of a tuple weighs 2; a field of such an
        item (a price, a volume, a time; not zeros or the field's default) found in the slot's item at
        either end of the same tuple weighs 1, which is what a tuple rebuilt outside the reducer (a
        txid bound) still shares; any other scalar held as is weighs 1. Every object a slot holds is
        listed, so the caller can drop those several slots hold (shared events, ambiguous). O(fields)
        per slot, never O(history): only the two ends of a tuple are looked at."""
        values = self.values(pre)
        marks = self._default_values.get(type(pre), ())
        strong = {id(a): i for i, a in enumerate(values)
                  if not _weak(a) and a is not marks[i] and a != 0.0}  # fmt: skip
        if not strong:
            return [{} for _ in known]
        # the tuples' two ends, and the fields of those items a copy of them would share
        ends: list[tuple[int, Any, set[int], list[set[int]]]] = []
        for i in strong.values():
            a = values[i]
            if isinstance(a, tuple):
                items = {id(x) for x in (a[0], a[-1]) if not _weak(x)}
                copies = []
                for x in {id(x): x for x in (a[0], a[-1])}.values():
                    xs = self.values(x)
                    if xs:
                        marks = self._default_values[type(x)]
                        copies.append({id(v) for v, d in zip(xs, marks, strict=True)
                                       if v is not d and not _weak(v) and v != 0.0})  # fmt: skip
                ends.append((i, a, items, copies))
        cls = type(pre)
        out: list[dict[int, int]] = []
        for post, origin, copied in known:
            got: dict[int, int] = {}
            out.append(got)
            if type(post) is not cls:
                continue
            theirs = self.values(post)
            for key in strong.keys() & set(map(id, theirs)):  # held as is (C set operations)
                i = strong[key]
                a = values[i]
                if isinstance(a, tuple):
                    got[key] = 4
                else:  # what the slot started with or copied from an event weighs nothing (listed, so
                    # other slots see it is shared)
                    started = i < len(origin) and a is origin[i]
                    got[key] = 0 if started or key in copied else 1
            for i, a, items, copies in ends:
                b = theirs[i]
                if b is a:  # the slot holds these items and their fields too (seen by the ambiguity test)
                    for key in items:
                        got[key] = 2
                    for fields in copies:
                        got.update(dict.fromkeys(fields.difference(got), 1))
                        got.update(dict.fromkeys(fields.intersection(copied), 0))
                    continue
                if not isinstance(b, tuple) or not b:
                    continue
                for y in (b[0], b[-1]):
                    if id(y) in items:
                        got[id(y)] = 2  # and its fields below: other slots' copies of it share some
                    ys = set(map(id, self.values(y)))
                    for fields in copies:  # a copy of one of pre's items: its fields, each on its own
                        common = fields.intersection(ys)
                        got.update(dict.fromkeys(common.difference(got), 1))
                        got.update(dict.fromkeys(common.intersection(copied), 0))
        return out

    def config(self, cfg: Any) -> dict[str, Any]:
        if isinstance(cfg, Mapping):
            return dict(cfg)
        out = self.item(cfg)
        return out if isinstance(out, dict) else {}
