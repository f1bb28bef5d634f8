"""Divergence kinds, signatures and clusters: pure functions of the differences found.

A signature names what went wrong independently of where in a stream it happened:
``kind|event_type|first path with list indices generalised`` (``transition.state|FillEvent|orders[*].price``);
for failures ``kind|event_type``. A divergence also carries ``signatures``: one per distinct differing
path, so a new difference beside a known one has a name of its own. Repeats of one signature form a cluster.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

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


class Clusters:
    """Counts per signature, in order of first appearance; deterministic."""

    def __init__(self) -> None:
        self._by_signature: dict[str, list[int | str]] = {}

    def add(self, sig: str, kind: str, event_type: str, step: int) -> bool:
        """Count one occurrence; True when the signature is new."""
        entry = self._by_signature.get(sig)
        if entry is None:
            self._by_signature[sig] = [kind, event_type, 1, step, step]
            return True
        entry[2] = int(entry[2]) + 1
        entry[3] = min(int(entry[3]), step)
        entry[4] = max(int(entry[4]), step)
        return False

    def merge(self, other: Clusters) -> None:
        """Fold in the clusters another worker found (counts add, first and last steps widen)."""
        for sig, (kind, event_type, count, first, last) in other._by_signature.items():
            entry = self._by_signature.get(sig)
            if entry is None:
                self._by_signature[sig] = [kind, event_type, count, first, last]
            else:
                entry[2] = int(entry[2]) + int(count)
                entry[3] = min(int(entry[3]), int(first))
                entry[4] = max(int(entry[4]), int(last))

    def add_divergence(self, item: Divergence) -> bool:
        return self.add(item.signature, item.kind, item.event_type, item.step)

    def add_failure(self, item: FailureAt) -> bool:
        return self.add(item.signature, item.kind, item.event_type, item.step)

    def __len__(self) -> int:
        return len(self._by_signature)

    def __iter__(self) -> Iterator[Cluster]:
        return iter(self.as_list())

    def as_list(self) -> list[Cluster]:
        clusters = [
            Cluster(sig, str(k), str(e), int(c), int(first), int(last))
            for sig, (k, e, c, first, last) in self._by_signature.items()
        ]
        return sorted(clusters, key=lambda c: (c.first_step, c.signature))
