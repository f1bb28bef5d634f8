"""The fuzz loop: generate, replay against the shadow, shrink what diverges, write reproducers.

``ReplayOracle`` is the bridge between scenarios and the engine: it replays a scenario through the
authoritative reducer and one long-lived shadow process (each scenario in a fresh slot), and answers
which signatures it shows. ``fuzz`` drives ``generate.search`` with it, shrinks each new signature with
``shrink.shrink_scenario`` and turns the result into a reproducer: a scenario file in the bot's fixture
format with an ``expected`` block from the authoritative run and a ``shadowdiff`` note. File names come
from the signature alone, so the same seed writes byte-identical files.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from shadowdiff.core.diff import Rules
from shadowdiff.core.domain import Domain
from shadowdiff.core.engine import Replay, ReplayOptions, ReplayResult
from shadowdiff.core.reducer import Reducer, ReducerShadow, Step
from shadowdiff.core.shrink import ShrinkHooks, ShrinkResult, shrink_scenario
from shadowdiff.core.triage import Triage
from shadowdiff.model.errors import ShadowdiffError
from shadowdiff.model.values import Call, Event, Input, Scenario, WireMap
from shadowdiff.runtime.corpus import scenario_items, write_scenario
from shadowdiff.search.generate import Example, SearchOptions, SearchStats, Strategies, search
from shadowdiff.search.seeds import seed_note
from shadowdiff.wire.codec import dumps_json

ExpectedFn = Callable[[WireMap, list[list[WireMap]], list[str]], WireMap | None]


@attrs.frozen
class Found:
    """A signature a scenario shows, and where it first showed."""

    signature: str
    kind: str
    step: int


class ReplayOracle:
    """Replays scenarios through ``authoritative`` and ``shadow``; counts how often it did."""

    def __init__(
        self,
        shadow: ReducerShadow,
        authoritative: Reducer,
        mode: str = "lockstep",
        rules: Rules | None = None,
        shadow_factory: Callable[[], ReducerShadow] | None = None,
    ) -> None:
        self.shadow = shadow
        self.shadow_factory = shadow_factory
        self.authoritative = authoritative
        # window=1: a failure is pinned on the request that caused it, never on a reopen sent behind it
        # (cases are short, so pipelining would gain little)
        self.options = ReplayOptions(mode=mode, rules=rules or Rules(), window=1)
        self.runs = 0
        self._slots = itertools.count()

    def replay(self, scenario: Scenario) -> ReplayResult | None:
        """The replay's result; None when the authority rejects the scenario (bad input)."""
        self.runs += 1
        if self.shadow.dead and self.shadow_factory is not None:
            self.shadow.close()  # it gave up restarting; a fresh client starts counting again
            self.shadow = self.shadow_factory()
        slot = f"case{next(self._slots)}"
        replay = Replay(self.shadow, self.authoritative, self.options)
        try:
            return replay.run(scenario_items(scenario, slot=slot))
        except ShadowdiffError:
            with contextlib.suppress(ShadowdiffError):
                replay.finish()
            return None
        except (OverflowError, TypeError, ValueError):
            # a value the wire cannot carry (an int beyond 64 bits after an increment): not a case;
            # the client may hold half-sent requests, so start a fresh one
            if self.shadow_factory is not None:
                self.shadow.close()
                self.shadow = self.shadow_factory()
            return None
        finally:
            self.authoritative.close_slot(slot)
            self._close_shadow(slot)

    def _close_shadow(self, slot: str) -> None:
        # Client-held state only: a session the server holds is tiny, and a ``Close`` for a slot the
        # client forgot (after a restart) would never be answered.
        self.shadow.close_slot(slot)

    def findings(self, scenario: Scenario) -> list[Found]:
        result = self.replay(scenario)
        if result is None:
            return []
        last = len(scenario.inputs)
        out = [  # every signature of a step: a new difference beside a known one is a finding too
            Found(sig, d.kind, d.step if d.input is not None else last)
            for d in result.divergences
            for sig in d.signatures
        ]
        out += [Found(f.signature, f.kind, f.step if f.input is not None else last) for f in result.failures]
        return sorted(out, key=lambda f: f.step)

    def signatures(self, scenario: Scenario) -> dict[str, int]:
        out: dict[str, int] = {}
        for found in self.findings(scenario):
            out.setdefault(found.signature, found.step)
        return out

    def pre_state(self, scenario: Scenario, step: int) -> WireMap | None:
        slot = f"pre{next(self._slots)}"
        auth = self.authoritative
        try:
            auth.open(slot, scenario.initial_state)
            for item in scenario.inputs[:step]:
                auth.step(Step(slot, item, scenario.context, with_invariants=False))
            return auth.get(slot)
        except ShadowdiffError:
            return None
        finally:
            auth.close_slot(slot)

    def authoritative_run(self, scenario: Scenario) -> tuple[WireMap, list[list[WireMap]], list[str]]:
        """The final state, the actions of each step and the final violations, on the authoritative side."""
        slot = f"final{next(self._slots)}"
        auth = self.authoritative
        actions: list[list[WireMap]] = []
        try:
            auth.open(slot, scenario.initial_state)
            for item in scenario.inputs:
                actions.append(
                    list(auth.step(Step(slot, item, scenario.context, with_invariants=False)).actions)
                )
            final = auth.get(slot)
            return final, actions, auth.check_invariants(final)
        finally:
            auth.close_slot(slot)


