"""Structural diff of wire values, with paths and per-path comparison rules.

Paths read the way a person points at a value: ``orders[1].price``, ``actions[0].payload.net_profit``.
Rules match paths with list indices generalised to ``[*]`` and shell-style wildcards, first match wins:

    exact (default)  type for type and bit for bit: an int never equals a float (1001 != 1001.0),
                     -0.0 != 0.0, NaN equals NaN (any NaN bits), bool is not a number
    numeric          ints and floats compare by value, as the bot's own ``==`` does (1001 == 1001.0,
                     -0.0 == 0.0), NaN equals NaN, bool is still not a number
    json             numbers as a whole-state wire carries them: an int and a float of equal value agree
                     (a JSON writer may print 0.0 as ``0``; a shadow re-reading the state it is sent
                     float()s what it loads); two floats still compare bit for bit
    abs  tolerance   |a - b| <= tolerance
    rel  tolerance   |a - b| <= tolerance * max(|a|, |b|)
    ulp  tolerance   a and b at most ``tolerance`` representable doubles apart
    ignore           never a difference
"""

from __future__ import annotations

import json
import math
import re
import struct
import tomllib
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from shadowdiff.model.errors import BadInput
from shadowdiff.model.values import Difference
from shadowdiff.wire.identity import same_types

RULE_KINDS = ("exact", "numeric", "json", "abs", "rel", "ulp", "ignore")
_INDEX = re.compile(r"\[\d+\]")


def generalise(path: str) -> str:
    """``orders[3].price`` -> ``orders[*].price``: the shape of a path, for rules and signatures."""
    return _INDEX.sub("[*]", path)


def _compile(pattern: str) -> re.Pattern[str]:
    """``[*]`` stands for any list index (paths are generalised first); any other ``*`` for any text."""
    parts = [re.escape(piece).replace(r"\*", ".*") for piece in pattern.split("[*]")]
    return re.compile(r"\[\*\]".join(parts) + r"\Z")


@attrs.frozen
class Rule:
    pattern: str
    kind: str = "exact"
    tolerance: float = 0.0
    _regex: re.Pattern[str] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_regex", _compile(self.pattern))

    def matches(self, general_path: str) -> bool:
        return self._regex.match(general_path) is not None


@attrs.frozen
class Rules:
    """An ordered list of rules; the first whose pattern matches a path decides how it compares."""

    rules: tuple[Rule, ...] = ()

    def for_path(self, path: str) -> Rule | None:
        if not self.rules:
            return None
        general = generalise(path)
        for rule in self.rules:
            if rule.matches(general):
                return rule
        return None

    def plus(self, other: Rules) -> Rules:
        return Rules(self.rules + other.rules)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "rules") -> Rules:
        if not isinstance(data, Mapping):
            raise BadInput("rules must be a table (TOML) or an object (JSON)", where)
        entries = data.get("rule", data.get("rules", []))
        if not isinstance(entries, list):
            raise BadInput("'rule' must be a list of tables", where)
        rules = []
        for i, entry in enumerate(entries):
            here = f"{where}: rule {i + 1}"
            if not isinstance(entry, Mapping) or not isinstance(entry.get("path"), str):
                raise BadInput("each rule needs a 'path' pattern", here)
            kind = entry.get("kind", "exact")
            if kind not in RULE_KINDS:
                raise BadInput(f"unknown rule kind {kind!r} (one of {', '.join(RULE_KINDS)})", here)
            tolerance = entry.get("tolerance", 0.0)
            if not isinstance(tolerance, int | float) or tolerance < 0:
                raise BadInput("'tolerance' must be a number >= 0", here)
            rules.append(Rule(entry["path"], kind, float(tolerance)))
        return cls(tuple(rules))

    @classmethod
    def parse(cls, text: str, syntax: str, where: str) -> Rules:
        """Rules from the text of a TOML (``[[rule]]`` tables) or JSON (``{"rules": [...]}``) file;
        ``syntax`` is "toml" or "json", ``where`` names the file in errors. Reading the file is the
        caller's (runtime.rulesfile.load_rules)."""
        try:
            data = json.loads(text) if syntax == "json" else tomllib.loads(text)
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            raise BadInput(f"not valid {'JSON' if syntax == 'json' else 'TOML'}: {exc}", where) from exc
        except RecursionError:  # hostile nesting: the parsers recurse
            raise BadInput("nested too deeply", where) from None
        return cls.from_mapping(data, where)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


NUMERIC_EVERYWHERE = Rules((Rule("*", "numeric"),))
EXACT_EVERYWHERE = Rules((Rule("*", "exact"),))
JSON_EVERYWHERE = Rules((Rule("*", "json"),))


def run_rules(rules: Rules, *, numeric: bool = False, strict_types: bool = False) -> Rules:
    """The rules a run compares with: ``rules`` (the user's, then the domain's) first, then on every
    other path ``numeric`` with ``numeric`` (``--numeric-equality``: the bot's own ``==``), or ``exact``
    with ``strict_types`` (``--strict-types``: which then holds for whole-state shadows too, see
    answer_rules)."""
    if numeric:
        return rules.plus(NUMERIC_EVERYWHERE)
    if strict_types:
        return rules.plus(EXACT_EVERYWHERE)
    return rules


