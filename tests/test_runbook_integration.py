"""The runbook commands against the real thing: watch a live sidecar, replay --twice, and the HTML and
JUnit outputs of replay and fuzz."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner
from conftest import PY_SERVER, ROOT
from test_sidecar import BOT_KEYS, run_bot, sidecar

from shadowdiff.cli.main import main


def test_watch_samples_a_running_sidecar(tmp_path: Path, haskell_exe: Path) -> None:
    out = tmp_path / "samples.jsonl"
    with sidecar(tmp_path, f"{haskell_exe} --msgpack") as side:
        run_bot(side.address, 1.0, 200, seed=5)
        side.caught_up(1)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "shadowdiff",
                "watch",
                side.http,
                "--every",
                "0.2s",
                "--duration",
                "1s",
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=30,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    samples = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(samples) >= 4 and [s["seq"] for s in samples] == list(range(1, len(samples) + 1))
    live = [s for s in samples if not s.get("gap")]
    assert live and all(s["mode"] == "sidecar" for s in live)
    block = live[-1]["state_machine_shadow"]
    assert set(block) >= BOT_KEYS and block["transition_checks"] > 0 and block["total_divergences"] == 0


def test_replay_twice_is_byte_identical_across_hash_seeds(upstream: Path) -> None:
    shadow = " ".join([*PY_SERVER, "--msgpack"])
    done = subprocess.run(
        [sys.executable, "-m", "shadowdiff", "replay", str(upstream), "--shadow", shadow, "--twice"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["identical"] is True
    assert [r["pythonhashseed"] for r in outcome["runs"]] == ["0", "12345"]
    assert len({r["sha256"] for r in outcome["runs"]}) == 1


def test_replay_and_fuzz_write_junit_and_html(tmp_path: Path, mutant_exe: Path, upstream: Path) -> None:
    mutant = f"{mutant_exe} --msgpack --mutant quote_fee_swapped_recovery"
    junit, html = tmp_path / "replay.xml", tmp_path / "replay.html"
    out = CliRunner().invoke(
        main, ["replay", str(upstream), "--shadow", mutant, "--junit", str(junit), "--html", str(html)]
    )
    assert out.exit_code == 1
    cases = ET.parse(junit).getroot().iter("testcase")
    names = {case.get("name") for case in cases}
    assert "transition.state|RecoveryFillEvent|total_settled_usd" in names
    assert "<svg" in html.read_text() and "total_settled_usd" in html.read_text()
    fuzz_junit = tmp_path / "fuzz.xml"
    out = CliRunner().invoke(
        main,
        [
            "fuzz",
            "--seed",
            "0",
            "--shadow",
            f"{mutant_exe} --msgpack --mutant break_even_counts_as_loss",
            "--out",
            str(tmp_path / "found"),
            "-q",
            "--junit",
            str(fuzz_junit),
            "--html",
            str(tmp_path / "fuzz.html"),
        ],
    )
    assert out.exit_code == 1, out.output
    failures = [c for c in ET.parse(fuzz_junit).getroot().iter("testcase") if c.find("failure") is not None]
    assert len(failures) == 1 and (tmp_path / "fuzz.html").read_text().startswith("<!DOCTYPE html>")
