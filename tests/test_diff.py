"""Structural diff: paths, values, rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowdiff.diff import Rule, Rules, diff, generalise, identical
from shadowdiff.errors import BadInput

values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=4)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=10,
)


def test_paths_name_the_differing_leaf() -> None:
    a = {"orders": [{"price": 1.0, "side": "buy"}, {"price": 2.0}], "now": 5}
    b = {"orders": [{"price": 1.0, "side": "buy"}, {"price": 2.5}], "now": 5}
    [d] = diff(a, b)
    assert (d.path, d.authoritative, d.shadow) == ("orders[1].price", 2.0, 2.5)


def test_ints_and_floats_compare_by_value_but_bools_do_not() -> None:
    assert diff({"x": 1001}, {"x": 1001.0}) == []
    assert [d.path for d in diff({"x": True}, {"x": 1})] == ["x"]


def test_lengths_and_missing_keys_are_reported() -> None:
    paths = [d.path for d in diff({"l": [1, 2], "k": 1}, {"l": [1], "j": 2})]
    assert paths == ["l.length", "k", "j"]


def test_rules_tolerances_and_ignore() -> None:
    rules = Rules((Rule("orders[*].price", "abs", 1e-6), Rule("now", "ignore"), Rule("fee", "rel", 1e-3),
                   Rule("pnl", "ulp", 2)))  # fmt: skip
    a = {"orders": [{"price": 1.0}], "now": 1, "fee": 100.0, "pnl": 0.1}
    b = {"orders": [{"price": 1.0000005}], "now": 2, "fee": 100.05, "pnl": 0.1 + 2**-56}
    assert diff(a, b, rules=rules) == []
    b["orders"][0]["price"] = 1.01
    assert [d.rule for d in diff(a, b, rules=rules)] == ["abs"]


def test_generalise_and_rule_file_errors(tmp_path) -> None:
    assert generalise("orders[12].fills[3].px") == "orders[*].fills[*].px"
    bad = tmp_path / "rules.toml"
    bad.write_text('[[rule]]\npath = "x"\nkind = "fuzzy"\n')
    with pytest.raises(BadInput, match="unknown rule kind 'fuzzy'"):
        Rules.load(bad)
    good = tmp_path / "ok.toml"
    good.write_text('[[rule]]\npath = "completed_cycles[*].net_profit"\nkind = "abs"\ntolerance = 1e-9\n')
    assert Rules.load(good).rules == (Rule("completed_cycles[*].net_profit", "abs", 1e-9),)


@given(values, values)
def test_diff_is_symmetric(a: object, b: object) -> None:
    forward = [(d.path, d.authoritative, d.shadow) for d in diff(a, b)]
    backward = [(d.path, d.shadow, d.authoritative) for d in diff(b, a)]
    assert sorted(map(repr, forward)) == sorted(map(repr, backward))
    assert (forward == []) == (a == b or repr(a) == repr(b) or diff(a, b) == [])


@given(values)
def test_a_value_never_differs_from_itself(a: object) -> None:
    assert diff(a, a) == []


def test_identical_is_equality_without_a_bool_standing_in_for_a_number() -> None:
    assert identical({"set": {"x": 1001}}, {"set": {"x": 1001.0}})  # by value, as in the diff
    assert not identical({"set": {"long_only": True}}, {"set": {"long_only": 1}})
    assert not identical([{"payload": {"ok": False}}], [{"payload": {"ok": 0}}])
    assert not identical({"a": [1, 2]}, {"a": [1, 3]})


@given(values, values)
def test_identical_values_never_differ(a: object, b: object) -> None:
    if identical(a, b):
        assert diff(a, b) == [] and diff(b, a) == []


@given(values)
def test_a_value_is_identical_to_its_copy_unless_nan(a: object) -> None:
    import copy

    assert identical(a, copy.deepcopy(a))
