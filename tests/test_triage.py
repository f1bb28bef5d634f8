"""Triage files (--known): per-difference signatures, known divergences counted apart, the gate's
"explained and triaged", fuzzing past known bugs, exact-tie generation. Real Haskell port, real
subprocesses (the port must build: no skip)."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from conftest import UPSTREAM
from hypothesis import given, settings
from hypothesis import strategies as st
from shadowdiff_doge.domain import DOGE
from shadowdiff_doge.strategies import exact_tie_value, exact_ties, is_exact_tie, solve_product
from test_gate import window  # the gate tests' 48 h window of status samples

from shadowdiff.cli import fuzz as fuzz_cli
from shadowdiff.cli.main import main as shadowdiff_main
from shadowdiff.core.classify import divergence
from shadowdiff.core.triage import Entry, Triage, dumps_toml, loads
from shadowdiff.model import Difference, Event
from shadowdiff.model.errors import BadInput
from shadowdiff.runbook.gate import judge
from shadowdiff.search.fuzz import FuzzReport
from shadowdiff.search.generate import SearchStats

KNOWN_MUTANTS = "quote_fee_swapped_recovery,anti_chase_keeps_cooldown,mode_source_default_empty"


def _shadow(exe: Path, mutants: str | None = None) -> str:
    from conftest import MUTANT_EXE  # only doge-core-mutants takes --mutant

    return f"{MUTANT_EXE if mutants else exe} --msgpack" + (f" --mutant {mutants}" if mutants else "")


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(shadowdiff_main, list(args))
    return result.exit_code, result.output


# -- the file format and matching -------------------------------------------------------------------


def test_globs_treat_generalised_indices_literally_and_status_decides_what_is_known() -> None:
    triage = loads(
        """
[[known]]
signature = "transition.state|FillEvent|orders[*].*"
explanation = "half-up fills"
status = "open"
reproducer = "r.json"

[[known]]
signature = "load|open|cycle_a"
explanation = "old states"
status = "accepted"

