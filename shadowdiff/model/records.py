"""The records a replay consumes, whatever file they came from (docs/formats.md, "Event logs").

Scenario files become a ``Snapshot`` and one ``Record`` per input; logs map one to one.
"""

from __future__ import annotations

from typing import TypeAlias

import attrs

from shadowdiff.model.values import Context, Input, StepResult, WireMap


@attrs.frozen
class Snapshot:
    """(Re)open a slot with a whole state. ``raw``: the state is as a file holds it, not normalised
    (a saved runtime file): the shadow's loading of it is always checked against the authority's."""

    slot: str
    state: WireMap
    context: Context
    where: str = ""
    raw: bool = False


@attrs.frozen
class ContextChange:
    slot: str
    changes: WireMap
    where: str = ""


@attrs.frozen
class Record:
    """One transition or call. ``outcome`` is the authoritative result when the log recorded it."""

    slot: str
    input: Input
    seq: int | None = None
    context: WireMap | None = None
    outcome: StepResult | None = None
    where: str = ""


@attrs.frozen
class PatchRecord:
    """The state changed outside the reducer: applied to both sides, never a divergence."""

    slot: str
    delta: WireMap
    where: str = ""


@attrs.frozen
class Gap:
    """Records the producer could not deliver; counted, not replayed."""

    slot: str | None
    dropped: int
    reason: str = ""
    where: str = ""


LogItem: TypeAlias = Snapshot | ContextChange | Record | PatchRecord | Gap
