"""The sign-off bundle: built from machine-made input only, hashed, and verified file by file."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from shadowdiff.cli import runbook as runbook_cli
from shadowdiff.model.errors import BadInput, UsageError
from shadowdiff.runbook.evidence import build_bundle, verify_bundle
from shadowdiff.runbook.watch import format_ts

START = 1_790_000_000.0
FILL = "transition.state|FillEvent|orders[*].price"
REGIME = "call.state|apply_order_regime_at_entry|orders[*].regime_at_entry"


def write_window(
    path: Path, *, synthetic: bool, hours: float = 48, divergence_minute: int | None = None
) -> Path:
    lines = []
    for minute in range(int(hours * 60) + 1):
        diverged = divergence_minute is not None and minute >= divergence_minute
        record: dict[str, Any] = {
            "ts": format_ts(START + 60 * minute),
            "seq": minute + 1,
            "source": "http://127.0.0.1:8080/api/status",
            "mode": "live",
            "top_phase": "S0",
            "state_machine_shadow": {
                "enabled": True,
                "executable_available": True,
                "transition_checks": 40 * minute,
                "invariant_checks": 40 * minute,
                "total_divergences": int(diverged),
                "shadow_failures": 0,
                "last_divergence_event": "apply_order_regime_at_entry" if diverged else None,
                "last_divergence_kind": "transition" if diverged else None,
            },
            "provenance": {
                "source": "bot",
                "host": "prod-1",
                "started": format_ts(START),
                "synthetic": synthetic,
            },
        }
        if minute == 700:
            record = {"ts": record["ts"], "seq": minute + 1, "source": "s", "gap": True, "error": "HTTP 500"}
        lines.append(json.dumps(record, sort_keys=True))
    path.write_text("\n".join(lines) + "\n")
    return path


def finding(signature: str, event_type: str, step: int) -> dict[str, Any]:
    return {
        "kind": signature.split("|")[0],
        "signature": signature,
        "event_type": event_type,
        "step": step,
        "slot": "0",
        "differences": [],
        "provenance": {
            "source": "replay",
            "host": "ci",
            "started": "2026-11-23T00:00:00Z",
            "synthetic": False,
        },
    }


@pytest.fixture
def samples(tmp_path: Path) -> Path:
    return write_window(tmp_path / "window.jsonl", synthetic=False)


def group() -> click.Group:
    main = click.Group("shadowdiff")
    runbook_cli.register(main)
    return main


def test_fresh_bundle_has_every_artifact_and_verifies(samples: Path, tmp_path: Path) -> None:
    exe = tmp_path / "doge-core-exe"
    exe.write_bytes(b"#!/bin/sh\necho shadow\n")
    determinism = tmp_path / "determinism.json"
    determinism.write_text(
        json.dumps({"identical": True, "runs": [{"pythonhashseed": "0", "sha256": "ab"}] * 2})
    )
    bundle = build_bundle(tmp_path / "b", samples=[samples], shadow_exe=exe, determinism=determinism)
    assert bundle.verdict == "ACCEPT"
    names = sorted(p.name for p in bundle.directory.iterdir())
    assert names == sorted(
        [
            "SHA256SUMS",
            "SHA256SUMS.csv",
            "counts.json",
            "determinism.json",
            "environment.json",
            "gate.json",
            "gate.md",
            "report.html",
            "telemetry.jsonl",
            "triage.md",
        ]
    )
    assert (bundle.directory / "telemetry.jsonl").read_bytes() == samples.read_bytes()
    environment = json.loads((bundle.directory / "environment.json").read_text())
    assert environment["shadow_executable"]["sha256"] == hashlib.sha256(exe.read_bytes()).hexdigest()
    assert environment["time_span"]["hours"] == 48.0
    assert environment["allow_synthetic"] is False
    counts = json.loads((bundle.directory / "counts.json").read_text())
    assert counts["segments"][0]["total_divergences"] == {"max": 0, "last": 0}
    assert verify_bundle(bundle.directory).ok
    # The format is the one sha256sum -c reads.
    checked = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=bundle.directory, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": OK") == len(bundle.files)


def test_one_changed_byte_is_named(samples: Path, tmp_path: Path) -> None:
    directory = build_bundle(tmp_path / "b", samples=[samples]).directory
    target = directory / "gate.json"
    data = bytearray(target.read_bytes())
    data[10] ^= 1
    target.write_bytes(bytes(data))
    result = verify_bundle(directory)
    assert result.lines() == ["changed: gate.json"]
    done = CliRunner().invoke(group(), ["evidence", "verify", str(directory)])
    assert done.exit_code == 1
    assert done.stdout.strip() == "changed: gate.json"


def test_missing_and_extra_files_are_named(samples: Path, tmp_path: Path) -> None:
    directory = build_bundle(tmp_path / "b", samples=[samples]).directory
    (directory / "counts.json").unlink()
    (directory / "notes.txt").write_text("added later")
    (directory / "SHA256SUMS.csv").unlink()
    assert verify_bundle(directory).lines() == [
        "missing: counts.json",
        "missing: SHA256SUMS.csv",
        "extra: notes.txt",
    ]


def test_verify_passes_through_the_cli(samples: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    built = runner.invoke(group(), ["evidence", "build", str(tmp_path / "b"), "--samples", str(samples)])
    assert built.exit_code == 0, built.output
    done = runner.invoke(group(), ["evidence", "verify", str(tmp_path / "b")])
    assert done.exit_code == 0 and done.stdout.startswith("ok:")


def test_same_inputs_give_the_same_bundle(samples: Path, tmp_path: Path) -> None:
    first = build_bundle(tmp_path / "one", samples=[samples]).directory
    second = build_bundle(tmp_path / "two", samples=[samples]).directory
    assert (first / "SHA256SUMS").read_text() == (second / "SHA256SUMS").read_text()


def test_synthetic_input_is_refused_unless_allowed_and_then_recorded(tmp_path: Path) -> None:
    synthetic = write_window(tmp_path / "demo.jsonl", synthetic=True)
    with pytest.raises(UsageError, match=r"synthetic input \(samples record 1, 2880 in all\)"):
        build_bundle(tmp_path / "refused", samples=[synthetic])
    assert not (tmp_path / "refused").exists()
    done = CliRunner().invoke(
        group(), ["evidence", "build", str(tmp_path / "r2"), "--samples", str(synthetic)]
    )
    assert done.exit_code == 2
    assert done.stderr.startswith("shadowdiff: error: synthetic input") and done.stderr.count("\n") == 1

    directory = build_bundle(tmp_path / "allowed", samples=[synthetic], allow_synthetic=True).directory
    environment = json.loads((directory / "environment.json").read_text())
    assert (environment["allow_synthetic"], environment["synthetic_count"]) == (True, 2880)
    assert json.loads((directory / "gate.json").read_text())["allow_synthetic"] is True
    assert "SYNTHETIC DATA" in (directory / "gate.md").read_text()
    assert "SYNTHETIC DATA" in (directory / "report.html").read_text()


def test_samples_without_provenance_are_not_evidence(tmp_path: Path) -> None:
    path = tmp_path / "curl.jsonl"
    path.write_text(json.dumps({"ts": "2026-11-23T00:00:00Z", "seq": 1, "state_machine_shadow": {}}) + "\n")
    with pytest.raises(BadInput, match="no provenance"):
        build_bundle(tmp_path / "b", samples=[path])


def test_triage_notes_have_one_entry_per_cluster_with_its_reproducer(tmp_path: Path) -> None:
    samples = write_window(tmp_path / "w.jsonl", synthetic=False, divergence_minute=300)
    findings = tmp_path / "findings.jsonl"
    rows = [finding(REGIME, "apply_order_regime_at_entry", 12), finding(FILL, "FillEvent", 40)]
    findings.write_text("".join(json.dumps(row) + "\n" for row in rows))
    repro = tmp_path / "repro"
    repro.mkdir()
    (repro / "fill.json").write_text(
        json.dumps({"name": "x", "events": [], "shadowdiff": {"signature": FILL}})
    )
    triage = tmp_path / "triage.toml"
    triage.write_text(f'"{REGIME}" = "regime normalised differently; harmless"\n')
    bundle = build_bundle(
        tmp_path / "b", samples=[samples], findings=findings, triage=triage, reproducers=repro
    )
    notes = (bundle.directory / "triage.md").read_text()
    assert notes.count("\n## ") == 2
    assert f"## `{FILL}`" in notes and "- reproducer: reproducers/fill.json" in notes
    assert "regime normalised differently; harmless" in notes
    assert "TODO: explain" in notes  # the FillEvent cluster is not triaged yet
    assert (bundle.directory / "reproducers" / "fill.json").exists()
    assert "reproducers/fill.json" in (bundle.directory / "SHA256SUMS").read_text()
    assert bundle.verdict == "EXTEND"  # one untriaged cluster: REVIEW with nothing done yet
    assert verify_bundle(bundle.directory).ok


def test_bad_inputs_are_one_line_errors(samples: Path, tmp_path: Path) -> None:
    bad = tmp_path / "determinism.json"
    bad.write_text('{"identical": "yes"}')
    with pytest.raises(BadInput, match="identical"):
        build_bundle(tmp_path / "b", samples=[samples], determinism=bad)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(UsageError, match="new or empty"):
        build_bundle(tmp_path / "full", samples=[samples])
    shutil.rmtree(tmp_path / "full")
    with pytest.raises(BadInput, match="SHA256SUMS"):
        verify_bundle(tmp_path)


def test_replay_report_is_included_and_rendered(samples: Path, tmp_path: Path) -> None:
    replay = tmp_path / "replay.json"
    replay.write_text(
        json.dumps({"summary": {"steps": 10, "verdict": "pass"}, "clusters": [], "divergences": []})
    )
    bundle = build_bundle(tmp_path / "b", samples=[samples], replay_report=replay)
    assert {"replay-report.json", "replay.html"} <= set(bundle.files)
    assert "badge pass" in (bundle.directory / "replay.html").read_text()
    replay.write_text("[]")
    with pytest.raises(BadInput, match="not a replay report"):
        build_bundle(tmp_path / "c", samples=[samples], replay_report=replay)


def test_bundle_bytes_do_not_depend_on_the_hash_seed(samples: Path, tmp_path: Path) -> None:
    """Built in fresh processes under different PYTHONHASHSEED values, through the real command line."""
    root = Path(__file__).resolve().parent.parent
    script = (
        "import click; from shadowdiff.cli import runbook as runbook_cli; "
        "g = click.Group('s'); runbook_cli.register(g); g()"
    )
    sums = []
    for seed in ("0", "4242"):
        out = tmp_path / f"seed-{seed}"
        env = {
            **os.environ,
            "PYTHONHASHSEED": seed,
            "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
        }
        argv = [sys.executable, "-c", script, "evidence", "build", str(out), "--samples", str(samples)]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        sums.append((out / "SHA256SUMS").read_bytes())
    assert sums[0] == sums[1]
