"""Canonical deltas and msgpack round trips (PROTOCOL.md)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shadowdiff.codec import apply_delta, compute_delta, packb, same_value, unpackb

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
                    st.floats(allow_nan=False), st.text(max_size=8))  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)
states = st.dictionaries(st.sampled_from(["a", "b", "orders", "history", "now"]), values, min_size=1)


@given(values)
def test_msgpack_round_trip(value: object) -> None:
    assert unpackb(packb(value)) == value


@given(states, states)
def test_delta_takes_old_to_new(old: dict, new: dict) -> None:
    new = {**old, **new}  # the protocol's deltas never remove fields
    assert same_value(apply_delta(old, compute_delta(old, new)), new)  # type for type, bit for bit


@given(st.lists(values, max_size=5), st.lists(values, min_size=1, max_size=3))
def test_growing_list_is_an_append(prefix: list, added: list) -> None:
    delta = compute_delta({"history": prefix}, {"history": prefix + added})
    assert delta == {"append": {"history": added}}


def test_changed_prefix_is_a_set_and_no_change_is_empty() -> None:
    assert compute_delta({"h": [1, 2]}, {"h": [9, 2, 3]}) == {"set": {"h": [9, 2, 3]}}
    assert compute_delta({"x": 1001.0, "h": [1]}, {"x": 1001.0, "h": [1]}) == {}


def test_a_change_of_wire_type_or_float_sign_is_in_the_delta() -> None:
    """0 -> 0.0 and -0.0 -> 0.0 are changes the exact diff sees, so the delta carries them."""
    assert compute_delta({"x": 1001, "h": [1]}, {"x": 1001.0, "h": [1]}) == {"set": {"x": 1001.0}}
    assert compute_delta({"loss": -0.0}, {"loss": 0.0}) == {"set": {"loss": 0.0}}
    assert compute_delta({"h": [{"fee": 0}]}, {"h": [{"fee": 0.0}, 1]}) == {"set": {"h": [{"fee": 0.0}, 1]}}
    assert compute_delta({"h": [{"fee": 0.0}]}, {"h": [{"fee": 0.0}, 1]}) == {"append": {"h": [1]}}
    assert compute_delta({"t": float("nan")}, {"t": float("nan")}) == {}


def test_in_place_apply_grows_the_same_list() -> None:
    history = [1]
    state = {"h": history}
    apply_delta(state, {"append": {"h": [2]}}, in_place=True)
    assert history == [1, 2] and state["h"] is history
    copy = apply_delta(state, {"append": {"h": [3]}})
    assert history == [1, 2] and copy["h"] == [1, 2, 3]


def test_applying_in_place_never_grows_a_list_the_delta_still_holds() -> None:
    """A mirror that took a list from one step's delta and grows it at the next must not change the
    first delta (a divergence report may still be showing it)."""
    state = {"completed_cycles": [1]}
    reset = {"set": {"completed_cycles": [7]}}
    apply_delta(state, reset, in_place=True)
    apply_delta(state, {"append": {"completed_cycles": [8]}}, in_place=True)
    assert state == {"completed_cycles": [7, 8]}
    assert reset == {"set": {"completed_cycles": [7]}}
