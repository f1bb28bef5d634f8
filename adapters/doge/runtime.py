"""The bot's own saved state, ``logs/bot_runtime.json``, as a corpus (DOGE_REDUCER.md section 8).

A runtime file is a JSON object whose ``version`` starts with ``"doge-"`` and whose ``slots`` map a slot
id (a string) to the ``to_dict`` of that slot's ``PairState``, as the running bot last saved it. Keys
read here: ``version``, ``saved_at``, ``entry_pct``, ``profit_pct``, ``maker_fee_pct``, ``constraints``
(``price_decimals``, ``volume_decimals``, ``min_volume``, ``min_cost_usd``), ``slots``,
``slot_aliases`` (slot id -> alias) and ``slot_sticky`` (slot id -> bool); every other key (``mode``,
``pair`` and the many about other subsystems) is ignored.

Each saved slot becomes a replay slot named ``slot-<id>`` or ``slot-<id> (<alias>)``, opened with its
state exactly as the file holds it (a *raw* snapshot: the shadow loads it itself, and its loading is
checked against the authority's ``from_dict``, so a port that reads an older file differently is found,
named by slot and path), then stepped once with a ``TimerTick`` at ``saved_at`` (the first thing a
restarted bot does; a file without a numeric ``saved_at`` ticks at the state's own ``now``). That one
step is what carries the raw state to a shadow without sessions (the JSON-lines transport) and checks
the port on every real state.

The slot's ``EngineConfig`` is built as the bot builds it. From the file: ``entry_pct``,
``profit_pct``, ``maker_fee_pct``, the four constraints (the bot's defaults 6, 0, 13.0, 0.0 when
absent), ``sticky_mode_enabled`` = the slot's ``slot_sticky`` flag (False when absent). From the bot's
environment, read from the process environment and, overriding it, from an optional TOML file of the
same names (``--runtime-env FILE``; values may be TOML numbers/booleans or strings as in the
environment), with the bot's defaults:

    PAIR_REFRESH_PCT 1.0              -> refresh_pct
    STALE_PRICE_MAX_AGE_SEC 60        -> stale_price_max_age_sec
    S1_ORPHAN_AFTER_SEC 1350          -> s1_orphan_after_sec
    S2_ORPHAN_AFTER_SEC 1800          -> s2_orphan_after_sec
    LOSS_BACKOFF_START 3              -> loss_backoff_start
    LOSS_COOLDOWN_START 5             -> loss_cooldown_start
    LOSS_COOLDOWN_SEC 900             -> loss_cooldown_sec
    REENTRY_BASE_COOLDOWN_SEC 0       -> reentry_base_cooldown_sec
    ENTRY_BACKOFF_FACTOR 0.5          -> backoff_factor
    ENTRY_BACKOFF_MAX_MULTIPLIER 5.0  -> backoff_max_multiplier
    MAX_RECOVERY_SLOTS 2              -> max_recovery_slots = max(1, int(value))
    RECOVERY_ORDERS_ENABLED (default: RECOVERY_ENABLED, default true): when false, both orphan
        timeouts are infinite (float("inf")), as the live bot sets them
    ORDER_SIZE_USD 2.0                -> the slot's order size: max(size, size + the state's total_profit)

The regime spacing multipliers are not in the file nor in the environment (the bot computes them from
its regime detector); ``ENTRY_SPACING_MULT_A`` / ``ENTRY_SPACING_MULT_B`` (shadowdiff's own names,
default 1.0, "no regime active") give ``entry_pct_a`` / ``entry_pct_b`` = ``entry_pct`` times them.
Booleans from the environment are true for 1/true/yes/on (any case), false for 0/false/no/off/empty.

The file holds real orders and exchange txids: nothing here sends it anywhere.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from shadowdiff.model import Context, Event, WireMap
from shadowdiff.model.errors import BadInput
from shadowdiff.model.records import LogItem, Record, Snapshot

from .context import doge_context

VERSION_PREFIX = "doge-"

# environment name -> (EngineConfig field, converter, the bot's default)
ENV_FIELDS: dict[str, tuple[str, type, Any]] = {
    "PAIR_REFRESH_PCT": ("refresh_pct", float, 1.0),
    "STALE_PRICE_MAX_AGE_SEC": ("stale_price_max_age_sec", float, 60.0),
    "S1_ORPHAN_AFTER_SEC": ("s1_orphan_after_sec", float, 1350.0),
    "S2_ORPHAN_AFTER_SEC": ("s2_orphan_after_sec", float, 1800.0),
    "LOSS_BACKOFF_START": ("loss_backoff_start", int, 3),
    "LOSS_COOLDOWN_START": ("loss_cooldown_start", int, 5),
    "LOSS_COOLDOWN_SEC": ("loss_cooldown_sec", float, 900.0),
    "REENTRY_BASE_COOLDOWN_SEC": ("reentry_base_cooldown_sec", float, 0.0),
    "ENTRY_BACKOFF_FACTOR": ("backoff_factor", float, 0.5),
    "ENTRY_BACKOFF_MAX_MULTIPLIER": ("backoff_max_multiplier", float, 5.0),
    "MAX_RECOVERY_SLOTS": ("max_recovery_slots", int, 2),
}
OTHER_NAMES: dict[str, tuple[type, Any]] = {
    "RECOVERY_ENABLED": (bool, True),
    "RECOVERY_ORDERS_ENABLED": (bool, None),  # None: inherits RECOVERY_ENABLED
    "ORDER_SIZE_USD": (float, 2.0),
    "ENTRY_SPACING_MULT_A": (float, 1.0),
    "ENTRY_SPACING_MULT_B": (float, 1.0),
}
ENV_NAMES = (*ENV_FIELDS, *OTHER_NAMES)
CONSTRAINT_DEFAULTS: dict[str, tuple[type, Any]] = {
    "price_decimals": (int, 6),
    "volume_decimals": (int, 0),
    "min_volume": (float, 13.0),
    "min_cost_usd": (float, 0.0),
}
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


def is_runtime(data: Any) -> bool:
    """A bot runtime file: top-level ``slots`` and a ``version`` starting with "doge-" (a scenario has
    ``initial_state`` and ``events`` instead)."""
    return (
        isinstance(data, Mapping)
        and "slots" in data
        and isinstance(data.get("version"), str)
        and data["version"].startswith(VERSION_PREFIX)
    )


def load_env(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The bot's environment values this module reads, converted and defaulted: the process environment
    (``environ``, default ``os.environ``), overridden by the TOML file at ``path`` when given."""
    source = os.environ if environ is None else environ
    raw: dict[str, tuple[Any, str]] = {
        name: (source[name], f"environment variable {name}") for name in ENV_NAMES if name in source
    }
    if path is not None:
        try:
            document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise BadInput(f"cannot read: {exc.strerror}", str(path)) from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise BadInput(f"not valid TOML: {exc}", str(path)) from exc
        for name, value in document.items():
            if name not in ENV_NAMES:
                known = ", ".join(ENV_NAMES)
                raise BadInput(f"unknown name {name!r} (known: {known})", f"{path}: {name}")
            raw[name] = (value, f"{path}: {name}")
    out: dict[str, Any] = {}
    kinds = {name: (kind, default) for name, (_f, kind, default) in ENV_FIELDS.items()} | OTHER_NAMES
    for name, (kind, default) in kinds.items():
        out[name] = _convert(*raw[name], kind) if name in raw else default
    if out["RECOVERY_ORDERS_ENABLED"] is None:
        out["RECOVERY_ORDERS_ENABLED"] = out["RECOVERY_ENABLED"]
    return out