@attrs.frozen
class FuzzOptions:
    seed: int = 0
    examples: int = 200
    max_steps: int = 20
    time_budget: float | None = 60.0
    keep_going: bool = False
    mode: str = "lockstep"
    shrink_budget: float = 30.0


@attrs.frozen
class Reproducer:
    signature: str
    kind: str
    scenario: Scenario  # the file's content: shrunk, with expected and the shadowdiff note
    shrink: ShrinkResult
    example: int
    found_after_s: float
    path: Path | None = None


@attrs.frozen
class FuzzReport:
    reproducers: tuple[Reproducer, ...]
    stats: SearchStats
    runs: int
    known_seen: dict[str, int] = attrs.field(factory=dict)  # known signature -> examples showing it
    fixed_seen: tuple[str, ...] = ()  # triage entries marked fixed whose signature showed again


def fuzz(
    strategies: Strategies,
    oracle: ReplayOracle,
    options: FuzzOptions,
    generator: Reducer,
    hooks: ShrinkHooks | None = None,
    expected: ExpectedFn | None = None,
    note: str = "",
    out_dir: Path | None = None,
    on_reproducer: Callable[[Reproducer], None] | None = None,
    known: Triage | None = None,
) -> FuzzReport:
    """Search until a divergence (or, with ``keep_going``, until the budget), one reproducer per signature.

    ``generator`` is the authoritative session the walk uses to know the current state (a reducer of
    its own, so generation never disturbs the oracle's slots). With ``known`` (a triage file) the
    signatures it covers are counted, never reproduced: the search goes on past them, and each new
    signature is shrunk for itself (a candidate keeping only known differences is rejected)."""
    found: dict[str, Reproducer] = {}
    known_seen: dict[str, int] = {}

    def check(scenario: Scenario) -> Found | None:
        new = None
        for item in oracle.findings(scenario):
            if known is not None and known.known(item.signature):
                known_seen[item.signature] = known_seen.get(item.signature, 0) + 1
            elif item.signature not in found and new is None:
                new = item
        return new

    def on_found(example: Example[Found]) -> bool:
        item = example.finding
        shrunk = shrink_scenario(
            example.scenario, item.signature, oracle, options.mode, hooks, options.shrink_budget
        )
        what = f"{note}; " if note else ""
        text = (
            f"{what}found by shadowdiff fuzz --seed {options.seed} --mode {options.mode} (example "
            f"{example.index}); shrunk from {shrunk.steps_before} to {shrunk.steps_after} events"
        ) + seed_note(example.scenario)
        scenario = reproducer_scenario(shrunk.shrunk, item, options.mode, text, oracle, expected)
        path = None
        if out_dir is not None:
            path = out_dir / reproducer_filename(item.signature)
            write_scenario(scenario, path)
        rep = Reproducer(item.signature, item.kind, scenario, shrunk, example.index, example.elapsed_s, path)
        found[item.signature] = rep
        if on_reproducer is not None:
            on_reproducer(rep)
        return options.keep_going

    search_options = SearchOptions(options.seed, options.examples, options.max_steps, options.time_budget)
    stats = search(strategies, generator, check, search_options, on_found)
    fixed = tuple(e.signature for e in known.fixed_seen(found)) if known is not None else ()
    return FuzzReport(tuple(found.values()), stats, oracle.runs, dict(sorted(known_seen.items())), fixed)


