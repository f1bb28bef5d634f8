"""Lockstep and free-running replay of records through an authoritative reducer and a shadow.

The authoritative side runs synchronously (in-process, or its outcome is read from a recorded log); the
shadow is pipelined: up to ``window`` requests are in flight while the authoritative side computes the
next steps, so the two overlap instead of adding up. Results are compared in order, per slot, against
the authoritative delta: equal deltas from equal pre-states mean equal states, so the cost of a step does
not depend on how large the state's history has grown.

The engine keeps, per slot, a *mirror* of the authoritative state as of the last compared step (deltas
applied in place). After a divergence (lockstep, or free with resync) or an error reply, the shadow's
slot is reopened from the mirror and the steps in flight behind it are sent again; after a crash,
timeout or protocol failure every slot is reopened that way. A lockstep divergence therefore always
concerns one event from the authoritative pre-state, as in the bot's own shadow mode.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from shadowdiff.core.classify import Clusters, divergence
from shadowdiff.core.diff import Rules, answer_rules, diff, identical
from shadowdiff.core.reducer import Open, Patch, Reducer, Request, Result, Shadow, Step, as_shadow
from shadowdiff.core.triage import Triage
from shadowdiff.model.errors import ShadowdiffError
from shadowdiff.model.records import ContextChange, Gap, LogItem, PatchRecord, Record, Snapshot
from shadowdiff.model.values import (
    Context,
    Difference,
    Divergence,
    Failure,
    FailureAt,
    Input,
    StepResult,
    WireMap,
)
from shadowdiff.wire.codec import apply_delta, same_value

MODES = ("lockstep", "free")
FATAL = frozenset({"crash", "timeout", "protocol"})
INTERRUPT_GRACE = 1.5
"""Seconds an interrupted replay waits for the answers in flight before it leaves them unchecked."""


@attrs.frozen
class ReplayOptions:
    mode: str = "lockstep"
    resync: bool = False
    rules: Rules = attrs.field(factory=Rules)
    fail_fast: bool = False
    window: int = 256
    max_kept: int = 1000
    check_load: bool = True
    verify_final: bool = True
    known: Triage | None = None  # a triage file: divergences it covers are counted apart


@attrs.define
class _Slot:
    name: str
    context: Context
    mirror: WireMap
    open_on_shadow: bool = True
    open_failures: int = 0  # in a row: after two, the slot waits for its next record to try again
    diverged: bool = False
    steps: int = 0
    raw: WireMap | None = None  # a whole-state shadow's first step sends the state as the log held it


@attrs.define(eq=False)
class _Pending:
    """One request in flight, in the order the engine must process it."""

    kind: str  # "step", "open", "reopen", "patch"
    slot: str
    request: Request | None
    step: int = -1
    seq: int | None = None
    auth: StepResult | None = None
    ticket: int | None = None
    result: Result = None
    answered: bool = False
    stale: bool = False
    parked: bool = False  # sent behind an open the shadow refused: unchecked, unless sent again
    raw: bool = False  # sent with the raw pre-state (a difference may be the shadow's loading)


@attrs.define
class ReplayResult:
    divergences: list[Divergence] = attrs.field(factory=list)
    failures: list[FailureAt] = attrs.field(factory=list)
    breaches: list[dict[str, Any]] = attrs.field(factory=list)
    errors: list[dict[str, str]] = attrs.field(factory=list)
    clusters: Clusters = attrs.field(factory=Clusters)
    known_clusters: Clusters = attrs.field(factory=Clusters)  # divergences and failures a triage covers
    counts: collections.Counter[str] = attrs.field(factory=collections.Counter)
    by_kind: collections.Counter[str] = attrs.field(factory=collections.Counter)
    failures_by_kind: collections.Counter[str] = attrs.field(factory=collections.Counter)
    authoritative_checks: dict[str, int] = attrs.field(factory=dict)
    shadow_checks: dict[str, int] = attrs.field(factory=dict)
    slots: int = 0
    elapsed_s: float = 0.0
    shadow_restarts: int = 0
    unchecked: int = 0
    failed_steps: int = 0  # steps the shadow answered with a failure (each one a finding or known)
    interrupted: bool = False

    @property
    def checked(self) -> int:
        """Steps whose answer was compared: with ``unchecked`` and ``failed_steps``, every step fed
        (``counts["events"] + counts["calls"]``) once nothing is in flight."""
        return self.shadow_checks.get("transition", 0) + self.shadow_checks.get("call", 0)

    @property
    def divergence_count(self) -> int:
        return sum(self.by_kind.values())

    @property
    def failure_count(self) -> int:
        return sum(self.failures_by_kind.values())


Finding = Callable[[dict[str, Any]], None]


@attrs.frozen
class Coverage:
    """Where every step fed so far stands: ``fed == checked + unchecked + failed + in_flight``."""

    fed: int
    checked: int
    unchecked: int
    failed: int
    in_flight: int


class Replay:
    """Feed it records (``run`` or ``feed`` one by one), then ``finish`` for the result."""

    def __init__(
        self,
        shadow: Shadow | Reducer,
        authoritative: Reducer | None,
        options: ReplayOptions = ReplayOptions(),
        on_finding: Finding | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        if options.mode not in MODES:
            raise ShadowdiffError(f"unknown mode {options.mode!r} (lockstep or free)")
        self.shadow = as_shadow(shadow)
        self.authoritative = authoritative
        self.options = options
        self._rules = options.rules
        # a whole-state shadow's answers cannot carry int-versus-float (diff.answer_rules)
        self._whole_state_rules = answer_rules(options.rules)
        self.on_finding = on_finding
        self.on_progress = on_progress
        self.result = ReplayResult()
        self._slots: dict[str, _Slot] = {}
        self._window: collections.deque[_Pending] = collections.deque()
        self._by_ticket: dict[int, _Pending] = {}
        self._steps = 0
        self._feeds = 0
        self._auth_checks = {"transition": 0, "invariants": 0, "call": 0}
        # answers compared, not answers received: a step sent again after a resync counts once, so the
        # counts do not depend on how many requests were in flight (or on --jobs)
        self._shadow_checks = {"transition": 0, "invariants": 0, "call": 0}
        self.result.shadow_checks = self._shadow_checks  # live; a copy once finished
        self._identical = 0
        self._started = time.perf_counter()
        self._stopped = False
        self.interrupted = False
        self._stopped_at = 0.0
        self._gave_up = False

    # -- feeding -----------------------------------------------------------------------------------
    def run(self, items: Iterable[LogItem]) -> ReplayResult:
        for item in items:
            if self._stopped:
                break
            self.feed(item)
        return self.finish()

    def feed(self, item: LogItem) -> None:
        if isinstance(item, Record):
            self._record(item)
        elif isinstance(item, Snapshot):
            self._snapshot(item)
        elif isinstance(item, PatchRecord):
            self._patch(item)
        elif isinstance(item, ContextChange):
            self._slot(item.slot, item.where).context = self._slot(item.slot, item.where).context.updated(
                item.changes
            )
        elif isinstance(item, Gap):
            self.result.counts["gap_dropped"] += item.dropped
        self._feeds += 1
        full = len(self._window) >= self.options.window
        if full or not self._feeds & 15:  # look for answers every 16 records: fewer empty reads
            self._drain(block=full)

    def drain(self) -> None:
        """Wait for every answer in flight and compare it (e.g. before a slot is reopened from outside,
        or to measure); feeding may go on afterwards."""
        self._drain(block=False, until_empty=True)

    def coverage(self) -> Coverage:
        """Where the steps fed so far stand (cheap: reads counters and the window)."""
        result = self.result
        in_flight = sum(1 for p in self._window if p.kind == "step" and not p.stale)
        fed = result.counts["events"] + result.counts["calls"]
        return Coverage(fed, result.checked, result.unchecked, result.failed_steps, in_flight)

    def context_of(self, slot: str) -> Context:
        """The context a slot's next step runs with (raises ``ShadowdiffError`` for a slot never seen)."""
        return self._slot(slot, slot).context

    def slot_states(self) -> dict[str, tuple[WireMap, Context]]:
        """Every slot's authoritative state (a copy of the mirror) and context as of the last compared
        step: after ``drain``, the point every item fed has reached. A resync point for a new shadow."""
        return {name: (copy_state(slot.mirror), slot.context) for name, slot in self._slots.items()}

    def skip_step(self) -> None:
        """A step of a slot another worker replays: counted, so step numbers stay those of the stream."""
        self._steps += 1

    @property
    def stopped(self) -> bool:
        """True once fail-fast has seen a finding, or ``stop`` was called (feed no more)."""
        return self._stopped

    def stop(self) -> None:
        """Feed no more (``run`` returns after the current record): safe from a signal handler, so an
        interrupted replay still drains what is in flight and reports every step it sent."""
        self._stopped = True
        self.interrupted = True
        self._stopped_at = time.monotonic()
        self.shadow.interrupt()

    def _slot(self, name: str, where: str) -> _Slot:
        try:
            return self._slots[name]
        except KeyError:
            raise ShadowdiffError(
                f"slot {name!r} has no header or snapshot before its first record", where
            ) from None

    def _snapshot(self, snap: Snapshot) -> None:
        if snap.slot in self._slots and any(p.slot == snap.slot for p in self._window):
            self._drain(block=False, until_empty=True)  # older steps of the slot settle on the old mirror
        auth = self.authoritative
        if auth is not None:
            auth.open(snap.slot, snap.state)
            mirror = copy_state(auth.get(snap.slot))
        else:
            mirror = copy_state(snap.state)
        fresh = snap.slot not in self._slots
        slot = self._slots[snap.slot] = _Slot(snap.slot, snap.context, mirror)
        if fresh:
            self.result.slots += 1
        if self._gave_up:
            return
        raw_differs = auth is not None and not same_value(snap.state, mirror)
        sessions = self.shadow.sessions
        sent = copy_state(snap.state if sessions else mirror)
        self._submit(_Pending("open", slot.name, Open(slot.name, sent)))
        if (raw_differs or snap.raw) and self.options.check_load and auth is not None:
            if sessions:
                self.result.counts["load_checks"] += 1
                self._check_load(slot)
            else:  # whole states: the slot's first step carries the raw state, as the bot's harness does
                slot.raw = copy_state(snap.state)

    def _check_load(self, slot: _Slot) -> None:
        """The shadow read a raw state: does it hold what the authority's own loading made of it?"""
        self._drain(block=False, until_empty=True)
        if not slot.open_on_shadow:
            return  # the shadow refused the state outright: a failure, already reported
        try:
            loaded = self.shadow.get(slot.name)
        except ShadowdiffError:
            return  # the failure surfaces on the next step
        differences = diff(slot.mirror, loaded, "", self._rules)
        if differences:
            found = divergence("load", self._steps, slot.name, None, differences)
            self._divergence(found, slot, None)
            if self._resyncs():
                self._reopen(slot)
            else:
                slot.diverged = True

    def _loads_differently(self, pending: _Pending, slot: _Slot, auth: StepResult) -> bool:
        """A step sent with the raw state differed: does the same step agree from the authority's
        normalised state? Then the difference is the shadow's loading (``load``), not its transition."""
        assert isinstance(pending.request, Step)
        pre = copy_state(slot.mirror)
        request = attrs.evolve(pending.request, with_invariants=auth.violations is not None, raw=None)
        try:
            again = self.shadow.outcome(pre, request)
        except ShadowdiffError:
            return False  # the shadow failed on the normalised state too: not a loading difference
        rules = self._answer_rules()
        if state_differences(slot.mirror, auth.delta, again.delta, rules):
            return False
        if diff(auth.actions, again.actions, "actions", rules):
            return False
        return (
            auth.violations is None
            or again.violations is None
            or identical(auth.violations, again.violations)
        )

    def _patch(self, patch: PatchRecord) -> None:
        slot = self._slot(patch.slot, patch.where)
        if self.authoritative is not None:
            self.authoritative.patch(patch.slot, patch.delta)
        pending = _Pending("patch", slot.name, Patch(slot.name, patch.delta))
        pending.auth = StepResult([], patch.delta, None)
        if slot.diverged or self._gave_up or not slot.open_on_shadow:
            self._window.append(pending)  # keeps the mirror in order; nothing to send
            pending.answered = True
        else:
            self._submit(pending)

    def _record(self, rec: Record) -> None:
        slot = self._slot(rec.slot, rec.where)
        if rec.context:
            slot.context = slot.context.updated(rec.context)
        auth_result = self._authoritative_step(rec, slot)
        self._steps += 1
        self.result.counts["events" if _is_event(rec.input) else "calls"] += 1
        pending = _Pending("step", slot.name, None, self._steps - 1, rec.seq, auth_result)
        hint = auth_result.delta if self.options.mode == "lockstep" else None
        pending.request = Step(slot.name, rec.input, slot.context, True, hint, auth_result)
        if not (slot.open_on_shadow or slot.diverged or self._gave_up):
            self._open_again(slot, pending.step)
        if slot.diverged or self._gave_up or not slot.open_on_shadow:
            pending.answered = True  # never sent: unchecked when its turn comes (``_process``)
            self._window.append(pending)
        else:
            self._submit(pending)
        if self.on_progress is not None and self._steps % 1000 == 0:
            self.on_progress(self._steps)
        if self.options.fail_fast and (self.result.divergence_count or self.result.failure_count):
            self._stopped = True

    def _authoritative_step(self, rec: Record, slot: _Slot) -> StepResult:
        if self.authoritative is not None:
            try:
                result = self.authoritative.step(Step(slot.name, rec.input, slot.context, True))
            except ShadowdiffError as exc:
                if exc.where is None:
                    exc = type(exc)(exc.what, rec.where)
                raise exc from None
            except (
                Exception
            ) as exc:  # the reducer itself raised (DOGE_REDUCER.md 9): bad input, not a bug of ours
                raise ShadowdiffError(
                    f"the authoritative reducer raised {type(exc).__name__}: {exc}", rec.where
                ) from None
        elif rec.outcome is not None:
            result = rec.outcome
        else:
            raise ShadowdiffError(
                "this record carries no recorded outcome; name an authoritative reducer", rec.where
            )
        self._auth_checks["call" if not _is_event(rec.input) else "transition"] += 1
        if result.violations is not None:
            self._auth_checks["invariants"] += 1
        return result

    def _submit(self, pending: _Pending) -> None:
        assert pending.request is not None
        if pending.kind == "step" and isinstance(pending.request, Step):
            slot = self._slots[pending.slot]
            if slot.raw is not None:
                pending.request = attrs.evolve(pending.request, raw=slot.raw)
                pending.raw, slot.raw = True, None
        pending.ticket = self.shadow.submit(pending.request)
        self._by_ticket[pending.ticket] = pending
        self._window.append(pending)

    # -- draining ----------------------------------------------------------------------------------
    def _drain(self, block: bool, until_empty: bool = False) -> None:
        while True:
            self._take(self.shadow.poll(wait=False))
            self._advance()
            if not self._window:
                return
            if not (block or until_empty):
                return
            if block and not until_empty and len(self._window) < self.options.window:
                return
            if self.interrupted and time.monotonic() - self._stopped_at > INTERRUPT_GRACE:
                self._abandon()
                return
            self.shadow.flush()
            self._take(self.shadow.poll(wait=True))
            self._advance()

    def _take(self, results: list[tuple[int, Result]]) -> None:
        for ticket, result in results:
            pending = self._by_ticket.pop(ticket, None)
            if pending is not None:
                pending.result = result
                pending.answered = True

    def _advance(self) -> None:
        window = self._window
        while window and (window[0].answered or window[0].stale):
            pending = window.popleft()
            if pending.stale:
                continue
            self._process(pending)

    def _process(self, pending: _Pending) -> None:
        slot = self._slots[pending.slot]
        result = pending.result
        if pending.parked:
            self._parked(pending, slot)
            return
        if pending.kind in ("open", "reopen") and not isinstance(result, Failure):
            slot.open_failures = 0
        if isinstance(result, Failure):
            if result.kind != "lost":
                self._failure(pending, slot, result)
                return
            if self.shadow.dead:
                self._give_up(str(self.shadow.dead))
        if pending.kind == "step":
            assert pending.auth is not None
            resync = False
            if isinstance(result, StepResult):
                assert isinstance(pending.request, Step)
                checks = self._shadow_checks
                checks["transition" if _is_event(pending.request.input) else "call"] += 1
                checks["invariants"] += result.violations is not None
                self._identical += result is pending.auth  # the client matched its bytes, undecoded
                if not slot.diverged:
                    resync = self._compare(pending, slot, pending.auth, result)
            else:  # never sent, or lost with the shadow that had it: not compared
                self.result.unchecked += 1
            slot.steps += 1
            apply_delta(slot.mirror, pending.auth.delta, in_place=True)
            if resync:
                self._reopen(slot)
        elif pending.kind == "patch":
            assert pending.auth is not None
            apply_delta(slot.mirror, pending.auth.delta, in_place=True)

    # -- comparing ---------------------------------------------------------------------------------
    def _compare(self, pending: _Pending, slot: _Slot, auth: StepResult, shadow: StepResult) -> bool:
        """Record what differs; True when the shadow's slot must be set back to the authoritative state."""
        if shadow is auth:  # the shadow's answer was the authority's outcome byte for byte
            if auth.violations:
                self._breach(pending, slot, auth.violations)
            return False
        rules = self._answer_rules()
        assert isinstance(pending.request, Step)
        item = pending.request.input
        found: list[Divergence] = []
        state_same = identical(auth.delta, shadow.delta)
        if not state_same:
            differences = state_differences(slot.mirror, auth.delta, shadow.delta, rules)
            if differences:
                found.append(
                    divergence("transition.state", pending.step, slot.name, item, differences, pending.seq)
                )
        if not identical(auth.actions, shadow.actions):
            differences = diff(auth.actions, shadow.actions, "actions", rules)
            if differences:
                found.append(
                    divergence("transition.actions", pending.step, slot.name, item, differences, pending.seq)
                )
        if auth.violations is not None and shadow.violations is not None:
            if not identical(auth.violations, shadow.violations):
                differences = diff(auth.violations, shadow.violations, "violations")
                found.append(divergence("invariant", pending.step, slot.name, item, differences, pending.seq))
            elif auth.violations:
                self._breach(pending, slot, auth.violations)
        if found and pending.raw and self._loads_differently(pending, slot, auth):
            differences = [d for f in found for d in f.differences]
            found = [divergence("load", pending.step, slot.name, item, differences, pending.seq)]
        for item_found in found:
            self._divergence(item_found, slot, pending, shadow)
        if found and not self._resyncs():
            slot.diverged = True
            return False
        # in lockstep even a tolerated difference resets the shadow: each step starts from the authority
        return bool(found) or not state_same

    def _answer_rules(self) -> Rules:
        """The rules a shadow's step answers compare with: a whole-state shadow (no sessions: jsonl,
        or ``--no-sessions``) re-reads the state it is sent and may print 0.0 as 0 (diff.answer_rules)."""
        return self._rules if self.shadow.sessions else self._whole_state_rules

    def _resyncs(self) -> bool:
        return self.options.mode == "lockstep" or self.options.resync

    def _divergence(
        self, found: Divergence, slot: _Slot, pending: _Pending | None, shadow: StepResult | None = None
    ) -> None:
        result = self.result
        if self._known(found.signatures, found.kind, found.event_type, found.step, "known_divergences"):
            return
        result.by_kind[found.kind] += 1
        if self.options.known is not None:  # clustered under the first signature the triage lacks
            sig = (self.options.known.unknown(found.signatures) or [found.signature])[0]
            result.clusters.add(sig, found.kind, found.event_type, found.step)
        else:
            result.clusters.add_divergence(found)
        if len(result.divergences) < self.options.max_kept:
            result.divergences.append(found)
        if self.on_finding is not None:
            record = found.to_wire()
            if pending is not None and pending.auth is not None:
                record["outcome"] = {
                    "authoritative": pending.auth.to_wire(),
                    "shadow": shadow.to_wire() if shadow is not None else None,
                }
            self._emit_finding(record, slot)

    def _known(self, sigs: tuple[str, ...], kind: str, event_type: str, step: int, counter: str) -> bool:
        """Count a finding the triage file covers apart (True), or leave it to the caller (False)."""
        known = self.options.known
        if known is None or not known.covers(sigs):
            return False
        self.result.counts[counter] += 1
        for sig in sigs:
            self.result.known_clusters.add(sig, kind, event_type, step)
        return True

    def _emit_finding(self, record: dict[str, Any], slot: _Slot) -> None:
        """A findings line reproduces alone: it carries the authoritative pre-state and the context."""
        assert self.on_finding is not None
        record["pre_state"] = copy_state(slot.mirror)
        record["context"] = slot.context.to_wire()
        self.on_finding(record)

    def _breach(self, pending: _Pending, slot: _Slot, violations: list[str]) -> None:
        self.result.counts["invariant_breaches"] += 1
        if len(self.result.breaches) < self.options.max_kept:
            item = pending.request.input if isinstance(pending.request, Step) else None
            self.result.breaches.append(
                {
                    "step": pending.step,
                    "slot": slot.name,
                    "event_type": item.type if item is not None else "open",
                    "violations": list(violations),
                }
            )

    def _failure(self, pending: _Pending, slot: _Slot, failure: Failure) -> None:
        item = pending.request.input if isinstance(pending.request, Step) else None
        placed = FailureAt(
            failure, pending.step if pending.step >= 0 else self._steps, slot.name, item, pending.seq
        )
        result = self.result
        known = self._known(
            (placed.signature,), placed.kind, placed.event_type, placed.step, "known_failures"
        )
        if not known:
            result.failures_by_kind[failure.kind] += 1
            result.clusters.add_failure(placed)
            if len(result.failures) < self.options.max_kept:
                result.failures.append(placed)
        if self.on_finding is not None and not known:
            self._emit_finding(placed.to_wire(), slot)
        if pending.kind in ("step", "patch") and pending.auth is not None:
            apply_delta(slot.mirror, pending.auth.delta, in_place=True)
        if pending.kind == "step":
            slot.steps += 1
            result.failed_steps += 1
        if self.shadow.dead:
            self._give_up(str(self.shadow.dead))
            return
        if pending.kind in ("open", "reopen"):
            # the shadow refused (or died on) this very state, and would again: the slot waits, its
            # steps unchecked, until its next step offers the state as it is then (one try per step)
            self._close_on_shadow(slot)
        if failure.kind in FATAL:
            self._reopen_all()
        elif slot.open_on_shadow:
            self._reopen(slot)

    def _close_on_shadow(self, slot: _Slot) -> None:
        slot.open_on_shadow = False
        slot.open_failures += 1
        for p in self._window:
            if p.slot != slot.name or p.stale:
                continue
            if p.ticket is not None:  # sent to a session that never opened: whatever it answers is moot
                self._by_ticket.pop(p.ticket, None)
            p.result = None  # not compared; a step's delta still moves the mirror
            p.answered = p.parked = True

    def _parked(self, pending: _Pending, slot: _Slot) -> None:
        """A request sent behind a refused open: its delta moves the mirror, and then the shadow is
        offered the state as it is after it (the state it refused may hold a value the next step
        replaces), with the slot's parked requests behind sent again. Two refusals in a row and the
        rest of the window stays unchecked."""
        if pending.kind in ("step", "patch"):
            assert pending.auth is not None
            apply_delta(slot.mirror, pending.auth.delta, in_place=True)
        if pending.kind == "step":
            slot.steps += 1
            self.result.unchecked += 1
        if slot.open_on_shadow or slot.diverged or self._gave_up or slot.open_failures >= 2:
            return
        behind = [p for p in self._window if p.slot == slot.name and p.parked and not p.stale]
        slot.open_on_shadow = True
        self._reopen_before(slot, behind, pending.step + 1)

    def _open_again(self, slot: _Slot, step: int) -> None:
        """Offer a slot the shadow refused its state as it is now, before the slot's next step."""
        self._drain(block=False, until_empty=True)  # the slot's earlier steps settle its mirror
        if slot.open_on_shadow or slot.diverged or self._gave_up:
            return
        slot.open_on_shadow = True
        self._submit(_Pending("reopen", slot.name, Open(slot.name, copy_state(slot.mirror)), step))

    def _abandon(self) -> None:
        """Interrupted, and the shadow is slow to answer: what is still in flight stays unchecked. From
        the first unanswered request on, nothing is compared (a later answer would meet a mirror that
        lacks the steps before it)."""
        cut = False
        for p in self._window:
            cut = cut or not p.answered
            if cut and not p.stale:
                p.stale = True
                self.result.unchecked += p.kind == "step"
                if p.ticket is not None:
                    self._by_ticket.pop(p.ticket, None)
        self._advance()
        self._gave_up = True

    def _give_up(self, why: str) -> None:
        if self._gave_up:
            return
        self._gave_up = True
        self.result.errors.append(
            {"where": f"step {self._steps}", "message": f"shadow {why}; rest unchecked"}
        )
        for pending in self._window:
            if not pending.answered and not pending.stale and pending.kind == "step":
                self.result.unchecked += 1
            pending.stale = pending.stale or not pending.answered

    def _reopen(self, slot: _Slot) -> None:
        """Set the shadow's slot to the mirror and send again what was in flight behind it."""
        behind = [p for p in self._window if p.slot == slot.name and _in_flight(p)]
        self._reopen_before(slot, behind, behind[0].step if behind else self._steps)

    def _reopen_before(self, slot: _Slot, behind: list[_Pending], step: int) -> None:
        """Open the slot from the mirror (``step``: the step it comes before), then send ``behind``
        again, its old requests left stale (their answers, if any come, are moot)."""
        for p in behind:
            p.stale = True
            if p.ticket is not None:
                self._by_ticket.pop(p.ticket, None)
        self._submit(_Pending("reopen", slot.name, Open(slot.name, copy_state(slot.mirror)), step))
        for p in behind:
            self._submit(attrs.evolve(p, ticket=None, result=None, answered=False, stale=False, parked=False))

    def _reopen_all(self) -> None:
        behind = [p for p in self._window if _in_flight(p) and self._slots[p.slot].open_on_shadow]
        for p in behind:
            p.stale = True
            if p.ticket is not None:
                self._by_ticket.pop(p.ticket, None)
        for slot in self._slots.values():
            if not slot.diverged and slot.open_on_shadow:
                self._submit(_Pending("reopen", slot.name, Open(slot.name, copy_state(slot.mirror))))
        for p in behind:
            self._submit(attrs.evolve(p, ticket=None, result=None, answered=False, stale=False))

    # -- finishing ---------------------------------------------------------------------------------
    def finish(self) -> ReplayResult:
        self.shadow.flush()
        self._drain(block=True, until_empty=True)
        if (
            self.options.verify_final
            and not (self._gave_up or self.interrupted)
            and (self.shadow.sessions or self.shadow.checks_history)  # the latter: history trimmed
        ):
            for slot in self._slots.values():
                if slot.diverged or not slot.open_on_shadow:
                    continue
                try:
                    held = self.shadow.get(slot.name)
                except ShadowdiffError:
                    continue
                differences = diff(slot.mirror, held, "", self._rules)
                if differences:
                    found = divergence("transition.state", self._steps, slot.name, None, differences)
                    self._divergence(
                        attrs.evolve(
                            found,
                            signature=found.signature.replace("|open|", "|final|"),
                            signatures=tuple(x.replace("|open|", "|final|") for x in found.signatures),
                        ),
                        slot,
                        None,
                    )
        result = self.result
        result.elapsed_s = time.perf_counter() - self._started
        result.authoritative_checks = dict(self._auth_checks)
        result.shadow_checks = dict(self._shadow_checks)
        result.shadow_restarts = self.shadow.restarts
        result.interrupted = self.interrupted
        result.counts["steps"] = self._steps
        result.counts["identical_answers"] = self._identical
        return result


