"""Run a replay twice in fresh processes under different PYTHONHASHSEED values; compare the reports.

The evidence bundle records the outcome: ``{"identical": bool, "runs": [{"pythonhashseed", "sha256",
"exit_code"}]}``. The runs agree when their reports are byte-identical (or both absent, as after bad usage)
and their exit codes are equal; ``replay --twice`` then exits with that code, else with 4. ``stderr`` holds
the first run's error lines (the CLI shows them when the runs agree, then drops the key).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SEEDS = ("0", "12345")


def run_twice(replay_argv: Sequence[str], seeds: Sequence[str] = SEEDS) -> dict[str, Any]:
    """``replay_argv`` is the argument list after ``shadowdiff`` (starting with ``replay``)."""
    args = [a for a in replay_argv if a not in ("--twice", "--deterministic")]
    runs = []
    stderr: list[str] = []
    with tempfile.TemporaryDirectory(prefix="shadowdiff-twice-") as tmp:
        for seed in seeds:
            report = Path(tmp) / f"report-{seed}.json"
            env = {**os.environ, "PYTHONHASHSEED": seed}
            argv = [sys.executable, "-m", "shadowdiff", *_without_report(args), "--deterministic", "-q",
                    "--report", str(report)]  # fmt: skip
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            digest = hashlib.sha256(report.read_bytes()).hexdigest() if report.exists() else ""
            runs.append({"pythonhashseed": seed, "sha256": digest, "exit_code": done.returncode})
            stderr.append(done.stderr)
    identical = len({(r["sha256"], r["exit_code"]) for r in runs}) == 1
    return {"identical": identical, "runs": runs, "stderr": stderr[0] if stderr else ""}


def _without_report(args: Sequence[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in ("--report", "--html", "--junit", "--findings"):
            skip = True
            continue
        if arg.startswith(("--report=", "--html=", "--junit=", "--findings=")):
            continue
        out.append(arg)
    return out