def reproducer_scenario(
    scenario: Scenario, found: Found, mode: str, note: str, oracle: ReplayOracle, expected: ExpectedFn | None
) -> Scenario:
    block = None
    if expected is not None:
        try:
            block = expected(*oracle.authoritative_run(scenario))
        except ShadowdiffError:
            block = None
    meta = {"signature": found.signature, "kind": found.kind, "mode": mode, "note": note}
    name = "fuzz-" + reproducer_filename(found.signature).removesuffix(".json")
    return attrs.evolve(scenario, name=name, expected=block, meta=meta)


def slug(signature: str, limit: int = 60) -> str:
    text = re.sub(r"[^a-z0-9]+", "-", signature.lower().replace("[*]", "")).strip("-")
    return text[:limit].rstrip("-")


def reproducer_filename(signature: str) -> str:
    digest = hashlib.sha256(signature.encode("utf-8")).hexdigest()[:10]
    return f"{slug(signature)}-{digest}.json"


# -- the readable table ----------------------------------------------------------------------------


def _short(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(value) if (not value or not value.isprintable() or " " in value) else value
    return dumps_json(value)


def describe_input(item: Input) -> tuple[str, str]:
    fields = item.payload if isinstance(item, Event) else item.args if isinstance(item, Call) else {}
    return item.type, " ".join(f"{k}={_short(v)}" for k, v in fields.items())


def steps_table(
    scenario: Scenario,
    oracle: ReplayOracle | None = None,
    domain: Domain | None = None,
    mark_step: int | None = None,
) -> list[str]:
    """The scenario as lines of text: the initial state in one line, then one row per step with the
    authoritative actions; ``>`` marks the divergent step."""
    domain = domain or Domain()
    lines = [f"initial state: {domain.describe_state(scenario.initial_state)}"]
    actions: list[list[WireMap]] = []
    if oracle is not None:
        try:
            actions = oracle.authoritative_run(scenario)[1]
        except ShadowdiffError:
            actions = []
    rows = [("", "step", "event", "payload", "authoritative actions")]
    for i, item in enumerate(scenario.inputs):
        kind, payload = describe_input(item)
        done = ", ".join(a.get("type", "?") for a in actions[i]) if i < len(actions) else ""
        rows.append((">" if mark_step == i else "", str(i), kind, payload, done or "-"))
    if len(rows) == 1:
        lines.append("(no events: the divergence is in loading the initial state)")
        return lines
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    for row in rows:
        cells = [row[c].ljust(widths[c]) for c in range(4)]
        lines.append(" ".join(cells) + "  " + row[4])
    return lines


def divergence_lines(result: ReplayResult, signature: str) -> list[str]:
    """The differences of the first finding with this signature, one per line."""
    for d in result.divergences:
        if signature in d.signatures:
            return [
                f"  {x.path}: authoritative {_short(x.authoritative)}, shadow {_short(x.shadow)}"
                for x in d.differences[:8]
            ]
    for f in result.failures:
        if f.signature == signature:
            return [f"  {f.kind}: {f.failure.message}"]
    return []


def render(rep: Reproducer, oracle: ReplayOracle, domain: Domain | None = None) -> list[str]:
    """A reproducer for people: signature, sizes, the table of steps, what differed."""
    step = None
    result = oracle.replay(rep.scenario)
    if result is not None:
        steps = [d.step for d in result.divergences if rep.signature in d.signatures]
        steps += [f.step for f in result.failures if f.signature == rep.signature]
        step = min(steps) if steps else None
    head = [
        f"signature: {rep.signature}",
        f"shrunk: {rep.shrink.steps_before} -> {rep.shrink.steps_after} events "
        f"({rep.shrink.calls} candidates tried)",
    ]
    if rep.path is not None:
        head.append(f"written: {rep.path}")
    body = steps_table(rep.scenario, oracle, domain, step)
    tail = divergence_lines(result, rep.signature) if result is not None else []
    return head + body + (["differences:", *tail] if tail else [])


def shrink_file_scenarios(
    scenarios: Sequence[Scenario], oracle: ReplayOracle, known: Triage | None = None
) -> list[tuple[Scenario, Found]]:
    """Every (scenario, first finding) pair among ``scenarios`` that shows anything (not known)."""
    out = []
    for scenario in scenarios:
        found = [f for f in oracle.findings(scenario) if known is None or not known.known(f.signature)]
        if found:
            out.append((scenario, found[0]))
    return out


def elapsed_since(start: float) -> float:
    return time.perf_counter() - start
