"""The delta by identity (wire/identity.py): the C-level field scan gives exactly what the per-field
Python loop it replaced gave, key order and types included, on generated states and steps."""

from __future__ import annotations

import dataclasses
import math
import types
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shadowdiff.wire.codec import packb
from shadowdiff.wire.identity import IdentityWire, make_delta, same_value


@dataclasses.dataclass(frozen=True)
class Item:
    price: float
    volume: float
    txid: str = ""


@dataclasses.dataclass(frozen=True)
class State:
    now: float = 0.0
    count: int = 0
    flag: bool = False
    name: str = ""
    maybe: Any = None
    orders: tuple[Item, ...] = ()
    history: tuple[Item, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Slotted:
    now: float = 0.0
    count: int = 0
    orders: tuple[Item, ...] = ()


def _to_dict(state: Any) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(state):
        value = getattr(state, f.name)
        out[f.name] = [dataclasses.asdict(x) for x in value] if isinstance(value, tuple) else value
    return out


MODULE = types.ModuleType("identity_test_module")
MODULE.to_dict = _to_dict  # type: ignore[attr-defined]


def per_field_delta(wire: IdentityWire, pre: Any, post: Any) -> dict[str, Any]:
    """The delta as it was found before: a Python loop over the fields (vars, or getattr)."""
    if pre is post:
        return {}
    sets: dict[str, Any] = {}
    appends: dict[str, Any] = {}
    try:
        before, after = vars(pre), vars(post)
        changed = [(n, before[n], v) for n, v in after.items() if v is not before[n]]
    except TypeError:
        changed = [(n, getattr(pre, n), getattr(post, n)) for n in wire.fields(post)]
    for name, old, new in changed:
        if isinstance(new, tuple) and isinstance(old, tuple):
            n = len(old)
            if len(new) >= n and new[:n] == old and wire._same_items(new[:n], old):
                if len(new) > n:
                    appends[name] = [wire.item(x) for x in new[n:]]
                continue
            if new == old and wire._same_items(new, old):
                continue
            sets[name] = [wire.item(x) for x in new]
        elif not same_value(old, new):
            sets[name] = new
    return make_delta(sets, appends)


floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, math.nan]),
)
scalars = st.one_of(floats, st.integers(-3, 3), st.booleans(), st.none(), st.sampled_from(["", "a", "b"]))
items = st.builds(Item, floats, floats, st.sampled_from(["", "t1", "t2"]))


@st.composite
def steps(draw: st.DrawFn, cls: type) -> tuple[Any, Any]:
    """A pre-state and a post-state sharing objects as a frozen reducer's step would: each field kept
    as the very object, replaced by an equal or a different value, or (tuples) appended to, rebuilt of
    the same items, rebuilt of equal copies, or cut."""
    names = [f.name for f in dataclasses.fields(cls)]
    pre_values: dict[str, Any] = {}
    for name in names:
        if name in ("orders", "history"):
            pre_values[name] = tuple(draw(st.lists(items, max_size=4)))
        elif name == "maybe":
            pre_values[name] = draw(scalars)
        else:
            pre_values[name] = draw(scalars if name != "now" else floats)
    pre = cls(**pre_values)
    post_values = {}
    for name in names:
        old = pre_values[name]
        how = draw(st.sampled_from(["keep", "equal", "other", "append", "rebuild", "copies", "cut"]))
        if isinstance(old, tuple):
            if how == "append":
                new = old + tuple(draw(st.lists(items, min_size=1, max_size=3)))
            elif how == "rebuild":
                new = tuple(list(old))
            elif how == "copies":
                new = tuple(dataclasses.replace(x) for x in old)
            elif how == "cut":
                new = old[:-1]
            elif how == "other":
                new = tuple(draw(st.lists(items, max_size=4)))
            else:
                new = old
        elif how == "equal":
            new = float(repr(old)) if isinstance(old, float) else old  # an equal float, another object
        elif how == "other":
            new = draw(scalars)
        else:
            new = old
        post_values[name] = new
    return pre, cls(**post_values)


@settings(max_examples=400, deadline=None)
@given(st.one_of(steps(State), steps(Slotted)))
def test_the_fast_delta_is_the_per_field_delta(step: tuple[Any, Any]) -> None:
    pre, post = step
    wire = IdentityWire(MODULE)
    wire.generic_ok = True
    fast = wire.delta(pre, post)
    slow = per_field_delta(wire, pre, post)
    assert packb(fast) == packb(slow)  # same keys in the same order, same values type for type
    assert list(fast) == list(slow) and all(list(fast[k]) == list(slow[k]) for k in fast)


def test_a_nan_kept_as_another_object_is_no_change() -> None:
    wire = IdentityWire(MODULE)
    wire.generic_ok = True
    pre = State(now=float("nan"))
    post = dataclasses.replace(pre, now=float("nan"))
    assert pre.now is not post.now and wire.delta(pre, post) == {}
    assert wire.delta(State(now=0.0), State(now=-0.0)) == {"set": {"now": -0.0}}
    assert wire.delta(State(count=1), State(count=1.0)) == {"set": {"count": 1.0}}  # type: ignore[arg-type]
