"""Canonical deltas and msgpack round trips (PROTOCOL.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from shadowdiff.wire.codec import apply_delta, compute_delta, packb, same_value, unpackb

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


# A JSON-lines shadow that prints whole-number floats as ints, as the real port's binary does: a proxy
# in front of our port (which writes floats as Python's json does) rewriting 13.0 to 13 on the way out.
_INT_PRINTER = r"""
import re, subprocess, sys, threading
WHOLE = re.compile(r"([:\[,]\s*)(-?\d+)\.0(?=\s*[,}\]])")
proc = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
def pump():
    for line in sys.stdin:
        proc.stdin.write(line)
        proc.stdin.flush()
    proc.stdin.close()
threading.Thread(target=pump, daemon=True).start()
for line in proc.stdout:
    sys.stdout.write(WHOLE.sub(r"\1\2", line))
    sys.stdout.flush()
sys.exit(proc.wait())
"""


def test_jsonl_answers_may_print_whole_floats_as_ints_unless_strict_types(
    haskell_exe: Path, upstream: Path, tmp_path: Path
) -> None:
    """Over jsonl a shadow's 13 for the authority's 13.0 is no difference (the wire cannot carry the
    distinction the way the real binary writes it); ``--strict-types`` reports it; our port's own JSON
    (floats as Python writes them) agrees type for type either way."""
    shim = tmp_path / "int_printer.py"
    shim.write_text(_INT_PRINTER)

    def replay(shadow: str, *extra: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "shadowdiff", "replay", str(upstream), "--codec", "jsonl",
                "--shadow", shadow, *extra]  # fmt: skip
        return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)

    printer = f"{sys.executable} {shim} {haskell_exe} --server"
    lenient = replay(printer)
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    strict = replay(printer, "--strict-types")
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert "authoritative 13.0   shadow 13" in strict.stdout
    ours = replay(f"{haskell_exe} --server", "--strict-types")
    assert ours.returncode == 0, ours.stdout + ours.stderr