[[known]]
signature = "crash|*"
explanation = "was fixed"
status = "fixed"
"""
    )
    assert triage.known("transition.state|FillEvent|orders[*].price")
    assert not triage.known("transition.state|FillEvent|orders.length")  # [*] is literal, not a class
    assert not triage.known("transition.state|PriceTick|orders[*].price")
    assert triage.known("load|open|cycle_a") and not triage.known("load|open|cycle_b")
    assert not triage.known("crash|FillEvent")  # fixed: seeing it again is news
    assert [e.signature for e in triage.fixed_seen(["crash|FillEvent"])] == ["crash|*"]
    assert triage.covers(["load|open|cycle_a", "transition.state|FillEvent|orders[*].volume"])
    assert not triage.covers(["load|open|cycle_a", "load|open|mode_source"])
    assert not triage.covers([])
    entry = triage.match("transition.state|FillEvent|orders[*].price")
    assert entry is not None and entry.reproducer == "r.json"


def test_json_and_the_gates_older_map_read_too_and_bad_files_name_where() -> None:
    doc = {"known": [{"signature": "a|b|c", "explanation": "x", "status": "accepted"}]}
    assert loads(json.dumps(doc)).entries == (Entry("a|b|c", "x", "accepted"),)
    assert loads('{"a|b|c": "because"}').entries == (Entry("a|b|c", "because", "open"),)
    for text, words in [
        ('[[known]]\nsignature = "x"\nstatus = "maybe"\n', "status 'maybe'"),
        ('[[known]]\nexplanation = "x"\n', "needs a non-empty string 'signature'"),
        ('[[known]]\nsignature = "x"\ncolour = "red"\n', "unknown key 'colour'"),
        ("not = toml = at all", "neither JSON nor TOML"),
        ("{bad json", "not JSON"),
    ]:
        with pytest.raises(BadInput) as info:
            loads(text, "k.toml")
        assert words in str(info.value) and "k.toml" in str(info.value)


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)


@given(
    st.lists(
        st.builds(
            Entry,
            _text.filter(bool),
            _text,
            st.sampled_from(["open", "accepted", "fixed"]),
            st.none() | _text,
        ),
        max_size=5,
    )
)
def test_the_written_toml_reads_back_as_the_same_entries(entries: list[Entry]) -> None:
    triage = Triage(tuple(entries))
    assert loads(dumps_toml(triage)).entries == triage.entries


# -- every difference is named --------------------------------------------------------------------


def test_a_divergence_carries_one_signature_per_distinct_generalised_path() -> None:
    diffs = [
        Difference("orders[0].price", 1.0, 2.0),
        Difference("consecutive_losses_a", 0, 1),
        Difference("orders[3].price", 1.0, 2.0),
        Difference("orders[3].volume", 1.0, 2.0),
    ]
    found = divergence("transition.state", 4, "s", Event("FillEvent", {}), diffs)
    assert found.signature == "transition.state|FillEvent|orders[*].price"
    assert found.signatures == (
        "transition.state|FillEvent|orders[*].price",
        "transition.state|FillEvent|consecutive_losses_a",
        "transition.state|FillEvent|orders[*].volume",
    )
    assert found.to_wire()["signatures"] == list(found.signatures)


def _two_bug_state(tmp_path: Path) -> Path:
    """An upstream fixture's state without cycle_a and mode_source: a port defaulting both wrongly
    shows two differences in one load."""
    data = json.loads((UPSTREAM / "exit_fill_books_cycle.json").read_text())
    for key in ("cycle_a", "mode_source"):
        data["initial_state"].pop(key, None)
    data["events"] = []
    data.pop("expected", None)
    path = tmp_path / "two-bugs.json"
    path.write_text(json.dumps(data))
    return path


def test_real_port_multi_path_divergence_names_every_difference_and_the_new_one_is_found(
    haskell_exe: Path, upstream: Path, tmp_path: Path
) -> None:
    scenario = _two_bug_state(tmp_path)
    shadow = _shadow(haskell_exe, "cycle_default_zero,mode_source_default_empty")
    report = tmp_path / "r.json"
    code, out = _run("replay", str(scenario), "--shadow", shadow, "--report", str(report), "-q")
    assert code == 1, out
    (d,) = json.loads(report.read_text())["divergences"]
    assert d["signature"] == "load|open|cycle_a"
    assert d["signatures"] == ["load|open|cycle_a", "load|open|mode_source"]
    # only cycle_a is known: the step is still new, clustered under the signature nobody triaged
    known = tmp_path / "known.toml"
    known.write_text('[[known]]\nsignature = "load|open|cycle_*"\nexplanation = "old states"\n')
    code, out = _run("replay", str(scenario), "--shadow", shadow, "--known", str(known),
                     "--report", str(report), "-q")  # fmt: skip
    assert code == 1, out
    doc = json.loads(report.read_text())
    assert [c["signature"] for c in doc["clusters"]] == ["load|open|mode_source"]
    assert doc["summary"]["known_divergences"] == 0
    # both known: exit 0, one known divergence
    known.write_text(
        known.read_text() + '[[known]]\nsignature = "load|open|mode_source"\nexplanation = "x"\n'
    )
    code, out = _run("replay", str(scenario), "--shadow", shadow, "--known", str(known))
    assert code == 0, out
    assert "known: 1 divergence(s) and 0 failure(s) triaged" in out and "verdict: pass" in out


# -- replay with a triage file ----------------------------------------------------------------------


def test_fixtures_whose_divergences_are_all_triaged_replay_clean_until_one_entry_goes(
    haskell_exe: Path, upstream: Path, tmp_path: Path
) -> None:
    shadow = _shadow(haskell_exe, KNOWN_MUTANTS)
    report, known = tmp_path / "all.json", tmp_path / "known.toml"
    code, out = _run("replay", str(upstream), "--shadow", shadow, "--report", str(report), "-q")
    assert code == 1, out
    code, out = _run("triage", str(report), "--out", str(known))
    assert code == 0 and "entries" in out, out
    entries = loads(known.read_text()).entries
    assert {e.status for e in entries} == {"open"} and all(e.explanation == "TODO" for e in entries)
    assert len(entries) >= 4
    html, junit, rep = tmp_path / "r.html", tmp_path / "r.xml", tmp_path / "k.json"
    code, out = _run("replay", str(upstream), "--shadow", shadow, "--known", str(known), "--report", str(rep),
                     "--html", str(html), "--junit", str(junit))  # fmt: skip
    assert code == 0, out
    doc = json.loads(rep.read_text())
    seen = doc["summary"]["known_divergences"]
    assert seen > 0 and doc["summary"]["divergences"] == 0 and doc["summary"]["verdict"] == "pass"
    assert f"known: {seen} divergence(s) and 0 failure(s) triaged in {known}" in out
    assert "known (triaged)" in out  # the summary table's line
    assert "Known (triaged) signatures" in html.read_text()
    assert f'skipped="{len(doc["known"]["clusters"])}"' in junit.read_text()
    # the same with two workers
    code, out = _run("replay", str(upstream), "--shadow", shadow, "--known", str(known), "-j", "2", "-q")
    assert code == 0 and f"known: {seen} divergence(s)" in out, out
    # one entry fewer: its divergences are news again
    fewer = Triage(entries[1:])
    known.write_text(dumps_toml(fewer))
    code, out = _run("replay", str(upstream), "--shadow", shadow, "--known", str(known), "--report", str(rep))
    assert code == 1, out
    doc = json.loads(rep.read_text())
    assert doc["summary"]["divergences"] > 0 and doc["summary"]["verdict"] == "diverged"
    # marked fixed yet seen again: news, and said so
    fixed = Triage((Entry(entries[0].signature, "fixed in 1.2", "fixed"), *entries[1:]))
    known.write_text(dumps_toml(fixed))
    code, out = _run("replay", str(upstream), "--shadow", shadow, "--known", str(known), "-q")
    assert code == 1 and f"seen again though marked fixed: {entries[0].signature}" in out, out


def test_bad_triage_file_is_one_line_exit_2(haskell_exe: Path, upstream: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[known]]\nsignature = "x"\nstatus = "later"\n')
    for args in (["replay", str(upstream)], ["fuzz", "--examples", "1"]):
        code, out = _run(*args, "--shadow", _shadow(haskell_exe), "--known", str(bad))
        assert code == 2 and "bad.toml" in out and "status 'later'" in out and "Traceback" not in out


# -- triage --check ----------------------------------------------------------------------------------


def test_triage_check_says_which_reproducers_still_reproduce(haskell_exe: Path, tmp_path: Path) -> None:
    repro = _two_bug_state(tmp_path)
    known = tmp_path / "known.toml"
    known.write_text(dumps_toml(Triage((
        Entry("load|open|cycle_a", "old states", "open", str(repro)),
        Entry("load|open|mode_source", "was fixed", "fixed", str(repro)),
        Entry("load|open|cycle_b", "never mind", "open", str(repro)),
    ))))  # fmt: skip
    code, out = _run("triage", "--check", str(known), "--shadow", _shadow(haskell_exe, "cycle_default_zero"))
    assert code == 1, out
    assert "reproduces      load|open|cycle_a" in out
    assert "fixed           load|open|mode_source" in out
    assert "stale           load|open|cycle_b" in out
    code, out = _run("triage", "--check", str(known), "--shadow",
                     _shadow(haskell_exe, "cycle_default_zero,mode_source_default_empty"))  # fmt: skip
    assert code == 1 and "fixed, but seen load|open|mode_source" in out, out


# -- the gate ----------------------------------------------------------------------------------------


def _findings(signatures: list[list[str]], event: str = "FillEvent") -> list[dict[str, Any]]:
    return [
        {"kind": "transition.state", "signature": sigs[0], "signatures": sigs, "event_type": event, "step": i}
        for i, sigs in enumerate(signatures)
    ]


def test_gate_accepts_a_window_whose_divergences_are_all_triaged_and_explained() -> None:
    samples = window()
    a, b = "transition.state|FillEvent|orders[*].price", "transition.state|FillEvent|total_fees"
    findings = _findings([[a], [a, b], [a]])  # repeating on the hot path
    explained = Triage((Entry("transition.state|FillEvent|orders[*].*", "rounding", "open", "r.json"),
                        Entry(b, "fee grouping", "accepted", "f.json")))  # fmt: skip
    assert judge(samples, findings, known=explained, domain=DOGE).verdict == "ACCEPT"
    assert judge(samples, findings, domain=DOGE).verdict == "REJECT"  # untriaged hot-path repeats
    todo = Triage((explained.entries[0], Entry(b, "TODO", "open", "f.json")))
    # not explained: a hot-path repeat
    assert judge(samples, findings, known=todo, domain=DOGE).verdict == "REJECT"
    unreproducible = Triage((explained.entries[0], Entry(b, "fee grouping", "open")))
    assert judge(samples, findings, known=unreproducible).verdict != "ACCEPT"
    fixed = Triage((explained.entries[0], Entry(b, "fee grouping", "fixed", "f.json")))
    assert judge(samples, findings, known=fixed).verdict != "ACCEPT"


def test_gate_extends_when_one_off_path_divergence_is_not_triaged() -> None:
    findings = _findings([["transition.state|TimerTick|s2_entered_at"], ["transition.state|TimerTick|now"]],
                         "TimerTick")  # fmt: skip
    one = Triage((Entry("transition.state|TimerTick|s2_entered_at", "timer", "open", "t.json"),))
    assert judge(window(), findings, known=one).verdict == "EXTEND"
    both = Triage((*one.entries, Entry("transition.state|TimerTick|now", "clock", "open", "t.json")))
    assert judge(window(), findings, known=both).verdict == "ACCEPT"


def test_gate_and_evidence_commands_read_known_and_bundle_it(tmp_path: Path) -> None:
    samples, findings = tmp_path / "w.jsonl", tmp_path / "f.jsonl"
    samples.write_text("".join(json.dumps(s) + "\n" for s in window()))
    sig = "transition.state|TimerTick|s2_entered_at"
    finding = _findings([[sig]], "TimerTick")[0] | {"provenance": {"source": "t", "synthetic": True}}
    findings.write_text(json.dumps(finding) + "\n")
    known = tmp_path / "known.toml"
    known.write_text(dumps_toml(Triage((Entry(sig, "TODO", "open", "t.json"),))))
    code, out = _run("gate", str(samples), "--findings", str(findings), "--known", str(known))
    assert code == 3 and "EXTEND" in out, out
    known.write_text(dumps_toml(Triage((Entry(sig, "the timer port", "open", "t.json"),))))
    code, out = _run("gate", str(samples), "--findings", str(findings), "--known", str(known))
    assert code == 0 and "ACCEPT" in out, out
    bundle = tmp_path / "bundle"
    code, out = _run("evidence", "build", str(bundle), "--samples", str(samples), "--findings", str(findings),
                     "--known", str(known), "--allow-synthetic")  # fmt: skip
    assert code == 0, out
    assert (bundle / "known.toml").read_bytes() == known.read_bytes()
    assert "known.toml" in (bundle / "SHA256SUMS").read_text()


# -- fuzz past known bugs -----------------------------------------------------------------------------


def _fuzz(exe: Path, mutants: str, out: Path, *extra: str) -> tuple[int, str]:
    group = click.Group()
    fuzz_cli.register(group)
    args = ["fuzz", "--seed", "0", "--time-budget", "60", "--shadow", _shadow(exe, mutants),
            "--out", str(out), "-q", *extra]  # fmt: skip
    result = CliRunner().invoke(group, args)
    return result.exit_code, result.output


KNOWN_TWO = """
[[known]]
signature = "load|open|cycle_*"
explanation = "cycle_default_zero: old states without cycle_a/cycle_b"
status = "open"

