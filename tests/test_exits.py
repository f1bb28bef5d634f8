"""Exit codes and the error style are defined once (shadowdiff.cli.exits) and the docs cite that table."""

from __future__ import annotations

import re

from click.testing import CliRunner
from conftest import ROOT

from shadowdiff.cli import exits
from shadowdiff.cli.main import main
from shadowdiff.model.errors import BadInput
from shadowdiff.runbook.gate import VERDICT_EXIT


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end != -1 else len(text)]


def test_the_readme_table_lists_exactly_the_codes_in_the_code() -> None:
    table = _section((ROOT / "README.md").read_text(), "## Exit codes")
    rows = re.findall(r"^\| (\d+) \|", table, flags=re.MULTILINE)
    assert [int(code) for code in rows] == [code for code, _ in exits.EXIT_CODES]


def test_docs_formats_lists_exactly_the_codes_in_the_code() -> None:
    section = _section((ROOT / "docs" / "formats.md").read_text(), "## Exit codes (all commands)")
    body = section.split("\n", 1)[1]
    cited = [int(code) for code in re.findall(r"(?:^|[\s(,])(\d{1,3}) (?=[a-z`])", body)]
    assert cited == [code for code, _ in exits.EXIT_CODES]


def test_gate_verdicts_are_the_shared_codes() -> None:
    assert exits.GATE_EXIT == VERDICT_EXIT == {
        "ACCEPT": exits.EXIT_CLEAN, "REJECT": exits.EXIT_FOUND, "EXTEND": exits.EXIT_EXTEND,
    }  # fmt: skip
    assert len({code for code, _ in exits.EXIT_CODES}) == len(exits.EXIT_CODES)


def test_one_error_style_for_every_command() -> None:
    assert (
        exits.error_line(BadInput("not JSON", where="f.jsonl:3")) == "shadowdiff: error: f.jsonl:3: not JSON"
    )
    assert exits.error_line("boom", "here") == "shadowdiff: error: here: boom"
    runner = CliRunner()
    missing = "/nonexistent/known.toml"
    for argv in (
        ["replay", "--known", missing],  # cli.main
        ["fuzz", "--known", missing],  # cli.fuzz
        ["triage", "--check", "README.md"],  # cli.triage (not a triage file)
        ["watch", "http://127.0.0.1:9", "--every", "soon"],  # cli.runbook
    ):
        done = runner.invoke(main, argv)
        assert done.exit_code == exits.EXIT_BAD, (argv, done.output)
        assert done.stderr.startswith("shadowdiff: error: ") and done.stderr.count("\n") == 1, argv
