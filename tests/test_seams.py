"""The two seams: a pure Reducer, an asynchronous Shadow, and wrappers that delegate the small one.

A test double of a shadow is a few lines; every step the engine is fed ends up checked, unchecked or
failed (nothing in flight once finished), whatever the shadow does.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import MISBEHAVING, ROOT
from shadowdiff_doge.domain import DogeDomain
from shadowdiff_doge.inprocess import InProcessReducer

import shadowdiff
from shadowdiff.core.engine import Replay, ReplayOptions, ReplayResult
from shadowdiff.core.reducer import (
    ForwardingShadow,
    InProcessShadow,
    Request,
    Result,
    Shadow,
    as_shadow,
)
from shadowdiff.live.checker import Latency, TimedShadow
from shadowdiff.model.values import Failure
from shadowdiff.runtime.corpus import read_items
from shadowdiff.shadow.client import SubprocessReducer

REFERENCE = "shadowdiff_doge.reference.state_machine"
CORPUS = ROOT / "corpora" / "sample" / "doge-3slots-7days.msgpack.gz"


class GivesUpAfter(ForwardingShadow):
    """A test double: the reference in process for ``n`` requests, then dead for good."""

    dead: str | None = None

    def __init__(self, n: int) -> None:
        super().__init__(InProcessShadow(InProcessReducer(REFERENCE)))
        self.left = n

    def submit(self, request: Request) -> int:
        self.left -= 1
        self.dead = self.dead or ("gave up after 3 restarts in a row" if self.left < 0 else None)
        return self.inner.submit(request)

    def poll(self, wait: bool = False) -> list[tuple[int, Result]]:
        lost = Failure("lost", f"shadow {self.dead}")
        return [(t, r if self.dead is None else lost) for t, r in self.inner.poll(wait)]


def adds_up(result: ReplayResult) -> None:
    fed = result.counts["events"] + result.counts["calls"]
    assert fed == result.checked + result.unchecked + result.failed_steps
    assert result.counts["steps"] == fed


def test_a_test_double_shadow_that_dies_is_seen_and_every_step_is_accounted_for() -> None:
    items = list(read_items([CORPUS]))
    result = Replay(GivesUpAfter(500), InProcessReducer(REFERENCE), ReplayOptions()).run(items)
    adds_up(result)
    assert 0 < result.checked < 500 and result.unchecked > 0 and result.failed_steps == 0
    assert result.errors[0]["message"] == "shadow gave up after 3 restarts in a row; rest unchecked"
    assert result.divergence_count == 0


def test_a_pure_reducer_is_a_shadow_through_one_adapter_and_checks_everything() -> None:
    items = list(read_items([CORPUS]))
    shadow = InProcessReducer(REFERENCE)
    assert isinstance(as_shadow(shadow), InProcessShadow)
    result = Replay(shadow, InProcessReducer(REFERENCE), ReplayOptions()).run(items)
    adds_up(result)
    assert result.checked == result.counts["steps"] and result.unchecked == 0
    assert result.divergence_count == 0 and result.failure_count == 0


def test_a_shadow_must_say_its_liveness_restarts_and_sessions() -> None:
    class Forgetful(Shadow):  # submit, poll, get, but not the three properties
        def submit(self, request: Request) -> int:
            return 0

        def poll(self, wait: bool = False) -> list[tuple[int, Result]]:
            return []

        def get(self, slot: str) -> dict[str, Any]:
            return {}

    with pytest.raises(TypeError, match="dead"):
        Forgetful()  # type: ignore[abstract]


def test_the_sidecars_timed_wrapper_forwards_liveness_restarts_and_sessions() -> None:
    # the bug: TimedShadow forwarded ``dead`` and ``sessions`` through __getattr__, which Python never
    # calls for names the base class defines, so the sidecar never saw its shadow die
    double = GivesUpAfter(0)
    timed = TimedShadow(double, Latency())
    assert timed.dead is None and timed.restarts == 0 and timed.sessions is False
    timed.submit(_open())
    assert timed.dead == double.dead == "gave up after 3 restarts in a row"
    with SubprocessReducer([*MISBEHAVING], domain=DogeDomain()) as real:
        wrapped = TimedShadow(real, Latency())
        assert wrapped.sessions is real.sessions is True
        assert wrapped.describe() == real.describe()


def test_public_names_stay() -> None:
    assert issubclass(shadowdiff.SubprocessReducer, shadowdiff.Reducer)
    assert issubclass(shadowdiff.SubprocessReducer, Shadow)
    assert not issubclass(InProcessReducer, Shadow)  # the authority is a pure reducer


def _open() -> Request:
    from shadowdiff.core.reducer import Open

    return Open("s", {})
