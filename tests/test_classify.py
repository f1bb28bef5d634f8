"""Signatures and clusters: pure functions of the differences found."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shadowdiff.core.classify import Clusters, divergence, signature
from shadowdiff.model import Difference, Event


def test_signature_generalises_list_indices_and_names_the_event() -> None:
    diffs = [Difference("orders[3].price", 1.0, 1.5), Difference("now", 1, 2)]
    assert signature("transition.state", "FillEvent", diffs) == "transition.state|FillEvent|orders[*].price"
    found = divergence(
        "transition.actions",
        7,
        "slot-1",
        Event("PriceTick", {}),
        [Difference("actions[0].payload.price", 1, 2)],
    )
    assert found.signature == "transition.actions|PriceTick|actions[*].payload.price"
    assert found.event_type == "PriceTick" and found.step == 7
    assert divergence("load", 0, "s", None, [Difference("cycle_a", 1, 0)]).signature == "load|open|cycle_a"


def test_clusters_count_first_and_last_step_in_order_of_first_sight() -> None:
    clusters = Clusters()
    assert clusters.add("b|X|p", "transition.state", "X", 9) is True
    assert clusters.add("a|Y|q", "invariant", "Y", 3) is True
    assert clusters.add("b|X|p", "transition.state", "X", 2) is False
    listed = clusters.as_list()
    assert [(c.signature, c.count, c.first_step, c.last_step) for c in listed] == [
        ("b|X|p", 2, 2, 9),
        ("a|Y|q", 1, 3, 3),
    ]


@given(st.lists(st.tuples(st.sampled_from(["s1", "s2", "s3"]), st.integers(0, 1000)), max_size=40))
def test_cluster_counts_add_up_and_are_order_independent(events: list[tuple[str, int]]) -> None:
    forward, backward = Clusters(), Clusters()
    for sig, step in events:
        forward.add(sig, "k", "E", step)
    for sig, step in reversed(events):
        backward.add(sig, "k", "E", step)
    assert sum(c.count for c in forward.as_list()) == len(events)
    assert {c.signature: (c.count, c.first_step, c.last_step) for c in forward.as_list()} == {
        c.signature: (c.count, c.first_step, c.last_step) for c in backward.as_list()
    }
