"""A lenient-loading porting bug as a module: the reference reducer, except that ``from_dict`` defaults a
missing ``total_settled_usd`` to 0 instead of falling back to ``total_profit`` (DOGE_REDUCER.md section
2). The bot's fixture ``backward_compat_missing_new_fields`` exists to catch exactly this.

Serve it as a real shadow process with the project's server:

    python -m shadowdiff_doge.pyserver --module tests/servers/settled_default_zero.py --server
    python -m shadowdiff_doge.pyserver --module tests/servers/settled_default_zero.py --msgpack \
        [--no-sessions]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import shadowdiff_doge.reference.state_machine as _reference

globals().update({k: v for k, v in vars(_reference).items() if not k.startswith("__")})


def from_dict(d: Mapping[str, Any]) -> Any:
    state = _reference.from_dict(d)
    if "total_settled_usd" not in d:
        state = dataclasses.replace(state, total_settled_usd=0.0)
    return state
