"""shadowdiff: differential shadow testing of a reducer against its authoritative twin.

The public surface is what ``__all__`` lists; everything else may change. Names are imported lazily,
so ``import shadowdiff.tap`` inside a bot's process pulls in nothing but the tap (stdlib + msgpack).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "BadInput": "errors", "ShadowdiffError": "errors", "ShadowSetupError": "errors", "UsageError": "errors",
    "Call": "model", "Context": "model", "Difference": "model", "Divergence": "model", "Event": "model",
    "Failure": "model", "FailureAt": "model", "Outcome": "model", "Scenario": "model", "StepResult": "model",
    "Cluster": "classify", "Clusters": "classify", "signature": "classify",
    "SubprocessReducer": "client",
    "LogWriter": "corpus", "load_scenario": "corpus", "read_items": "corpus", "scenario_items": "corpus",
    "write_scenario": "corpus",
    "Rule": "diff", "Rules": "diff", "diff": "diff",
    "Domain": "domain",
    "Replay": "engine", "ReplayOptions": "engine", "ReplayResult": "engine",
    "Reducer": "reducer",
}  # fmt: skip

__all__ = [
    "BadInput", "Call", "Cluster", "Clusters", "Context", "Difference", "Divergence", "Domain", "Event",
    "Failure", "FailureAt", "LogWriter", "Outcome", "Reducer", "Replay", "ReplayOptions", "ReplayResult",
    "Rule", "Rules", "Scenario", "ShadowSetupError", "ShadowdiffError", "StepResult", "SubprocessReducer",
    "UsageError", "__version__", "diff", "load_scenario", "read_items", "scenario_items", "signature",
    "write_scenario",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'shadowdiff' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
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
    )  # fmt: skip
    from .reducer import Reducer
