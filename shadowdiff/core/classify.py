"""Divergence kinds, signatures and clusters: pure functions of the differences found.

A signature names what went wrong independently of where in a stream it happened:
``kind|event_type|first path with list indices generalised`` (``transition.state|FillEvent|orders[*].price``);
for failures ``kind|event_type``. A divergence also carries ``signatures``: one per distinct differing
path, so a new difference beside a known one has a name of its own. Repeats of one signature form a cluster.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from shadowdiff.core.diff import generalise
from shadowdiff.model.values import Difference, Divergence, FailureAt, Input


def signature(kind: str, event_type: str, differences: Sequence[Difference]) -> str:
    path = generalise(differences[0].path) if differences else ""
    return f"{kind}|{event_type}|{path}"


def signatures(kind: str, event_type: str, differences: Sequence[Difference]) -> tuple[str, ...]:
    """Every distinct signature of a step's differences, in the order of the paths (the first is
    ``signature``'s): a new difference beside a known one is named too."""
    if not differences:
        return (signature(kind, event_type, differences),)
    out = dict.fromkeys(f"{kind}|{event_type}|{generalise(d.path)}" for d in differences)
    return tuple(out)


def divergence(
    kind: str,
    step: int,
    slot: str,
    item: Input | None,
    differences: Sequence[Difference],
    seq: int | None = None,
) -> Divergence:
    event_type = item.type if item is not None else "open"
    sigs = signatures(kind, event_type, differences)
    return Divergence(kind, sigs[0], step, slot, item, tuple(differences), seq, sigs)


@attrs.frozen
class Cluster:
    signature: str
    kind: str
    event_type: str
    count: int
    first_step: int
    last_step: int

    def to_wire(self) -> dict[str, object]:
        return attrs.asdict(self)


class _Entry:
    """One signature's tally (mutable, private to :class:`Clusters`)."""

    __slots__ = ("count", "event_type", "first", "kind", "last", "latest", "seen")

    def __init__(self, kind: str, event_type: str) -> None:
        self.kind, self.event_type = kind, event_type
        self.count = 0
        self.first: int | None = None
        self.last: int | None = None
        self.latest: int | None = None  # the step of the most recent occurrence (a live stream's)
        self.seen: float | None = None  # when it was last seen (the caller's clock: the core has none)

    def widen(self, first: int | None, last: int | None) -> None:
        if first is not None:
            self.first = first if self.first is None else min(self.first, first)
        if last is not None:
            self.last = last if self.last is None else max(self.last, last)


class Clusters:
    """Counts per signature, in order of first appearance; deterministic. The one clustering of
    shadowdiff: a replay's report, the gate's findings clusters and the sidecar's status all use it."""

    def __init__(self) -> None:
        self._by_signature: dict[str, _Entry] = {}

    def add(self, sig: str, kind: str, event_type: str, step: int | None, seen: float | None = None) -> bool:
        """Count one occurrence (``step`` None: not tied to a step; ``seen``: when, for a live view);
        True when the signature is new."""
        entry = self._by_signature.get(sig)
        new = entry is None
        if entry is None:
            entry = self._by_signature[sig] = _Entry(kind, event_type)
        entry.count += 1
        entry.widen(step, step)
        entry.latest = step
        if seen is not None:
            entry.seen = seen
        return new

    def merge(self, other: Clusters) -> None:
        """Fold in the clusters another worker found (counts add, first and last steps widen)."""
        for sig, theirs in other._by_signature.items():
            entry = self._by_signature.get(sig)
            if entry is None:
                entry = self._by_signature[sig] = _Entry(theirs.kind, theirs.event_type)
            entry.count += theirs.count
            entry.widen(theirs.first, theirs.last)
            entry.latest = theirs.latest if theirs.latest is not None else entry.latest
            entry.seen = max(filter(None, (entry.seen, theirs.seen)), default=None)

    def add_divergence(self, item: Divergence) -> bool:
        return self.add(item.signature, item.kind, item.event_type, item.step)

    def add_failure(self, item: FailureAt) -> bool:
        return self.add(item.signature, item.kind, item.event_type, item.step)

    def __len__(self) -> int:
        return len(self._by_signature)

    def __iter__(self) -> Iterator[Cluster]:
        return iter(self.as_list())

    def as_list(self) -> list[Cluster]:
        """Every cluster, in order of first step (a report's)."""
        clusters = [
            Cluster(sig, e.kind, e.event_type, e.count, _step(e.first), _step(e.last))
            for sig, e in self._by_signature.items()
        ]
        return sorted(clusters, key=lambda c: (c.first_step, c.signature))

    def by_signature(self) -> list[tuple[Cluster, bool]]:
        """Every cluster in order of signature, with whether any occurrence had a step (the gate's view:
        ``first_step``/``last_step`` mean nothing when it is False)."""
        return [
            (Cluster(sig, e.kind, e.event_type, e.count, _step(e.first), _step(e.last)), e.first is not None)
            for sig, e in sorted(self._by_signature.items())
        ]

    def live(self) -> list[dict[str, Any]]:
        """Every cluster as a live status shows it, most frequent first: signature, kind, event type,
        count, the step of its latest occurrence and when that was seen."""
        rows = [
            {"signature": sig, "kind": e.kind, "event_type": e.event_type, "count": e.count,
             "last_step": e.latest, "last_seen": e.seen}
            for sig, e in self._by_signature.items()
        ]  # fmt: skip
        return sorted(rows, key=lambda c: (-c["count"], c["signature"]))


def _step(step: int | None) -> int:
    return -1 if step is None else step
