"""A step's context is domain-free: ``Context(config, params)``, the parameters named and defaulted by the
domain's declaration (``CallView.context``). A domain with parameters of its own gets them read from
corpora, sent to a real shadow process in its order, and written back out, without shadowdiff naming any.
"""

from __future__ import annotations

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowdiff import Context
from shadowdiff.core.domain import Domain
from shadowdiff.core.reducer import Open, Request, Result, Step
from shadowdiff.model.errors import BadInput
from shadowdiff.model.records import Snapshot
from shadowdiff.model.values import Event, Scenario, StepResult
from shadowdiff.runtime import corpus
from shadowdiff.runtime.corpus import RecordReader, context_start, scenario_from_wire
from shadowdiff.shadow.client import SubprocessReducer
from shadowdiff.wire.format import CallView, ContextParam


class LeverDomain(Domain):
    name = "lever"
    tap_calls = CallView(
        context=(
            ContextParam("config", "cfg", "config"),
            ContextParam("leverage", "lev", "float", 1.0),
            ContextParam("limits", "lim", "mapping", None),
        )
    )


LEVER = LeverDomain()

# a shadow that remembers the context of each step, as (key, value) pairs in the order they arrived
ECHO = """
import sys
from shadowdiff.core.reducer import Reducer
from shadowdiff.model.values import Outcome
from shadowdiff.shadow.serve import MsgpackServer, serve_msgpack

class Echo(Reducer):
    name = "echo"
    def transition(self, state, event, context, with_invariants=False):
        seen = [[k, v] for k, v in context.to_wire().items()]
        return Outcome({**state, "seen": seen}, [], [] if with_invariants else None)
    def check_invariants(self, state):
        return []

sys.exit(serve_msgpack(MsgpackServer(Echo()), sys.stdin.buffer, sys.stdout.buffer))
"""


def test_the_old_keyword_form_is_refused_naming_the_parameters() -> None:
    with pytest.raises(TypeError, match=r"Context takes \(config, params\): pass 'leverage' in params"):
        Context(config={}, leverage=2.0)  # type: ignore[call-arg]


def test_a_slot_starts_from_the_domains_defaults_in_its_order() -> None:
    assert LEVER.blank_context() == Context({}, {"leverage": 1.0, "limits": None})
    reader = RecordReader("log", context_start(LEVER))
    header = {"kind": "header", "format": "shadowdiff-log", "version": 1, "provenance": {},
              "slots": {"a": {"state": {}, "context": {"limits": {"x": 1}, "junk": 3, "config": {"k": 1}}},
                        "b": {"state": {}}}}  # fmt: skip
    a, b = list(reader.item(header, "here"))
    assert isinstance(a, Snapshot) and isinstance(b, Snapshot)
    assert list(a.context.to_wire().items()) == [
        ("config", {"k": 1}),
        ("leverage", 1.0),
        ("limits", {"x": 1}),
    ]
    assert b.context == Context({}, {"leverage": 1.0, "limits": None})
    assert b.context.config is not a.context.config


def test_a_scenario_carries_the_domains_parameters_where_they_always_were() -> None:
    data = {"name": "s", "config": {}, "initial_state": {}, "leverage": 3, "other": 1, "events": []}
    scenario = scenario_from_wire(data, "s.json", domain=LEVER)
    assert scenario.context == Context({}, {"leverage": 3, "limits": None})
    assert list(scenario.to_wire()) == ["name", "config", "initial_state", "leverage", "limits", "events"]
    with pytest.raises(BadInput, match="'limits' must be an object"):
        scenario_from_wire({**data, "limits": [1]}, "s.json", domain=LEVER)


# a parameter shares the request map with the protocol's keys (op, id, session, event, state, ...): names
# from letters none of those can be spelt with
names = st.text("klmnpqrxyz", min_size=1, max_size=6)
values = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=4)
)


@settings(deadline=None, max_examples=30)
@given(st.lists(st.dictionaries(names, values, max_size=14), min_size=1, max_size=3))
def test_a_real_shadow_receives_every_parameter_in_order(contexts: list[dict[str, object]]) -> None:
    """The client's pre-packed step (any number of parameters: up to 20 map entries) decodes, in a real
    server process, to the context sent, key for key and type for type."""
    with SubprocessReducer([sys.executable, "-c", ECHO]) as shadow:
        _run(shadow, Open("s", {}))
        for params in contexts:
            context = Context({"c": 1}, params)
            assert isinstance(_run(shadow, Step("s", Event("Tick", {}), context, False)), StepResult)
            seen = shadow.get("s")["seen"]
            assert [(k, v) for k, v in seen] == list(context.to_wire().items())
            assert [type(v) for _, v in seen] == [type(v) for v in context.to_wire().values()]


def _run(shadow: SubprocessReducer, request: Request) -> Result:
    ticket = shadow.submit(request)
    while True:
        for done, result in shadow.poll(wait=True):
            if done == ticket:
                return result


def test_context_round_trips_through_its_wire_form() -> None:
    context = Context({"a": 1}, {"z": 1.5, "a": None})
    assert Context.from_wire(context.to_wire()) == context
    assert context.updated({"z": 2, "unknown": 1}) == Context({"a": 1}, {"z": 2, "a": None})
    assert Scenario("n", context, {}, ()).to_wire()["z"] == 1.5


def test_without_a_known_domain_a_context_is_taken_as_the_corpus_has_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A library caller that names no domain (and no command registered one) loses no parameter: a
    record's context keeps every key, a scenario every top-level key its format does not name."""
    monkeypatch.setattr(corpus, "_domains", [])
    assert context_start() is None
    reader = RecordReader("log")
    slots = {"a": {"state": {}, "context": {"leverage": 2, "config": {"k": 1}}}}
    header = {"kind": "header", "format": "shadowdiff-log", "version": 1, "provenance": {}, "slots": slots}
    snap = list(reader.item(header, "h"))
    assert snap == [Snapshot("a", {}, Context({"k": 1}, {"leverage": 2}), "h")]
    data = {"name": "s", "leverage": 3, "initial_state": {}, "events": [], "expected": {}, "shadowdiff": {}}
    assert scenario_from_wire(data, "s.json").context == Context({}, {"leverage": 3})
