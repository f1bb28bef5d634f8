"""shadowdiff: differential shadow testing of a reducer against its authoritative twin.

The public surface is what ``__all__`` lists; everything else may change.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .classify import Cluster, Clusters, signature
from .client import SubprocessReducer
from .corpus import LogWriter, load_scenario, read_items, scenario_items, write_scenario
from .diff import Rule, Rules, diff
from .domain import Domain
from .engine import Replay, ReplayOptions, ReplayResult
from .errors import BadInput, ShadowdiffError, ShadowSetupError, UsageError
from .model import (
    Call,
    Context,
    Difference,
    Divergence,
    Event,
    Failure,
    FailureAt,
    Outcome,
    Scenario,
    StepResult,
)
from .reducer import Reducer

__all__ = [
    "BadInput",
    "Call",
    "Cluster",
    "Clusters",
    "Context",
    "Difference",
    "Divergence",
    "Domain",
    "Event",
    "Failure",
    "FailureAt",
    "LogWriter",
    "Outcome",
    "Reducer",
    "Replay",
    "ReplayOptions",
    "ReplayResult",
    "Rule",
    "Rules",
    "Scenario",
    "ShadowSetupError",
    "ShadowdiffError",
    "StepResult",
    "SubprocessReducer",
    "UsageError",
    "__version__",
    "diff",
    "load_scenario",
    "read_items",
    "scenario_items",
    "signature",
    "write_scenario",
]
