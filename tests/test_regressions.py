"""corpora/regressions must pass against the real port (a fixed bug stays fixed), and each case found
against a mutant must still catch that mutant with the same signature."""

from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from shadowdiff_doge.domain import DogeDomain
from shadowdiff_doge.inprocess import InProcessReducer

from shadowdiff.core.diff import generalise
from shadowdiff.core.engine import Replay, ReplayOptions
from shadowdiff.model import Event
from shadowdiff.runtime.corpus import load_scenario, scenario_items
from shadowdiff.shadow.client import SubprocessReducer

CASES = sorted((ROOT / "corpora" / "regressions").glob("*.json"))
REFERENCE = "shadowdiff_doge.reference.state_machine"


def _signatures(path: Path, command: list[str]) -> list[str]:
    shadow = SubprocessReducer(command, domain=DogeDomain(), deadline=2.0)
    try:
        result = Replay(shadow, InProcessReducer(REFERENCE), ReplayOptions()).run(
            scenario_items(load_scenario(path), str(path))
        )
    finally:
        shadow.close()
    return [d.signature for d in result.divergences] + [f.signature for f in result.failures]


def _wire_type_paths(a: Any, b: Any, path: str) -> list[str]:
    """Leaves whose wire type or float bits differ (-0.0 is not 0.0, an int is not a float)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [p for k in a if k in b for p in _wire_type_paths(a[k], b[k], f"{path}.{k}" if path else k)]
    if isinstance(a, list) and isinstance(b, list):
        return [
            p
            for i, (x, y) in enumerate(zip(a, b, strict=False))
            for p in _wire_type_paths(x, y, f"{path}[{i}]")
        ]
    if type(a) is not type(b):
        return [path]
    if isinstance(a, float) and not (math.isnan(a) and math.isnan(b)):
        return [] if struct.pack(">d", a) == struct.pack(">d", b) else [path]
    return []


def _wire_type_signatures(path: Path, command: list[str]) -> list[str]:
    """A "wire-type" case: lockstep from the initial state, the shadow's whole-state answers compared with
    the reference's type for type (what shadowdiff's exact rule, comparing numbers by value, cannot see)."""
    scenario = load_scenario(path)
    reference = InProcessReducer(REFERENCE)
    shadow = SubprocessReducer(command, domain=DogeDomain(), deadline=5.0, use_sessions=False)
    found: list[str] = []
    state = scenario.initial_state
    try:
        for item in scenario.inputs:
            assert isinstance(item, Event)
            a = reference.transition(state, item, scenario.context, with_invariants=True)
            b = shadow.transition(state, item, scenario.context, with_invariants=True)
            paths = _wire_type_paths(
                {"state": a.state, "actions": a.actions}, {"state": b.state, "actions": b.actions}, ""
            )
            found += [f"wire-type|{item.type}|{generalise(p.removeprefix('state.'))}" for p in paths]
            state = a.state
    finally:
        shadow.close()
    return found


def test_the_corpus_is_not_empty() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_regression_case(haskell_exe: Path, mutant_exe: Path, path: Path) -> None:
    assert _signatures(path, [str(haskell_exe), "--msgpack"]) == []
    meta = json.loads(path.read_text())["shadowdiff"]
    typed = meta.get("kind") == "wire-type"
    if typed:
        assert _wire_type_signatures(path, [str(haskell_exe), "--msgpack"]) == []
    mutant = re.search(r"--mutant ([a-z0-9_]+)", meta.get("note", ""))
    if mutant:
        signatures = _wire_type_signatures if typed else _signatures
        found = signatures(path, [str(mutant_exe), "--msgpack", "--mutant", mutant.group(1)])
        assert meta["signature"] in found, f"{mutant.group(1)} no longer caught by {path.name}: {found}"
