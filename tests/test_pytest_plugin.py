"""The pytest plugin's ShadowMachine: passes against a faithful shadow, fails on a mutant."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from adapters.doge.domain import DogeDomain
from adapters.doge.inprocess import InProcessReducer
from adapters.doge.strategies import DogeStrategies
from shadowdiff.pytest_plugin import ShadowMachine

REFERENCE = "adapters.doge.reference.state_machine"


def _machine(command: list[str]) -> type[ShadowMachine]:
    class DogeMachine(ShadowMachine):
        strategies = DogeStrategies()
        authoritative = staticmethod(lambda: InProcessReducer(REFERENCE))
        domain = DogeDomain()
        deadline = 2.0

    DogeMachine.command = command
    return DogeMachine


def _settings(examples: int, steps: int) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        database=None,
        deadline=None,
        phases=[Phase.generate],
    )


def test_machine_passes_against_the_unmutated_port(haskell_exe: Path) -> None:
    machine = _machine([str(haskell_exe), "--msgpack"])
    run_state_machine_as_test(machine, settings=_settings(25, 6))


def test_machine_fails_on_a_mutant(haskell_exe: Path) -> None:
    machine = _machine([str(haskell_exe), "--msgpack", "--mutant", "refresh_ignores_direction"])
    with pytest.raises(AssertionError, match="shadow diverged"):
        run_state_machine_as_test(machine, settings=_settings(200, 8))


def test_option_and_fixture_are_registered(pytestconfig: pytest.Config) -> None:
    from shadowdiff import pytest_plugin

    assert pytest_plugin.shadow_command() is None or isinstance(pytest_plugin.shadow_command(), list)