def _convert(value: Any, where: str, kind: type) -> Any:
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            word = str(value).strip().lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            raise ValueError(f"not a boolean: {value!r}")
        if isinstance(value, bool):
            raise ValueError(f"not a number: {value!r}")
        if kind is int:
            return int(str(value).strip()) if isinstance(value, str) else int(value)
        return float(value)
    except (TypeError, ValueError) as exc:
        raise BadInput(f"{exc}", where) from None


def slot_name(slot_id: str, alias: Any) -> str:
    """``slot-<id>``, with `` (<alias>)`` when the file names one."""
    alias_text = str(alias).strip() if alias not in (None, "") else ""
    return f"slot-{slot_id} ({alias_text})" if alias_text else f"slot-{slot_id}"


def slot_names(data: Mapping[str, Any]) -> dict[str, str]:
    """Slot id -> replay slot name, for every slot of a runtime file."""
    aliases = data.get("slot_aliases")
    aliases = aliases if isinstance(aliases, Mapping) else {}
    out: dict[str, str] = {}
    for sid in data.get("slots") or {}:
        name = slot_name(str(sid), aliases.get(str(sid)))
        while name in out.values():  # an id that looks like another's name and alias: still two slots
            name += "'"
        out[str(sid)] = name
    return out


def slot_context(data: Mapping[str, Any], slot_id: str, state: Mapping[str, Any], env: Mapping[str, Any],
                 where: str) -> Context:  # fmt: skip
    """The slot's EngineConfig and order size, as the bot builds them (module docstring)."""
    constraints = data.get("constraints")
    if constraints is not None and not isinstance(constraints, Mapping):
        raise BadInput("'constraints' must be an object", f"{where}: constraints")
    constraints = constraints or {}
    config: WireMap = {}
    for key in ("entry_pct", "profit_pct", "maker_fee_pct"):
        if key in data:
            config[key] = _convert(data[key], f"{where}: {key}", float)
    for key, (kind, default) in CONSTRAINT_DEFAULTS.items():
        value = constraints.get(key, default)
        config[key] = _convert(value, f"{where}: constraints.{key}", kind)
    entry = float(config.get("entry_pct", 0.2))
    config["entry_pct_a"] = entry * float(env["ENTRY_SPACING_MULT_A"])
    config["entry_pct_b"] = entry * float(env["ENTRY_SPACING_MULT_B"])
    for name, (field, kind, _default) in ENV_FIELDS.items():
        config[field] = kind(env[name])
    config["max_recovery_slots"] = max(1, int(config["max_recovery_slots"]))
    if not env["RECOVERY_ORDERS_ENABLED"]:
        config["s1_orphan_after_sec"] = config["s2_orphan_after_sec"] = math.inf
    sticky = data.get("slot_sticky")
    config["sticky_mode_enabled"] = bool(sticky.get(slot_id, False)) if isinstance(sticky, Mapping) else False
    size = float(env["ORDER_SIZE_USD"])
    try:
        profit = float(state.get("total_profit", 0.0))
    except (TypeError, ValueError):
        profit = 0.0  # the authority's from_dict will say what is wrong with it
    return doge_context(config, max(size, size + profit), None)


