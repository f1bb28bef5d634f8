"""The reference pair: the Python reference and the Haskell port agree exactly, with sessions and with
whole states, on the bot's fixtures, the bundled corpus and generated streams; every mutant in the
port's catalogue changes an outcome that a regression case pins."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from click.testing import CliRunner
from conftest import ROOT
from shadowdiff_doge.corpusgen import generate
from shadowdiff_doge.domain import DogeDomain
from shadowdiff_doge.inprocess import InProcessReducer

from shadowdiff.cli.main import main
from shadowdiff.core.engine import Replay, ReplayOptions
from shadowdiff.runtime.corpus import RecordReader, read_items
from shadowdiff.shadow.client import SubprocessReducer

REFERENCE = "shadowdiff_doge.reference.state_machine"
CORPUS = ROOT / "corpora" / "sample" / "doge-3slots-7days.msgpack.gz"


def replay(items, command, sessions=None):
    shadow = SubprocessReducer(command, domain=DogeDomain(), use_sessions=sessions)
    with shadow:
        result = Replay(shadow, InProcessReducer(REFERENCE), ReplayOptions()).run(items)
    return result, shadow


def generated(n: int, slots: int, seed: int):
    reader = RecordReader(f"seed-{seed}")
    return (item for record in generate(n, slots=slots, seed=seed) for item in reader.item(record, ""))


def test_fixtures_agree_and_the_cli_says_so(haskell_exe: Path, upstream: Path) -> None:
    out = CliRunner().invoke(main, ["replay", str(upstream), "--shadow", f"{haskell_exe} --msgpack"])
    assert out.exit_code == 0, out.output
    assert re.search(r"transitions\s+27\s+27", out.output)


def test_bundled_corpus_agrees_over_sessions(haskell_exe: Path) -> None:
    result, shadow = replay(read_items([CORPUS]), [str(haskell_exe), "--msgpack"])
    assert shadow.sessions
    assert result.divergence_count == 0 and result.failure_count == 0
    assert result.shadow_checks["transition"] + result.shadow_checks["call"] == 24_000


def test_bundled_corpus_agrees_with_whole_states(haskell_exe: Path) -> None:
    # whole states cross the pipe on every step (quadratic, about 30 s here): the fallback's own check
    result, shadow = replay(read_items([CORPUS]), [str(haskell_exe), "--msgpack"], sessions=False)
    assert not shadow.sessions
    assert result.divergence_count == 0 and result.failure_count == 0
    assert result.shadow_checks["transition"] + result.shadow_checks["call"] == 24_000


def test_generated_streams_agree_with_whole_states_too(haskell_exe: Path) -> None:
    for sessions in (None, False):
        result, shadow = replay(generated(3000, 2, 41), [str(haskell_exe), "--msgpack"], sessions)
        assert shadow.sessions is (sessions is None)
        assert result.divergence_count == 0 and result.failure_count == 0
        assert result.shadow_checks["transition"] > 2500


def test_the_json_lines_transport_agrees(haskell_exe: Path) -> None:
    shadow = SubprocessReducer([str(haskell_exe), "--server"], codec="jsonl", domain=DogeDomain())
    with shadow:
        result = Replay(shadow, InProcessReducer(REFERENCE), ReplayOptions()).run(generated(1500, 2, 42))
    assert result.divergence_count == 0 and result.failure_count == 0
    assert result.shadow_checks["invariants"] == result.authoritative_checks["invariants"] > 1000


def test_state_guided_fuzzing_finds_nothing_in_the_unmutated_port(haskell_exe: Path, tmp_path: Path) -> None:
    out = CliRunner().invoke(
        main,
        [
            "fuzz",
            "--seed",
            "3",
            "--examples",
            "150",
            "--shadow",
            f"{haskell_exe} --msgpack",
            "--out",
            str(tmp_path),
            "-q",
        ],
    )
    assert out.exit_code == 0, out.output
    assert list(tmp_path.iterdir()) == []


def test_every_mutant_has_a_regression_case_that_catches_it(mutant_exe: Path) -> None:
    listed = subprocess.run([str(mutant_exe), "--list-mutants"], capture_output=True, text=True, check=True)
    mutants = [line.split("\t")[0] for line in listed.stdout.splitlines()]
    categories = {line.split("\t")[1] for line in listed.stdout.splitlines()}
    assert len(mutants) >= 15 and sum(m.split("_")[0] in ("crash", "hang", "garbage") for m in mutants) >= 3
    assert {
        "rounding",
        "boundary",
        "tie-break",
        "recovery-cap",
        "fees",
        "loss-counters",
        "cycle-counters",
        "refresh",
        "normalisation",
        "invariants",
        "from_dict",
        "s2-timer",
    } <= categories
    pinned = set()
    for case in (ROOT / "corpora" / "regressions").glob("*.json"):
        found = re.search(
            r"--mutant ([a-z0-9_]+)", json.loads(case.read_text())["shadowdiff"].get("note", "")
        )
        if found:
            pinned.add(found.group(1))
    # test_regressions.py replays each case against its mutant (caught, same signature) and the port (clean)
    assert sorted(set(mutants) - pinned) == []


def test_the_readme_lists_the_catalogue_as_the_port_does(mutant_exe: Path) -> None:
    """The README's mutant table is what `doge-core-mutants --list-mutants` prints, row for row (name,
    category, bug)."""
    from conftest import ROOT

    listed = subprocess.run([str(mutant_exe), "--list-mutants"], capture_output=True, text=True, check=True)
    catalogue = [tuple(line.split("\t")) for line in listed.stdout.splitlines()]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = [
        tuple(cell.strip().strip("`") for cell in line.strip("|").split(" | "))
        for line in readme.splitlines()
        if line.startswith("| `") and line.count(" | ") == 2
    ]
    table = [row for row in rows if row[0] in {name for name, *_ in catalogue}]
    assert table == catalogue
