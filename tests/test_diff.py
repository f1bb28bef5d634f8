"""Structural diff: paths, values, rules."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowdiff.core.diff import Rule, Rules, answer_rules, diff, generalise, identical, run_rules
from shadowdiff.model.errors import BadInput
from shadowdiff.runtime.rulesfile import load_rules
from shadowdiff.wire.codec import same_value

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


def test_exact_compares_type_for_type_and_bit_for_bit() -> None:
    [d] = diff({"x": 0}, {"x": 0.0})
    assert (d.path, d.authoritative, d.shadow) == ("x", 0, 0.0)
    assert type(d.authoritative) is int and type(d.shadow) is float
    assert d.rule == "exact: 0 (int) vs 0.0 (float)"  # JSON and viewers print both as 0: the rule says it
    [d] = diff({"x": -0.0}, {"x": 0.0})
    assert d.rule == "exact: -0.0 vs 0.0 (float bits differ)"
    assert diff({"x": math.nan}, {"x": -math.nan}) == []  # NaN equals NaN, whatever its bits
    assert [d.path for d in diff({"x": True}, {"x": 1})] == ["x"]
    assert [d.path for d in diff({"x": 1001}, {"x": 1001.0}, rules=Rules((Rule("y", "numeric"),)))] == ["x"]


def test_the_numeric_rule_compares_as_the_bots_own_equality_does() -> None:
    numeric = Rules((Rule("*", "numeric"),))
    assert diff({"x": 1001, "y": [-0.0]}, {"x": 1001.0, "y": [0.0]}, rules=numeric) == []
    assert diff({"x": math.nan}, {"x": math.nan}, rules=numeric) == []
    assert [d.rule for d in diff({"x": 1}, {"x": 1.5}, rules=numeric)] == ["numeric"]
    assert [d.path for d in diff({"x": True}, {"x": 1}, rules=numeric)] == ["x"]  # a bool is not a number
    assert diff({"x": 2**53 + 1}, {"x": float(2**53)}, rules=numeric) != []  # by exact value, not float()


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
        load_rules(bad)
    good = tmp_path / "ok.toml"
    good.write_text('[[rule]]\npath = "completed_cycles[*].net_profit"\nkind = "abs"\ntolerance = 1e-9\n')
    assert load_rules(good).rules == (Rule("completed_cycles[*].net_profit", "abs", 1e-9),)


@given(values, values)
def test_diff_is_symmetric(a: object, b: object) -> None:
    forward = [(d.path, d.authoritative, d.shadow) for d in diff(a, b)]
    backward = [(d.path, d.shadow, d.authoritative) for d in diff(b, a)]
    assert sorted(map(repr, forward)) == sorted(map(repr, backward))
    # no NaN drawn: no difference exactly when equal type for type (False == 0 in Python, not here)
    assert (forward == []) == same_value(a, b)


@given(values)
def test_a_value_never_differs_from_itself(a: object) -> None:
    assert diff(a, a) == []


def test_identical_is_equality_without_a_bool_standing_in_for_a_number() -> None:
    assert identical({"set": {"x": 1001.0}}, {"set": {"x": 1001.0}})
    assert not identical({"set": {"x": 1001}}, {"set": {"x": 1001.0}})  # type for type, as in the diff
    assert not identical([{"fee": -0.0}], [{"fee": 0.0}])
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


numbers = st.integers() | st.floats()
NUMERIC = Rules((Rule("*", "numeric"),))


def _bits(x: float) -> bytes:
    return struct.pack(">d", x)


@given(st.integers(min_value=-(2**53), max_value=2**53))
def test_an_int_never_equals_the_equal_float_exactly_and_always_numerically(n: int) -> None:
    for a, b in ((n, float(n)), (float(n), n)):
        [d] = diff({"v": [a]}, {"v": [b]})
        assert d.path == "v[0]" and "(int)" in d.rule and "(float)" in d.rule
        assert not identical({"v": [a]}, {"v": [b]}) and not same_value([a], [b])
        assert diff({"v": [a]}, {"v": [b]}, rules=NUMERIC) == []


@given(st.floats(), st.floats())
def test_exact_floats_agree_exactly_when_their_bits_do_or_both_are_nan(a: float, b: float) -> None:
    agree = diff({"f": a}, {"f": b}) == []
    assert agree == (_bits(a) == _bits(b) or (math.isnan(a) and math.isnan(b)))
    assert agree == same_value(a, b) == (diff({"f": b}, {"f": a}) == [])
    if identical(a, b):  # NaN is never identical to itself by ==; the walk decides then
        assert agree


@given(numbers, numbers)
def test_numeric_is_value_equality_and_both_rules_are_symmetric(a: float, b: float) -> None:
    numeric = diff([a], [b], rules=NUMERIC) == []
    assert numeric == (a == b or (math.isnan(a) and math.isnan(b)))
    assert numeric == (diff([b], [a], rules=NUMERIC) == [])
    assert (diff([a], [b]) == []) == (diff([b], [a]) == [])
    if diff([a], [b]) == []:
        assert numeric  # exact agreement implies numeric agreement


@given(values, values)
def test_identical_is_exactly_no_difference_when_there_is_no_nan(a: object, b: object) -> None:
    assert identical(a, b) == (diff(a, b) == []) == same_value(a, b)


def test_the_json_rule_compares_an_int_and_a_float_by_value_and_floats_bit_for_bit() -> None:
    """A whole-state wire cannot carry int-versus-float: a JSON writer may print 0.0 as 0 (the real
    port's binary does), and a shadow re-reading the state it is sent float()s an int the module kept."""
    json_rule = Rules((Rule("*", "json"),))
    assert diff({"fee": 0.0, "p": [100.0]}, {"fee": 0, "p": [100]}, rules=json_rule) == []
    assert diff({"fee": 0}, {"fee": 0.0}, rules=json_rule) == []
    assert [d.path for d in diff({"fee": 0.5}, {"fee": 0}, rules=json_rule)] == ["fee"]
    assert [d.rule for d in diff({"x": -0.0}, {"x": 0.0}, rules=json_rule)] == [
        "exact: -0.0 vs 0.0 (float bits differ)"
    ]
    assert [d.path for d in diff({"x": True}, {"x": 1}, rules=json_rule)] == ["x"]


def test_run_rules_add_numeric_or_exact_and_whole_state_answers_add_json_last() -> None:
    mine = Rules((Rule("fee", "exact"),))
    assert run_rules(mine) == mine
    assert answer_rules(mine).rules == (Rule("fee", "exact"), Rule("*", "json"))
    strict = answer_rules(run_rules(mine, strict_types=True))  # --strict-types, whole-state shadow
    assert strict.rules == (Rule("fee", "exact"), Rule("*", "exact"), Rule("*", "json"))
    assert [d.path for d in diff({"x": 1.0}, {"x": 1}, rules=strict)] == ["x"]
    assert diff({"x": 1.0}, {"x": 1}, rules=answer_rules(mine)) == []
    assert [d.path for d in diff({"fee": 1.0}, {"fee": 1}, rules=answer_rules(mine))] == ["fee"]
    numeric = run_rules(mine, numeric=True)
    assert numeric.rules == (Rule("fee", "exact"), Rule("*", "numeric"))
    assert diff({"fee": 0.0, "x": 1.0}, {"fee": 0, "x": 1}, rules=numeric) == [
        diff({"fee": 0.0}, {"fee": 0})[0]
    ]


def test_rule_files_take_the_numeric_and_json_kinds(tmp_path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        '[[rule]]\npath = "orders[*].entry_fee"\nkind = "numeric"\n[[rule]]\npath = "*"\nkind = "json"\n'
    )
    assert load_rules(path).rules == (Rule("orders[*].entry_fee", "numeric"), Rule("*", "json"))