def answer_rules(rules: Rules) -> Rules:
    """The rules a whole-state shadow's answers are compared with (a ``jsonl`` shadow always, a msgpack
    one without sessions): ``json`` on every path no rule names. Such a shadow is sent the state whole
    each step and re-reads it as the module's ``from_dict`` does (``float()`` of an int the module
    itself kept), and over JSON it may print a whole float as an int (the real port's binary and
    ``shadowdiff.shadow.serve`` do): the wire cannot carry int-versus-float there. A catch-all rule in
    ``rules`` (``--strict-types``) comes first and wins."""
    return rules.plus(JSON_EVERYWHERE)


def _ulps_apart(a: float, b: float) -> int:
    def ordinal(x: float) -> int:
        bits: int = struct.unpack("<q", struct.pack("<d", x))[0]
        return bits if bits >= 0 else -(bits & 0x7FFFFFFFFFFFFFFF)

    return abs(ordinal(a) - ordinal(b))


def _type_name(value: Any) -> str:
    return type(value).__name__


def numbers_agree(a: Any, b: Any, rule: Rule | None) -> bool:
    """Two numbers (never bools) under ``rule`` (None: exact)."""
    kind = rule.kind if rule else "exact"
    if kind == "ignore":
        return True
    if kind == "json":  # an int and a float by value; two floats (or two ints) exactly
        if type(a) is not type(b):
            return bool(a == b)
        kind = "exact"
    if kind == "exact" and type(a) is not type(b):
        return False  # an int is not a float of equal value: the wire types differ
    if type(a) is int and type(b) is int:
        return bool(a == b) if kind in ("exact", "numeric") else _tolerated(float(a), float(b), rule)
    fa, fb = float(a), float(b)
    if math.isnan(fa) or math.isnan(fb):
        return math.isnan(fa) and math.isnan(fb)
    if kind == "exact":  # both floats: bit for bit (== and the same sign tells -0.0 from 0.0)
        return fa == fb and math.copysign(1.0, fa) == math.copysign(1.0, fb)
    if kind == "numeric" or rule is None:
        return bool(a == b)  # Python compares an int and a float exactly, by value
    return _tolerated(fa, fb, rule)


def _tolerated(fa: float, fb: float, rule: Rule | None) -> bool:
    assert rule is not None
    if math.isinf(fa) or math.isinf(fb):
        return fa == fb
    if rule.kind == "abs":
        return abs(fa - fb) <= rule.tolerance
    if rule.kind == "rel":
        return abs(fa - fb) <= rule.tolerance * max(abs(fa), abs(fb))
    return _ulps_apart(fa, fb) <= rule.tolerance


def _number_rule(a: Any, b: Any, rule: Rule | None) -> str:
    """The rule a number difference names; where only the wire types differ it says so, e.g.
    ``exact: 0 (int) vs 0.0 (float)``, since JSON and many viewers print both as 0."""
    kind = rule.kind if rule else "exact"
    if kind == "json":
        kind = "exact"
    if kind == "exact" and type(a) is not type(b):
        return f"exact: {a!r} ({_type_name(a)}) vs {b!r} ({_type_name(b)})"
    if kind == "exact" and a == b:  # equal by value, different bits: -0.0 vs 0.0
        return f"exact: {a!r} vs {b!r} (float bits differ)"
    return kind


def diff(authoritative: Any, shadow: Any, path: str = "", rules: Rules = Rules()) -> list[Difference]:
    """Every place where the two values differ, outermost first, in document order."""
    return list(_walk(authoritative, shadow, path, rules))


def identical(authoritative: Any, shadow: Any) -> bool:
    """The cheap test before a walk: equal type for type, as the exact rule compares. Python's ``==``
    holds True == 1 and 1 == 1.0 and -0.0 == 0.0; the exact diff holds none of them, so where ``==``
    holds a walk checks the leaves' types and float signs. NaN (unequal to itself) makes this False and
    the diff then decides. When False the caller walks the diff with its rules (a ``numeric`` rule may
    still find no difference); when True no rule can find one."""
    return bool(authoritative == shadow) and same_types(authoritative, shadow)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _walk(a: Any, b: Any, path: str, rules: Rules) -> Iterator[Difference]:
    rule = rules.for_path(path) if path else None
    if rule is not None and rule.kind == "ignore":
        return
    if _is_number(a) and _is_number(b):
        if not numbers_agree(a, b, rule):
            yield Difference(path, a, b, _number_rule(a, b, rule))
        return
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in a:
            if key in b:
                yield from _walk(a[key], b[key], _join(path, str(key)), rules)
            elif not _ignored(_join(path, str(key)), rules):
                yield Difference(_join(path, str(key)), a[key], _MISSING)
        for key in b:
            if key not in a and not _ignored(_join(path, str(key)), rules):
                yield Difference(_join(path, str(key)), _MISSING, b[key])
        return
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            yield from _walk(x, y, f"{path}[{i}]", rules)
        if len(a) != len(b):
            yield Difference(f"{path}.length" if path else "length", len(a), len(b))
        return
    if type(a) is not type(b) or a != b:
        yield Difference(path, a, b, rule.kind if rule else "exact")


def _ignored(path: str, rules: Rules) -> bool:
    rule = rules.for_path(path)
    return rule is not None and rule.kind == "ignore"


class _Missing:
    """Stands for a key one side has and the other lacks; shows as ``<missing>``."""

    def __repr__(self) -> str:
        return "<missing>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Missing)

    def __hash__(self) -> int:
        return 0


_MISSING = _Missing()


def to_plain(value: Any) -> Any:
    """A difference value ready for JSON: the missing marker becomes the string ``<missing>``."""
    return "<missing>" if isinstance(value, _Missing) else value
