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


def test_one_clustering_gives_the_report_the_gate_and_the_live_view() -> None:
    """The gate's findings clusters and the sidecar's status read the same Clusters a report does."""
    clusters = Clusters()
    clusters.add("b|FillEvent|p", "transition.state", "FillEvent", 9, seen=100.0)
    clusters.add("a|TimerTick|q", "invariant", "TimerTick", None, seen=101.0)  # a finding without a step
    clusters.add("b|FillEvent|p", "transition.state", "FillEvent", 4, seen=102.0)
    assert [(c.signature, c.count, c.first_step, c.last_step) for c in clusters.as_list()] == [
        ("a|TimerTick|q", 1, -1, -1),
        ("b|FillEvent|p", 2, 4, 9),
    ]
    assert [(c.signature, stepped) for c, stepped in clusters.by_signature()] == [
        ("a|TimerTick|q", False),
        ("b|FillEvent|p", True),
    ]
    assert clusters.live() == [
        {"signature": "b|FillEvent|p", "kind": "transition.state", "event_type": "FillEvent", "count": 2,
         "last_step": 4, "last_seen": 102.0},
        {"signature": "a|TimerTick|q", "kind": "invariant", "event_type": "TimerTick", "count": 1,
         "last_step": None, "last_seen": 101.0},
    ]  # fmt: skip
