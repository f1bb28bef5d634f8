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

from collections.abc import Iterable, Sequence
from pathlib import Path

from hypothesis import strategies as st

from .corpus import expand, read_items
from .domain import Domain
from .errors import BadInput
from .generate import Draw, Strategies
from .model import Context, Input, Scenario, WireMap
from .records import Snapshot

SEED_KEY = "seed_from"


def seed_scenarios(paths: Iterable[str | Path], domain: Domain | None = None) -> list[Scenario]:
    """One scenario without inputs per state a slot is opened (or reopened) with in these corpora, in
    file order. Raises ``BadInput`` (naming where) for a file that cannot be read, or one with no state."""
    out: list[Scenario] = []
    for path in expand(paths):
        found = 0
        for item in read_items([path], domain):
            if isinstance(item, Snapshot):
                found += 1
                meta = {SEED_KEY: str(path), "slot": item.slot}
                name = f"{path.name}:{item.slot}"
                out.append(Scenario(name, item.context, dict(item.state), (), meta=meta))
        if not found:
            raise BadInput("no state to start from in this file", str(path))
    return out


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
