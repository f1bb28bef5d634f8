"""shadowdiff: differential shadow testing of a reducer against its authoritative twin.

The public surface is what ``__all__`` lists; everything else may change. Names are imported lazily,
so ``import shadowdiff.tap`` inside a bot's process pulls in nothing but the tap (stdlib + msgpack).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "BadInput": "model.errors", "ShadowdiffError": "model.errors", "ShadowSetupError": "model.errors",
    "UsageError": "model.errors",
    "Call": "model.values", "Context": "model.values", "Difference": "model.values",
    "Divergence": "model.values", "Event": "model.values", "Failure": "model.values",
    "FailureAt": "model.values", "Outcome": "model.values", "Scenario": "model.values",
    "StepResult": "model.values",
    "Cluster": "core.classify", "Clusters": "core.classify", "signature": "core.classify",
    "SubprocessReducer": "shadow.client",
    "LogWriter": "runtime.corpus", "load_scenario": "runtime.corpus", "read_items": "runtime.corpus",
    "scenario_items": "runtime.corpus", "write_scenario": "runtime.corpus",
    "Rule": "core.diff", "Rules": "core.diff", "diff": "core.diff",
    "Domain": "core.domain",
    "Replay": "core.engine", "ReplayOptions": "core.engine", "ReplayResult": "core.engine",
    "Reducer": "core.reducer",
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
    from shadowdiff.core.classify import Cluster, Clusters, signature
    from shadowdiff.core.diff import Rule, Rules, diff
    from shadowdiff.core.domain import Domain
    from shadowdiff.core.engine import Replay, ReplayOptions, ReplayResult
    from shadowdiff.core.reducer import Reducer
    from shadowdiff.model.errors import BadInput, ShadowdiffError, ShadowSetupError, UsageError
    from shadowdiff.model.values import (
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
    from shadowdiff.runtime.corpus import LogWriter, load_scenario, read_items, scenario_items, write_scenario
    from shadowdiff.shadow.client import SubprocessReducer