[[known]]
signature = "invariant|*|violations*"
explanation = "invariant_typo: None vs null"
status = "accepted"
"""


@pytest.mark.parametrize(
    ("planted", "wanted"),
    [("mode_source_default_empty", "load|open|mode_source"), ("round_half_up_exact_tie", "price")],
)
def test_fuzz_known_finds_the_planted_bug_behind_two_known_ones(
    haskell_exe: Path, tmp_path: Path, planted: str, wanted: str
) -> None:
    known = tmp_path / "known.toml"
    known.write_text(KNOWN_TWO)
    out = tmp_path / "out"
    code, output = _fuzz(haskell_exe, f"cycle_default_zero,invariant_typo,{planted}", out,
                         "--known", str(known))  # fmt: skip
    assert code == 1, output
    files = sorted(out.glob("*.json"))
    assert len(files) == 1, output
    data = json.loads(files[0].read_text())
    sig = data["shadowdiff"]["signature"]
    assert wanted in sig and not loads(KNOWN_TWO).known(sig)
    assert len(data["events"]) <= 3
    # the reproducer shows the planted bug alone: the port without it passes, with it diverges
    shadow_without = _shadow(haskell_exe, "cycle_default_zero,invariant_typo")
    code, text = _run("replay", str(files[0]), "--shadow", shadow_without, "--known", str(known), "-q")
    assert code == 0, text
    code, text = _run("replay", str(files[0]), "--shadow", _shadow(haskell_exe, planted), "-q")
    assert code == 1, text


def test_keep_going_is_not_capped_at_the_default_examples_without_examples(
    haskell_exe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []

    def spy(strategies: Any, oracle: Any, options: Any, *rest: Any) -> Any:
        seen.append(options)
        return FuzzReport((), SearchStats(0, 0.0, "budget"), 0)

    with monkeypatch.context() as patched:
        patched.setattr(fuzz_cli, "fuzz", spy)
        for extra, cap in [
            (("--keep-going", "--time-budget", "60"), None),  # the budget decides
            (("--keep-going", "--time-budget", "60", "--examples", "5"), 5),  # a cap when given
            (("--time-budget", "60"), fuzz_cli.DEFAULT_EXAMPLES),  # stops at the first anyway
            (("--keep-going", "--time-budget", "0"), fuzz_cli.DEFAULT_EXAMPLES),  # never endless
        ]:
            _fuzz(haskell_exe, "", tmp_path, *extra)
            if cap is None:
                assert seen[-1].examples > fuzz_cli.DEFAULT_EXAMPLES and seen[-1].time_budget == 60, extra
            else:
                assert seen[-1].examples == cap, extra
    # for real: a short budget ends the search, not a count
    code, output = _fuzz(haskell_exe, "", tmp_path, "--keep-going", "--time-budget", "3")
    assert code == 0 and "stopped: budget" in output, output


# -- exact ties ------------------------------------------------------------------------------------


@given(st.integers(0, 8), st.floats(0.001, 500.0), st.data())
@settings(max_examples=300)
def test_generated_ties_are_exact_binary_ties_at_the_decimals(
    decimals: int, around: float, data: Any
) -> None:
    tie = data.draw(exact_ties(decimals, around))
    assert is_exact_tie(tie, decimals)
    scaled = Fraction(tie) * 10**decimals
    assert scaled.denominator == 2  # k + 1/2 exactly
    # Python rounds it to even: the half-up neighbour is the other one
    down, up = math.floor(scaled), math.ceil(scaled)
    assert Fraction(round(tie, decimals)) * 10**decimals != scaled
    expected = down if down % 2 == 0 else up
    assert round(tie, decimals) == float(Fraction(expected, 10**decimals))


@given(st.integers(0, 8), st.floats(0.01, 200.0), st.floats(0.01, 5.0), st.booleans())
def test_inputs_are_solved_so_the_computed_price_is_the_tie(
    decimals: int, around: float, pct: float, up: bool
) -> None:
    tie = exact_tie_value(decimals, around)
    factor = 1 + pct / 100 if up else 1 - pct / 100
    m = solve_product(tie, factor)
    if m is not None:  # found for most; never a wrong one
        assert m * factor == tie and is_exact_tie(m * factor, decimals)


def test_known_ties_and_non_ties() -> None:
    assert is_exact_tie(0.1640625, 6) and exact_tie_value(6, 0.164) == 0.1640625
    assert is_exact_tie(2.5, 0) and is_exact_tie(0.125, 2)
    assert not is_exact_tie(2.675, 2) and not is_exact_tie(0.1, 6) and not is_exact_tie(math.nan, 2)


def test_shrink_with_known_shrinks_for_the_signature_the_triage_lacks(
    haskell_exe: Path, upstream: Path, tmp_path: Path
) -> None:
    scenario = _two_bug_state(tmp_path)
    known = tmp_path / "known.toml"
    known.write_text('[[known]]\nsignature = "load|open|cycle_*"\nexplanation = "old states"\n')
    group = click.Group()
    fuzz_cli.register(group)
    shadow = _shadow(haskell_exe, "cycle_default_zero,mode_source_default_empty")
    out = tmp_path / "shrunk"
    result = CliRunner().invoke(group, ["shrink", str(scenario), "--shadow", shadow, "--known", str(known),
                                        "--out", str(out), "-q"])  # fmt: skip
    assert result.exit_code == 1, result.output
    (path,) = sorted(out.glob("*.json"))
    data = json.loads(path.read_text())
    assert data["shadowdiff"]["signature"] == "load|open|mode_source"
    assert "mode_source" not in data["initial_state"]  # the shrunk case keeps the new difference
    # the reproducer directory triages itself: one open entry per reproducer, pointing at it
    target = tmp_path / "from-repro.toml"
    code, output = _run("triage", str(out), "--out", str(target))
    assert code == 0, output
    (entry,) = loads(target.read_text()).entries
    assert (entry.signature, entry.status, entry.reproducer) == ("load|open|mode_source", "open", str(path))
    code, output = _run("triage", "--check", str(target), "--shadow", shadow)
    assert code == 0 and "reproduces      load|open|mode_source" in output, output