def runtime_items(data: Mapping[str, Any], where: str, env: Mapping[str, Any] | None = None,
                  resume_tick: bool = True) -> Iterator[LogItem]:  # fmt: skip
    """Per saved slot (in the file's order): a raw snapshot, then (``resume_tick``) one TimerTick at
    ``saved_at``. ``env``: from ``load_env`` (default: the process environment)."""
    env = load_env() if env is None else env
    slots = data.get("slots")
    if not isinstance(slots, Mapping):
        raise BadInput("'slots' must be an object (slot id -> saved state)", f"{where}: slots")
    names = slot_names(data)
    saved_at = data.get("saved_at")
    for sid, state in slots.items():
        place = f"{where}: slots.{sid}"
        if not isinstance(state, Mapping):
            raise BadInput("a saved slot must be an object (the to_dict of its PairState)", place)
        context = slot_context(data, str(sid), state, env, where)
        name = names[str(sid)]
        yield Snapshot(name, dict(state), context, place, raw=True)
        if resume_tick:
            at: Any = saved_at if _number(saved_at) else state.get("now", 0.0)
            if not _number(at):
                continue  # no time to tick at; the load check alone
            yield Record(name, Event("TimerTick", {"timestamp": float(at)}), None, None, None,
                         f"{place} (resume tick at saved_at)")  # fmt: skip


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# -- writing (the simulated bot, tests) ---------------------------------------------------------------

# newer PairState keys an older bot did not write (to_dict of an older version)
LEGACY_DROPPED = (
    "total_settled_usd", "profit_pct_runtime", "mode_source", "consecutive_refreshes_a",
    "consecutive_refreshes_b", "last_refresh_direction_a", "last_refresh_direction_b",
    "refresh_cooldown_until_a", "refresh_cooldown_until_b",
)  # fmt: skip


def legacy_state(state: Mapping[str, Any], profit_pct: Any) -> WireMap:
    """``state`` as an older bot saved it: the newer keys missing, and the bot's profit target kept in
    the state under ``profit_pct`` (the key ``from_dict`` falls back to for ``profit_pct_runtime``)."""
    out = {k: v for k, v in state.items() if k not in LEGACY_DROPPED}
    out["profit_pct"] = profit_pct
    return out


def runtime_document(states: Mapping[str, Mapping[str, Any]], config: Mapping[str, Any], saved_at: float,
                     aliases: Mapping[str, str] | None = None, sticky: Mapping[str, bool] | None = None,
                     legacy: bool = False, pair: str = "XDGUSD") -> dict[str, Any]:  # fmt: skip
    """A ``bot_runtime.json`` document in the bot's shape for these slot states (slot id -> to_dict)."""
    profit = config.get("profit_pct", 1.0)
    slots = {str(k): (legacy_state(v, profit) if legacy else dict(v)) for k, v in states.items()}
    return {
        "version": "doge-v1",
        "saved_at": saved_at,
        "mode": "running",
        "pair": pair,
        "entry_pct": config.get("entry_pct", 0.2),
        "profit_pct": profit,
        "maker_fee_pct": config.get("maker_fee_pct", 0.25),
        "constraints": {k: config[k] for k in CONSTRAINT_DEFAULTS if k in config},
        "slots": slots,
        "slot_aliases": dict(aliases or {}),
        "slot_sticky": {str(k): bool((sticky or {}).get(k, False)) for k in slots},
        "next_slot_id": len(slots),
        "ledger": {"note": "other subsystems' keys: ignored by shadowdiff"},
    }


def holds_runtime(paths: list[str]) -> bool:
    """True when any of these corpora (files, or ``.json`` files below directories) is a runtime file:
    what is derived from it (findings, reports, reproducers) holds real orders and txids."""
    from shadowdiff.runtime.corpus import expand, parse_json

    try:
        files = expand(paths)
    except BadInput:
        return False
    for file in files:
        if file.suffix != ".json":
            continue
        try:  # bounded like any corpus read: deep nesting or bad bytes are the replay's to report
            if is_runtime(parse_json(file.read_bytes(), str(file))):
                return True
        except (OSError, BadInput):
            continue
    return False
