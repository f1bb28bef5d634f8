"""Shared fixtures: where the bot's fixtures live, the reference pair, shadow commands."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from shadowdiff_doge.domain import DOGE

from shadowdiff.runtime.corpus import use_domain

# the suite is DOGE's: a corpus read without naming a domain gets DOGE's call parameters, as every command
# does (cli.domains registers the domain it runs with)
use_domain(DOGE)

ROOT = Path(__file__).resolve().parents[1]
UPSTREAM_DEFAULT = ROOT.parent / "shared" / "upstream-fixtures"
UPSTREAM = Path(os.environ.get("SHADOWDIFF_UPSTREAM_FIXTURES", UPSTREAM_DEFAULT))
RECORDINGS = Path(
    os.environ.get("SHADOWDIFF_UPSTREAM_RECORDINGS", ROOT.parent / "shared" / "upstream-recordings")
)
EXE = ROOT / "adapters" / "doge" / "haskell" / "build" / "doge-core-exe"
MUTANT_EXE = EXE.with_name("doge-core-mutants")  # the same port plus its seeded mutants (build.sh: both)
BUILD = ROOT / "adapters" / "doge" / "haskell" / "build.sh"
PY_SERVER = [sys.executable, "-m", "shadowdiff_doge.pyserver"]
MISBEHAVING = [sys.executable, str(ROOT / "tests" / "servers" / "misbehaving.py")]


@pytest.fixture(scope="session")
def upstream() -> Path:
    """The bot's parity scenarios (its checkout's ``tests/fixtures/cross_language/``).

    A clone without them skips these tests, saying so; a path named in SHADOWDIFF_UPSTREAM_FIXTURES
    that is not there is a broken set-up and fails (CI names it, and there the tests must run)."""
    if not UPSTREAM.is_dir():
        if "SHADOWDIFF_UPSTREAM_FIXTURES" not in os.environ:
            pytest.skip(
                f"the bot's parity scenarios are not here ({UPSTREAM_DEFAULT}); point "
                "SHADOWDIFF_UPSTREAM_FIXTURES at the bot's tests/fixtures/cross_language/ to run this"
            )
        pytest.fail(f"SHADOWDIFF_UPSTREAM_FIXTURES={UPSTREAM} is not a directory")
    return UPSTREAM


@pytest.fixture(scope="session")
def upstream_recordings() -> Path:
    """The real bot's recorded-outcome logs (../shared/upstream-recordings); missing fails, never skips."""
    if not RECORDINGS.is_dir():
        pytest.fail(
            f"the real bot's recordings are missing: {RECORDINGS} (set SHADOWDIFF_UPSTREAM_RECORDINGS)"
        )
    return RECORDINGS


@pytest.fixture(scope="session")
def haskell_exe() -> Path:
    """The reference Haskell port, built if needed; a missing toolchain fails, never skips."""
    done = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True, check=False)
    if done.returncode != 0 or not EXE.exists():
        pytest.fail(f"cannot build doge-core-exe: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return EXE


@pytest.fixture(scope="session")
def mutant_exe(haskell_exe: Path) -> Path:
    """The port with its seeded mutants compiled in (``--mutant``, ``--list-mutants``), built by the same
    build.sh as ``haskell_exe``; the production doge-core-exe refuses those flags."""
    if not MUTANT_EXE.exists():
        pytest.fail(f"build.sh did not build {MUTANT_EXE}")
    return MUTANT_EXE


def children_of(pid: int) -> list[int]:
    """Live (or zombie) child processes of ``pid``, from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def wait_for_shadows(pid: int, count: int, marker: str = "misbehaving.py", timeout: float = 60.0) -> None:
    """Block until ``count`` descendants of ``pid`` run a command containing ``marker`` (the shadows
    are up, so an interrupt lands mid-replay however loaded the machine is)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found, todo = 0, [pid]
        while todo:
            for child in children_of(todo.pop()):
                todo.append(child)
                with contextlib.suppress(OSError):  # it may have ended meanwhile
                    found += marker in (Path("/proc") / str(child) / "cmdline").read_text()
        if found >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{count} shadow(s) of {pid} did not start within {timeout:g} s")


def caught_up(status: Callable[[], dict[str, Any]], received: int, timeout: float) -> dict[str, Any]:
    """A sidecar's status once it has received ``received`` records and has no lag (or at ``timeout``:
    the caller's assertions then say what was missing)."""
    deadline = time.monotonic() + timeout
    while True:
        now = status()
        coverage = now["coverage"]
        if coverage["received"] >= received and coverage["lag_records"] == 0 and coverage["lag_bytes"] == 0:
            return now
        if time.monotonic() > deadline:
            return now
        time.sleep(0.1)
