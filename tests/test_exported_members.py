"""The public surface is pinned: changing it is a decision, not an accident."""

from __future__ import annotations

import subprocess
import sys

import shadowdiff

EXPECTED = [
    "BadInput", "Call", "Cluster", "Clusters", "Context", "Difference", "Divergence", "Domain", "Event",
    "Failure", "FailureAt", "LogWriter", "Outcome", "Reducer", "Replay", "ReplayOptions", "ReplayResult",
    "Rule", "Rules", "Scenario", "ShadowSetupError", "ShadowdiffError", "StepResult", "SubprocessReducer",
    "UsageError", "__version__", "diff", "load_scenario", "read_items", "scenario_items", "signature",
    "write_scenario",
]  # fmt: skip


def test_all_is_pinned_and_every_name_resolves() -> None:
    assert shadowdiff.__all__ == sorted(EXPECTED)
    assert set(shadowdiff._EXPORTS) | {"__version__"} == set(EXPECTED)
    for name in shadowdiff.__all__:
        assert getattr(shadowdiff, name) is not None


def test_importing_the_package_imports_no_engine() -> None:
    code = "import sys, shadowdiff; print(sorted(m for m in ('attrs', 'click', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
