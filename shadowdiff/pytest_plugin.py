"""pytest plugin: run property tests against your own shadow executable in CI.

    pytest --shadowdiff-shadow "./doge-core-exe --msgpack"

- option ``--shadowdiff-shadow CMD`` (or the ``SHADOWDIFF_SHADOW`` environment variable) names the shadow;
- option ``--shadowdiff-codec msgpack|jsonl`` (or ``SHADOWDIFF_CODEC``; a machine's ``codec`` class
  attribute wins) says how it speaks: ``jsonl`` for a port that knows only the JSON-lines ``--server``
  transport (the real ``doge-core-exe`` today), with whole states and its history trimmed;
- fixture ``shadowdiff_shadow``: a ``SubprocessReducer`` over that command, one per session;
- ``ShadowMachine``: a Hypothesis ``RuleBasedStateMachine`` to subclass. Set ``strategies`` (a
  ``shadowdiff.search.generate.Strategies``, e.g. ``shadowdiff_doge.strategies.DogeStrategies()``) and
  ``authoritative`` (a function returning the authoritative ``Reducer``); every rule steps both sides
  from the current authoritative state and fails on the first divergence or shadow failure;
- ``scenarios`` (walked scenarios as a strategy) and ``Strategies`` are re-exported for ``@given`` tests.

This is the one place where a divergence becomes a failing assertion.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shlex
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from shadowdiff.core.domain import Domain
from shadowdiff.core.engine import Replay, ReplayOptions
from shadowdiff.core.reducer import Reducer
from shadowdiff.model.errors import ShadowdiffError
from shadowdiff.model.records import Record, Snapshot
from shadowdiff.model.values import Context
from shadowdiff.search.generate import Strategies, scenarios
from shadowdiff.shadow.client import SubprocessReducer

__all__ = ["ShadowMachine", "Strategies", "scenarios", "shadow_codec", "shadow_command", "shared_shadow"]

ENV = "SHADOWDIFF_SHADOW"
CODEC_ENV = "SHADOWDIFF_CODEC"
CODECS = ("msgpack", "jsonl")
_configured: list[str] = []
_configured_codec: list[str] = []
_shadows: dict[tuple[str, ...], SubprocessReducer] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("shadowdiff")
    group.addoption("--shadowdiff-shadow", metavar="CMD", default=None,
                    help=f"shadow executable and arguments for shadowdiff tests (or ${ENV})")  # fmt: skip
    group.addoption("--shadowdiff-codec", choices=CODECS, default=None,
                    help=f"how the shadow speaks: msgpack or jsonl (or ${CODEC_ENV})")  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    value = config.getoption("--shadowdiff-shadow", default=None)
    if value:
        _configured[:] = [value]
    codec = config.getoption("--shadowdiff-codec", default=None)
    if codec:
        _configured_codec[:] = [codec]


def shadow_codec(override: str | None = None) -> str:
    """The codec: a machine's own, else the option, else the environment, else msgpack."""
    value = override or (_configured_codec[0] if _configured_codec else os.environ.get(CODEC_ENV))
    value = value or "msgpack"
    if value not in CODECS:
        raise ShadowdiffError(f"{CODEC_ENV}={value!r}: the codec is msgpack or jsonl")
    return value


def shadow_command() -> list[str] | None:
    """The shadow command from the option or the environment; None when neither names one."""
    value = _configured[0] if _configured else os.environ.get(ENV)
    return shlex.split(value) if value else None


def shared_shadow(
    command: list[str], domain: Domain | None = None, deadline: float = 5.0, codec: str | None = None
) -> SubprocessReducer:
    """One shadow process per command and codec for the whole test session (closed at exit)."""
    codec = shadow_codec(codec)
    key = (*command, codec)
    shadow = _shadows.get(key)
    if shadow is None or getattr(shadow, "dead", None):
        history = "trim" if codec == "jsonl" else "whole"
        shadow = _shadows[key] = SubprocessReducer(
            command, codec=codec, domain=domain, deadline=deadline, history=history
        )
    return shadow


@atexit.register
def _close_all() -> None:
    for shadow in _shadows.values():
        shadow.close()


@pytest.fixture(scope="session")
def shadowdiff_shadow() -> Iterator[SubprocessReducer]:
    command = shadow_command()
    if command is None:
        pytest.fail(f"no shadow named: pass --shadowdiff-shadow CMD or set {ENV}")
    shadow = SubprocessReducer(command, codec=shadow_codec())
    try:
        yield shadow
    finally:
        shadow.close()


_slots = itertools.count()


class ShadowMachine(RuleBasedStateMachine):
    """Steps the authoritative reducer and the shadow in lockstep with state-guided inputs.

    Subclass and set ``strategies`` and ``authoritative``; optionally ``command`` (else the plugin's
    option or ``$SHADOWDIFF_SHADOW``), ``domain`` and ``deadline``. Then ``TestX = MyMachine.TestCase``.
    """

    strategies: ClassVar[Strategies]
    authoritative: ClassVar[Callable[[], Reducer]]
    command: ClassVar[list[str] | None] = None
    domain: ClassVar[Domain | None] = None
    deadline: ClassVar[float] = 5.0
    codec: ClassVar[str | None] = None
    """msgpack or jsonl; None takes --shadowdiff-codec or $SHADOWDIFF_CODEC (jsonl needs ``domain``)."""

    def __init__(self) -> None:
        super().__init__()
        command = type(self).command or shadow_command()
        if command is None:
            raise ShadowdiffError(f"no shadow named: pass --shadowdiff-shadow CMD or set {ENV}")
        self.shadow = shared_shadow(command, type(self).domain, type(self).deadline, type(self).codec)
        self.auth = type(self).authoritative()
        self.replay = Replay(self.shadow, self.auth, ReplayOptions(window=1, verify_final=False))
        self.slot = f"machine{next(_slots)}"
        self.context = Context()
        self.steps: list[Any] = []

    @initialize(data=st.data())
    def open_slot(self, data: st.DataObject) -> None:
        scenario = data.draw(type(self).strategies.initial(), label="initial")
        self.context = scenario.context
        self.initial_state = scenario.initial_state
        try:
            self.replay.feed(Snapshot(self.slot, scenario.initial_state, scenario.context))
        except ShadowdiffError:
            assume(False)  # the authority cannot load it: bad input, not a case
        self._check()

    @rule(data=st.data())
    def step(self, data: st.DataObject) -> None:
        state = self.auth.get(self.slot)
        for item in type(self).strategies.next_inputs(state, self.context, data.draw):
            try:
                self.replay.feed(Record(self.slot, item, len(self.steps)))
            except ShadowdiffError:
                assume(False)
            self.steps.append(item.to_wire())
            self._check()

    def _check(self) -> None:
        result = self.replay.result
        if not (result.divergences or result.failures):
            return
        lines = [f"shadow diverged after {len(self.steps)} input(s): {self.steps[-3:]}"]
        for d in result.divergences[:3]:
            lines.append(f"  {d.signature}")
            lines += [
                f"    {x.path}: authoritative {x.authoritative!r}, shadow {x.shadow!r}"
                for x in d.differences[:5]
            ]
        for f in result.failures[:3]:
            lines.append(f"  {f.signature}: {f.failure.message}")
        raise AssertionError("\n".join(lines))

    def teardown(self) -> None:
        self.auth.close_slot(self.slot)
        self.shadow.close_slot(self.slot)
