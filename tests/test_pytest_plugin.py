"""The pytest plugin's ShadowMachine: passes against a faithful shadow, fails on a mutant."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from shadowdiff_doge.domain import DogeDomain
from shadowdiff_doge.inprocess import InProcessReducer
from shadowdiff_doge.strategies import DogeStrategies

from shadowdiff.pytest_plugin import ShadowMachine

REFERENCE = "shadowdiff_doge.reference.state_machine"


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


def test_machine_fails_on_a_mutant(mutant_exe: Path) -> None:
    machine = _machine([str(mutant_exe), "--msgpack", "--mutant", "refresh_ignores_direction"])
    with pytest.raises(AssertionError, match="shadow diverged"):
        run_state_machine_as_test(machine, settings=_settings(200, 8))


def test_option_and_fixture_are_registered(pytestconfig: pytest.Config) -> None:
    from shadowdiff import pytest_plugin

    assert pytest_plugin.shadow_command() is None or isinstance(pytest_plugin.shadow_command(), list)


def test_machine_over_json_lines_against_the_ports_server(haskell_exe: Path) -> None:
    machine = _machine([str(haskell_exe), "--server"])
    machine.codec = "jsonl"
    run_state_machine_as_test(machine, settings=_settings(15, 6))


def test_machine_over_json_lines_fails_on_a_mutant(mutant_exe: Path) -> None:
    machine = _machine([str(mutant_exe), "--server", "--mutant", "refresh_ignores_direction"])
    machine.codec = "jsonl"
    with pytest.raises(AssertionError, match="shadow diverged"):
        run_state_machine_as_test(machine, settings=_settings(200, 8))


def test_a_json_lines_port_given_as_msgpack_is_named_at_once(haskell_exe: Path) -> None:
    from shadowdiff.model.errors import ShadowSetupError
    from shadowdiff.shadow.client import SubprocessReducer

    # without the probe this would wait for the handshake deadline and say "no answer to hello"
    with pytest.raises(ShadowSetupError) as caught:
        SubprocessReducer([str(haskell_exe), "--server"], codec="msgpack", domain=DogeDomain())
    message = str(caught.value)
    assert "speaks JSON lines, not msgpack" in message
    assert "--codec jsonl" in message and "--shadowdiff-codec jsonl" in message
    assert "\n" not in message


def test_the_codec_option_and_environment_reach_the_machine(haskell_exe: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    test = tmp_path / "test_port.py"
    test.write_text(
        "from hypothesis import settings\n"
        "from shadowdiff_doge.domain import DogeDomain\n"
        "from shadowdiff_doge.inprocess import InProcessReducer\n"
        "from shadowdiff_doge.strategies import DogeStrategies\n"
        "from shadowdiff.pytest_plugin import ShadowMachine\n\n"
        "class PortMachine(ShadowMachine):\n"
        "    strategies = DogeStrategies()\n"
        f"    authoritative = staticmethod(lambda: InProcessReducer({REFERENCE!r}))\n"
        "    domain = DogeDomain()\n\n"
        "PortMachine.TestCase.settings = settings(max_examples=5, stateful_step_count=4, deadline=None,"
        " database=None)\n"
        "TestPort = PortMachine.TestCase\n"
    )
    shadow = f"{haskell_exe} --server"
    env = {k: v for k, v in os.environ.items() if k != "SHADOWDIFF_CODEC"}
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            str(test), "--shadowdiff-shadow", shadow, "--rootdir", str(tmp_path)]  # fmt: skip
    by_option = subprocess.run([*base, "--shadowdiff-codec", "jsonl"], capture_output=True, text=True,
                               env=env, timeout=300, check=False)  # fmt: skip
    assert by_option.returncode == 0, by_option.stdout[-3000:]
    by_env = subprocess.run(base, capture_output=True, text=True, env={**env, "SHADOWDIFF_CODEC": "jsonl"},
                            timeout=300, check=False)  # fmt: skip
    assert by_env.returncode == 0, by_env.stdout[-3000:]
    wrong = subprocess.run(base, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert wrong.returncode != 0
    assert "speaks JSON lines, not msgpack" in wrong.stdout and "--shadowdiff-codec jsonl" in wrong.stdout
