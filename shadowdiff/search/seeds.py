"""Generation that starts from real states as well as synthetic ones (``shadowdiff fuzz --from FILE``).

Real states (a bot's ``bot_runtime.json``, a recorded log's snapshots, a scenario's initial state, a
findings line's pre-state) have histories, recoveries, cooldowns and counters no generator invents.
``seed_scenarios`` reads every state a corpus opens a slot with; ``SeededStrategies`` wraps a domain's
strategies so that an initial scenario is one of those seeds or a synthetic one (each about half the
time), and the walk from it is the domain's own state-guided walk. A seed keeps its origin in
``meta["seed_from"]``, so a reproducer can say where its pre-state came from; it is shrunk like any
other (list items dropped, fields reset), so a reproducer holds no more of the real state than the
divergence needs.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs
from hypothesis import strategies as st

from shadowdiff.core.domain import Domain
from shadowdiff.model.errors import BadInput
from shadowdiff.model.records import ContextChange, PatchRecord, Record, Snapshot
from shadowdiff.model.values import Context, Input, Scenario, WireMap
from shadowdiff.runtime.corpus import expand, read_items
from shadowdiff.search.generate import Draw, Strategies
from shadowdiff.wire.codec import apply_delta

SEED_KEY = "seed_from"


def seed_scenarios(paths: Iterable[str | Path], domain: Domain | None = None) -> list[Scenario]:
    """Scenarios without inputs, one per real state in these corpora, in file order: every state a slot
    is opened (or reopened) with, and in a recorded-outcome log also the states the recorded deltas
    (and patches) lead to, after steps 1, 2, 4, 8, ... of each slot and at its end (early states and
    late ones with their history, without keeping thousands). Raises ``BadInput`` (naming where) for a
    file that cannot be read, or one with no state."""
    out: list[Scenario] = []
    for path in expand(paths):
        found = len(out)
        slots: dict[str, _Walk] = {}
        take = functools.partial(_take, out, path)
        for item in read_items([path], domain):
            if isinstance(item, Snapshot):
                ended = slots.get(item.slot)
                if ended is not None and ended.state is not None and ended.taken != ended.steps:
                    take(item.slot, ended)
                slots[item.slot] = walk = _Walk(dict(item.state), item.context)
                take(item.slot, walk)
                continue
            walk_or_none = slots.get(getattr(item, "slot", None) or "")
            if walk_or_none is None or walk_or_none.state is None:
                continue
            walk, state = walk_or_none, walk_or_none.state
            if isinstance(item, ContextChange):
                walk.context = walk.context.updated(item.changes)
            elif isinstance(item, PatchRecord):
                walk.state = apply_delta(state, item.delta)
            elif isinstance(item, Record):
                if item.context:
                    walk.context = walk.context.updated(item.context)
                if item.outcome is None:
                    walk.state = None  # no recorded outcome: the slot's next state is unknown
                    continue
                walk.state = apply_delta(state, item.outcome.delta)
                walk.steps += 1
                if walk.steps & (walk.steps - 1) == 0:  # a power of two
                    take(item.slot, walk)
        for slot, walk in slots.items():
            if walk.state is not None and walk.taken != walk.steps:
                take(slot, walk)
        if len(out) == found:
            raise BadInput("no state to start from in this file", str(path))
    return out


def _take(out: list[Scenario], path: Path, slot: str, walk: _Walk) -> None:
    assert walk.state is not None
    meta: WireMap = {SEED_KEY: str(path), "slot": slot}
    if walk.steps:
        meta["after_steps"] = walk.steps
    name = f"{path.name}:{slot}" + (f"@{walk.steps}" if walk.steps else "")
    out.append(Scenario(name, walk.context, dict(walk.state), (), meta=meta))
    walk.taken = walk.steps


@attrs.define
class _Walk:
    """A slot's state as a recorded log's outcomes say it is (None once a step has no outcome)."""

    state: WireMap | None
    context: Context
    steps: int = 0
    taken: int = -1


class SeededStrategies(Strategies):
    """``base``'s strategies, with initial scenarios drawn from ``seeds`` about ``share`` of the time."""

    def __init__(self, base: Strategies, seeds: Sequence[Scenario], share: float = 0.5) -> None:
        if not seeds:
            raise ValueError("SeededStrategies needs at least one seed")
        self.base = base
        self.seeds = list(seeds)
        self.share = share

    def initial(self) -> st.SearchStrategy[Scenario]:
        seeded = st.sampled_from(self.seeds)
        synthetic = self.base.initial()
        percent = round(self.share * 100)
        return st.integers(0, 99).flatmap(lambda n: seeded if n < percent else synthetic)

    def next_inputs(self, state: WireMap, context: Context, draw: Draw) -> list[Input]:
        return self.base.next_inputs(state, context, draw)


def seed_origin(scenario: Scenario) -> str | None:
    """The file a scenario's initial state came from, when it was a seed."""
    origin = scenario.meta.get(SEED_KEY) if scenario.meta else None
    return str(origin) if origin else None


def seed_note(scenario: Scenario) -> str:
    """What a reproducer's note says of a pre-state that came from a real file ("" for a synthetic one)."""
    origin = seed_origin(scenario)
    if origin is None:
        return ""
    slot = scenario.meta.get("slot", "?")
    return (
        f"; its initial state is (a shrunk part of) slot {slot} of {Path(origin).name}, a real saved "
        "state: it may hold real orders and txids, keep it private (shadowdiff uploads nothing)"
    )