def _in_flight(p: _Pending) -> bool:
    """Sent to the shadow and still to be compared (a step of a diverged slot was never sent)."""
    return not p.stale and p.ticket is not None and p.request is not None


def _is_event(item: Input) -> bool:
    return not hasattr(item, "function")


def copy_state(state: WireMap) -> WireMap:
    """A copy whose top-level map and lists are our own, so in-place appends never reach the original."""
    return {k: list(v) if isinstance(v, list) else v for k, v in state.items()}


def state_differences(mirror: WireMap, auth: WireMap, shadow: WireMap, rules: Rules) -> list[Difference]:
    """Where the two post-states differ, given the shared pre-state and both deltas.

    Fields appended on both sides compare only the appended items (no whole-history walk)."""
    a_set, a_app = auth.get("set", {}), auth.get("append", {})
    s_set, s_app = shadow.get("set", {}), shadow.get("append", {})
    fields = list(dict.fromkeys([*a_set, *a_app, *s_set, *s_app]))
    out: list[Difference] = []
    for field in fields:
        if field in a_app and field in s_app:
            offset = len(mirror.get(field) or [])
            a_items, s_items = a_app[field], s_app[field]
            for i, (x, y) in enumerate(zip(a_items, s_items, strict=False)):
                out.extend(diff(x, y, f"{field}[{offset + i}]", rules))
            if len(a_items) != len(s_items):
                out.append(Difference(f"{field}.length", offset + len(a_items), offset + len(s_items)))
            continue
        before = mirror.get(field)
        a_new = _new_value(before, field, a_set, a_app)
        s_new = _new_value(before, field, s_set, s_app)
        out.extend(diff(a_new, s_new, field, rules))
    return out


def _new_value(before: Any, field: str, sets: WireMap, appends: WireMap) -> Any:
    if field in sets:
        return sets[field]
    if field in appends:
        return [*(before or []), *appends[field]]
    return before
