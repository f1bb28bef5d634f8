"""corpora/regressions must pass against the real port (a fixed bug stays fixed), and each case found
against a mutant must still catch that mutant with the same signature."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import ROOT

from adapters.doge.domain import DogeDomain
from adapters.doge.inprocess import InProcessReducer
from shadowdiff.client import SubprocessReducer
from shadowdiff.corpus import load_scenario, scenario_items
from shadowdiff.engine import Replay, ReplayOptions

CASES = sorted((ROOT / "corpora" / "regressions").glob("*.json"))
REFERENCE = "adapters.doge.reference.state_machine"


def _signatures(path: Path, command: list[str]) -> list[str]:
    shadow = SubprocessReducer(command, domain=DogeDomain(), deadline=2.0)
    try:
        result = Replay(shadow, InProcessReducer(REFERENCE), ReplayOptions()).run(
            scenario_items(load_scenario(path), str(path))
        )
    finally:
        shadow.close()
    return [d.signature for d in result.divergences] + [f.signature for f in result.failures]


def test_the_corpus_is_not_empty() -> None:
    assert len(CASES) >= 10


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_regression_case(haskell_exe: Path, path: Path) -> None:
    assert _signatures(path, [str(haskell_exe), "--msgpack"]) == []
    meta = json.loads(path.read_text())["shadowdiff"]
    mutant = re.search(r"--mutant ([a-z0-9_]+)", meta.get("note", ""))
    if mutant:
        found = _signatures(path, [str(haskell_exe), "--msgpack", "--mutant", mutant.group(1)])
        assert meta["signature"] in found, f"{mutant.group(1)} no longer caught by {path.name}: {found}"
