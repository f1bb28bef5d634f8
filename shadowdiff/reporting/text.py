"""Turn a replay result into the JSON report (docs/formats.md) and the terminal summary.

Pure: values in, values or text out. The report is deterministic for the same inputs except its two
timing fields, which ``deterministic=True`` zeroes (``replay --twice`` compares reports byte for byte).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shadowdiff import __version__
from shadowdiff.core.diff import to_plain
from shadowdiff.core.engine import ReplayResult
from shadowdiff.core.triage import Triage
from shadowdiff.model.values import Difference


def verdict(result: ReplayResult, bad_input: Sequence[Mapping[str, str]] = ()) -> str:
    """``bad_input``: the errors that cut the run short (the stream stopped there). Such a run never
    passes, nor does an interrupted one: its verdict says ``incomplete`` and where, and what the part
    before it found."""
    found = _found(result)
    if bad_input:
        where = str(bad_input[0].get("where") or "")
        cut = f"bad input at {where}" if where else "bad input"
        return f"incomplete ({cut})" if found == "pass" else f"incomplete ({cut}; {found} before it)"
    if result.interrupted:  # Ctrl-C: what ran is reported, and the rest was never looked at
        cut = f"interrupted after step {result.counts.get('steps', 0):,}"
        return f"incomplete ({cut})" if found == "pass" else f"incomplete ({cut}; {found} before it)"
    return found


def _found(result: ReplayResult) -> str:
    checked = result.shadow_checks.get("transition", 0) + result.shadow_checks.get("call", 0)
    if result.failure_count:
        return "failed"
    if result.divergence_count:
        return "diverged"
    if checked == 0 and result.counts.get("steps", 0) > 0:
        return "no-shadow"
    return "pass"


def _difference(d: Difference) -> dict[str, Any]:
    return {
        "path": d.path,
        "authoritative": to_plain(d.authoritative),
        "shadow": to_plain(d.shadow),
        "rule": d.rule,
    }


def known_section(result: ReplayResult, known: Triage | None) -> dict[str, Any]:
    """What the triage file covered (counted apart) and the ``fixed`` entries seen again."""
    clusters = []
    for c in result.known_clusters.as_list():
        entry = known.match(c.signature) if known is not None else None
        item = c.to_wire()
        item["pattern"] = entry.signature if entry else None
        item["status"] = entry.status if entry else None
        item["explanation"] = entry.explanation if entry else None
        clusters.append(item)
    fixed: list[str] = []
    if known is not None:
        sigs = [c.signature for c in result.clusters.as_list()]
        sigs += [s for d in result.divergences for s in d.signatures]
        fixed = [e.signature for e in known.fixed_seen(dict.fromkeys(sigs))]
    return {
        "entries": len(known) if known is not None else 0,
        "divergences": result.counts.get("known_divergences", 0),
        "failures": result.counts.get("known_failures", 0),
        "clusters": clusters,
        "fixed_seen_again": fixed,
    }


def build_report(
    result: ReplayResult,
    run: Mapping[str, Any],
    deterministic: bool = False,
    bad_input: Sequence[Mapping[str, str]] = (),
    known: Triage | None = None,
) -> dict[str, Any]:
    steps = result.counts.get("steps", 0)
    elapsed = 0.0 if deterministic else round(result.elapsed_s, 4)
    rate = 0.0 if deterministic or not result.elapsed_s else round(steps / result.elapsed_s, 1)
    divergences = []
    for d in sorted(result.divergences, key=lambda d: (d.step, d.slot, d.kind)):
        item = d.to_wire()
        item["differences"] = [_difference(x) for x in d.differences]
        divergences.append(item)
    return {
        "shadowdiff": {"version": __version__, "report": 1},
        "run": dict(run),
        "summary": {
            "events": result.counts.get("events", 0),
            "steps": steps,
            "calls": result.counts.get("calls", 0),
            "slots": result.slots,
            "checks": {
                "authoritative": dict(result.authoritative_checks),
                "shadow": dict(result.shadow_checks),
            },
            "divergences": result.divergence_count,
            "by_kind": dict(sorted(result.by_kind.items())),
            "failures": result.failure_count,
            "failures_by_kind": dict(sorted(result.failures_by_kind.items())),
            "invariant_breaches": result.counts.get("invariant_breaches", 0),
            "known_divergences": result.counts.get("known_divergences", 0),
            "known_failures": result.counts.get("known_failures", 0),
            "clusters": len(result.clusters),
            "shadow_restarts": result.shadow_restarts,
            "unchecked": result.unchecked,
            "interrupted": result.interrupted,
            "gap_dropped": result.counts.get("gap_dropped", 0),
            "load_checks": result.counts.get("load_checks", 0),
            "elapsed_s": elapsed,
            "events_per_s": rate,
            "verdict": verdict(result, bad_input),
        },
        "clusters": [c.to_wire() for c in result.clusters.as_list()],
        "divergences": divergences,
        "failures": [f.to_wire() for f in sorted(result.failures, key=lambda f: (f.step, f.slot))],
        "invariant_breaches": list(result.breaches),
        "known": known_section(result, known),
        "errors": list(result.errors),
    }


def _short(value: Any, width: int = 28) -> str:
    text = repr(to_plain(value))
    return text if len(text) <= width else text[: width - 1] + "…"


def _known_lines(report: Mapping[str, Any]) -> list[str]:
    known = report.get("known") or {}
    if not known.get("entries") and not known.get("divergences") and not known.get("failures"):
        return []
    s = report["summary"]
    lines = [
        f"{'known (triaged)':<22}{s.get('known_divergences', 0) + s.get('known_failures', 0):>12,}   "
        f"({s.get('known_divergences', 0)} divergences, {s.get('known_failures', 0)} failures in "
        f"{len(known.get('clusters', []))} known signature(s); not counted above)"
    ]
    for pattern in known.get("fixed_seen_again", []):
        lines.append(f"{'  fixed, seen again':<22}{pattern}")
    return lines


def summary_lines(report: Mapping[str, Any], limit: int = 10) -> list[str]:
    """The table a person reads at the end of a run."""
    s = report["summary"]
    auth, shadow = s["checks"]["authoritative"], s["checks"]["shadow"]
    lines = [
        f"{'events':<22}{s['events']:>12,}   ({s['calls']:,} calls, {s['slots']} slots)",
        f"{'checks':<22}{'authoritative':>14}{'shadow':>10}",
        f"{'  transitions':<22}{auth.get('transition', 0):>14,}{shadow.get('transition', 0):>10,}",
        f"{'  invariants':<22}{auth.get('invariants', 0):>14,}{shadow.get('invariants', 0):>10,}",
        f"{'  calls':<22}{auth.get('call', 0):>14,}{shadow.get('call', 0):>10,}",
        f"{'divergences':<22}{s['divergences']:>12,}   "
        + ", ".join(f"{k} {v}" for k, v in s["by_kind"].items()),
        f"{'shadow failures':<22}{s['failures']:>12,}   "
        + ", ".join(f"{k} {v}" for k, v in s["failures_by_kind"].items()),
        f"{'invariant breaches':<22}{s['invariant_breaches']:>12,}   (both sides agree: about the reducer)",
        f"{'clusters':<22}{s['clusters']:>12,}",
        *_known_lines(report),
        f"{'shadow restarts':<22}{s['shadow_restarts']:>12,}",
    ]
    if s["unchecked"]:
        lines.append(f"{'unchecked steps':<22}{s['unchecked']:>12,}")
    if s.get("load_checks"):
        lines.append(f"{'state loads checked':<22}{s['load_checks']:>12,}   (raw saved states)")
    if s["gap_dropped"]:
        lines.append(f"{'dropped by the tap':<22}{s['gap_dropped']:>12,}")
    lines.append(f"{'throughput':<22}{s['events_per_s']:>12,.0f} events/s   ({s['elapsed_s']:.2f} s)")
    clusters: Sequence[Mapping[str, Any]] = report["clusters"]
    if clusters:
        lines.append("")
        lines.append(f"{'count':>7}  {'first step':>10}  signature")
        for c in clusters[:limit]:
            lines.append(f"{c['count']:>7,}  {c['first_step']:>10,}  {c['signature']}")
        if len(clusters) > limit:
            lines.append(f"  … {len(clusters) - limit} more clusters in the report")
    shown = report["divergences"][:3]
    for d in shown:
        lines.append("")
        lines.append(f"step {d['step']} ({d['slot']}, {d['event_type']}): {d['kind']}")
        for x in d["differences"][:4]:
            lines.append(
                f"  {x['path']:<36} authoritative {_short(x['authoritative'])}   shadow {_short(x['shadow'])}"
            )
    for f in report["failures"][:3]:
        lines.append("")
        lines.append(f"step {f['step']} ({f['slot']}, {f['event_type']}): shadow {f['kind']}: {f['message']}")
        for tail in f["stderr_tail"][-3:]:
            lines.append(f"  stderr: {tail}")
    return lines
