"""The shadow gate as a pure function: status samples, findings and triage in, a verdict out.

The runbook's three criteria, each PASS, REVIEW or FAIL with its measured figure and the sample seqs that
decided it:

- ``coverage``: the window spans the policy's hours, no hole between samples is longer than allowed, the
  shadow was ``enabled`` and ``executable_available`` in every sample, and ``transition_checks`` kept
  growing (no stall longer than allowed).
- ``shadow_failures``: none is PASS; all within a start-up window (the first minutes of a segment) and few
  is REVIEW; any outside a start-up window, or too many, is FAIL.
- ``divergences``: none is PASS; a cluster repeating on a hot-path event is FAIL; anything else is REVIEW,
  and that REVIEW carries an action only once every cluster has a triage entry.

The staging rule then decides: ACCEPT when every criterion passes or exactly one is in REVIEW with an
action; REJECT when any fails; EXTEND otherwise (two or more in REVIEW, or one with nothing done about it).

A counter that goes down means the bot restarted: the window splits into segments there and deltas are
taken within a segment, never across. The evidence must say so, though (the ``integrity`` criterion): a
sample after a restart carries a restart marker (``"restart": true``, which ``watch`` writes when the
status's own ``provenance.instance`` changes). Counters that go backwards within one process instance are
FAIL (tampered or corrupt); counters that go backwards, or a status block from a different process, with
no marker, and seqs that skip or repeat, are REVIEW with nothing to do but look (so at best EXTEND); each
names the sample. Counts already present in a segment's first sample are counted as
having happened at that sample (the bot's start-up), so nothing before the first sample is silently lost.
"""

from __future__ import annotations

import itertools
import json
import math
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, Literal

import attrs

from shadowdiff.core.classify import Clusters
from shadowdiff.core.domain import Domain
from shadowdiff.core.triage import Triage
from shadowdiff.model import FAILURE_KINDS
from shadowdiff.model.errors import BadInput

__all__ = [
    "COUNTERS",
    "Criterion",
    "GateCluster",
    "GateResult",
    "Policy",
    "Sample",
    "Segment",
    "judge",
    "load_policy",
    "parse_sample",
    "read_json_objects",
    "read_samples",
]

Status = Literal["PASS", "REVIEW", "FAIL"]
Verdict = Literal["ACCEPT", "EXTEND", "REJECT"]
COUNTERS = (
    "transition_checks",
    "invariant_checks",
    "total_divergences",
    "transition_divergences",
    "invariant_divergences",
    "shadow_failures",
)
_RANK = {"PASS": 0, "REVIEW": 1, "FAIL": 2}


@attrs.frozen
class Policy:
    """Thresholds; the defaults are the runbook's (and ``shadowdiff/default_policy.toml``'s)."""

    window_hours: float = 48.0
    span_slack_minutes: float = 1.0
    max_gap_minutes: float = 5.0
    short_window: Literal["extend", "fail"] = "extend"
    long_gap: Literal["extend", "fail"] = "extend"
    stall_minutes: float = 15.0
    startup_minutes: float = 30.0
    startup_max_failures: int = 3
    startup_action: str = "start-up failures only, none since: record last_shadow_error in the triage notes"
    hot_path_events: tuple[str, ...] | None = None
    """None: the domain's ``hot_path_events`` (judge's ``domain``); a policy file may name its own."""
    hot_path_repeat: int = 2

    def for_domain(self, domain: Domain | None) -> Policy:
        """This policy with the hot-path events settled: its own if it names them, else the domain's
        (sorted; none without a domain)."""
        if self.hot_path_events is not None:
            return self
        events = tuple(sorted(domain.hot_path_events)) if domain is not None else ()
        return attrs.evolve(self, hot_path_events=events)

    @property
    def hot_paths(self) -> tuple[str, ...]:
        return self.hot_path_events or ()


VERDICT_EXIT = {"ACCEPT": 0, "REJECT": 1, "EXTEND": 3}
"""The gate's verdicts as exit codes (the gate's report carries them; shadowdiff.cli.exits uses them)."""


_POLICY_KEYS: dict[tuple[str, str], tuple[str, type | tuple[type, ...]]] = {
    ("window", "hours"): ("window_hours", (int, float)),
    ("window", "span_slack_minutes"): ("span_slack_minutes", (int, float)),
    ("window", "max_gap_minutes"): ("max_gap_minutes", (int, float)),
    ("window", "short_window"): ("short_window", str),
    ("window", "long_gap"): ("long_gap", str),
    ("shadow", "stall_minutes"): ("stall_minutes", (int, float)),
    ("failures", "startup_minutes"): ("startup_minutes", (int, float)),
    ("failures", "startup_max_failures"): ("startup_max_failures", int),
    ("failures", "startup_action"): ("startup_action", str),
    ("divergences", "hot_path_events"): ("hot_path_events", list),
    ("divergences", "hot_path_repeat"): ("hot_path_repeat", int),
}


def load_policy(text: str, where: str = "policy") -> Policy:
    """A :class:`Policy` from TOML text; unknown keys are errors (a typo must not loosen the gate)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"not TOML: {exc}", where=where) from exc
    except RecursionError:  # hostile nesting: tomllib recurses
        raise BadInput("not TOML: nested too deeply", where=where) from None
    values: dict[str, Any] = {}
    for section, table in document.items():
        if not isinstance(table, dict):
            raise BadInput(f"top-level key {section!r} must be a [section]", where=where)
        for key, value in table.items():
            if (section, key) not in _POLICY_KEYS:
                raise BadInput(f"unknown policy key [{section}] {key}", where=where)
            field, kind = _POLICY_KEYS[(section, key)]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise BadInput(f"[{section}] {key} has the wrong type: {value!r}", where=where)
            if field in ("short_window", "long_gap") and value not in ("extend", "fail"):
                raise BadInput(f'[{section}] {key} must be "extend" or "fail"', where=where)
            if field == "hot_path_events":
                assert isinstance(value, list)
                if not all(isinstance(item, str) for item in value):
                    raise BadInput(f"[{section}] {key} must list event names", where=where)
                value = tuple(sorted(value))
            values[field] = float(value) if kind == (int, float) else value
    return Policy(**values)


def read_json_objects(lines: Iterable[str | bytes], name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, record)`` for each non-blank line; a line that is not a JSON object raises BadInput."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            record = json.loads(line.strip())
        except ValueError as exc:
            raise BadInput(f"not JSON ({exc})", where=where) from exc
        except RecursionError:
            raise BadInput("not JSON (nested too deeply)", where=where) from None
        if not isinstance(record, dict):
            raise BadInput(f"expected a JSON object, got {type(record).__name__}", where=where)
        yield where, record


def read_samples(lines: Iterable[str | bytes], name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, sample record)`` for every line of a status-sample file, as the runbook's loop writes it.

    The runbook's ``curl ... | jq '{ts, mode, top_phase, state_machine_shadow}' >> window.jsonl`` writes
    no ``seq``: the line number stands in for it (so a file that ``watch`` later appends to, continuing
    from its line count, keeps one numbering). A line where curl got nothing (blank, or ``null``) is a
    gap sample, not an error; so is a status without ``state_machine_shadow`` (see :func:`parse_sample`).
    Unknown top-level fields are kept and ignored.
    """
    for number, line in enumerate(lines, start=1):
        where = f"{name}:{number}"
        text = line.strip()
        record: Any = None
        if text:
            try:
                record = json.loads(text)
            except ValueError as exc:
                raise BadInput(f"not JSON ({exc})", where=where) from exc
            except RecursionError:
                raise BadInput("not JSON (nested too deeply)", where=where) from None
        if record is None:
            yield where, {"seq": number, "gap": True, "error": "empty sample (curl got nothing)"}
            continue
        if not isinstance(record, dict):
            raise BadInput(f"expected a JSON object, got {type(record).__name__}", where=where)
        if record.get("seq") is None:
            record = {**record, "seq": number}
        yield where, record


@attrs.frozen
class Sample:
    """One status sample as the gate reads it (``t`` is epoch seconds, parsed from ``ts``)."""

    seq: int
    t: float
    ts: str
    gap: bool
    counters: Mapping[str, int | None] = attrs.field(factory=dict, repr=False)
    enabled: bool = False
    executable_available: bool = False
    last_kind: str | None = None
    last_event: str | None = None
    last_error: str | None = None
    synthetic: bool = False
    instance: str | None = None  # the status's own process identity (provenance.status), when it has one
    restart: bool = False  # a restart marker: the process may have changed before this sample


def _parse_ts(value: object, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if moment.tzinfo is not None:
                return moment.timestamp()
            raise BadInput(f"ts {value!r} has no time zone", where=where)
    raise BadInput(f"ts must be ISO 8601 with a zone or epoch seconds, got {value!r}", where=where)


def parse_sample(record: Mapping[str, Any], where: str, position: int | None = None) -> Sample:
    """One sample; ``seq`` defaults to ``position`` (the line number) when the record has none.

    A gap (``"gap": true``, or a status without ``state_machine_shadow``, which is what the runbook's jq
    filter gives when curl got an error page or a bot without the shadow's telemetry) may lack ``ts``:
    its ``t`` is then NaN and :func:`judge` places it at the previous sample's time.
    """
    seq = record.get("seq")
    if seq is None and position is not None:
        seq = position
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise BadInput(f"seq must be an integer, got {seq!r}", where=where)
    provenance = record.get("provenance")
    synthetic = isinstance(provenance, Mapping) and provenance.get("synthetic") is True
    shadow = record.get("state_machine_shadow")
    if record.get("gap") is True or shadow is None:
        if record.get("ts") is None:
            return Sample(seq, math.nan, "", True, synthetic=synthetic)
        return Sample(seq, _parse_ts(record.get("ts"), where), str(record["ts"]), True, synthetic=synthetic)
    t = _parse_ts(record.get("ts"), where)
    ts = str(record["ts"])
    if not isinstance(shadow, Mapping):
        raise BadInput("state_machine_shadow must be an object or null", where=where)
    counters: dict[str, int | None] = {}
    for name in COUNTERS:
        value = shadow.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise BadInput(f"state_machine_shadow.{name} must be a count, got {value!r}", where=where)
        counters[name] = value

    def text(key: str) -> str | None:
        value = shadow.get(key)
        return None if value is None else str(value)

    return Sample(
        seq,
        t,
        ts,
        False,
        counters,
        enabled=shadow.get("enabled") is True,
        executable_available=shadow.get("executable_available") is True,
        last_kind=text("last_divergence_kind"),
        last_event=text("last_divergence_event"),
        last_error=text("last_shadow_error"),
        synthetic=synthetic,
    )


@attrs.frozen
class Criterion:
    name: str
    status: Status
    figure: str
    seqs: tuple[int, ...]
    action: str | None = None
    advice: str = ""

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, recurse=False) | {"seqs": list(self.seqs)}


@attrs.frozen
class Segment:
    """A run of samples between counter resets (one bot process lifetime, as far as the window shows)."""

    index: int
    first_seq: int
    last_seq: int
    start: str
    end: str
    samples: int
    max: Mapping[str, int] = attrs.field(factory=dict)
    last: Mapping[str, int] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, recurse=False) | {"max": dict(self.max), "last": dict(self.last)}


@attrs.frozen
class GateCluster:
    """Divergences (or failures) sharing a signature, from the findings file or from the bot's counters."""

    signature: str
    kind: str
    event_type: str
    count: int
    first: str
    last: str
    source: Literal["findings", "counters"]
    failure: bool = False
    hot_path: bool = False
    seqs: tuple[int, ...] = ()
    reproducer: str | None = None
    triage: str | None = None
    known: bool = False  # triaged by a --known file's entries (explained, with a reproducer)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, recurse=False) | {"seqs": list(self.seqs)}


@attrs.frozen
class GateResult:
    verdict: Verdict
    criteria: tuple[Criterion, ...]
    segments: tuple[Segment, ...]
    clusters: tuple[GateCluster, ...]
    window: Mapping[str, Any]
    policy: Policy
    series: tuple[Sample, ...] = attrs.field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        policy = attrs.asdict(self.policy, recurse=False)
        policy["hot_path_events"] = list(self.policy.hot_paths)
        return {
            "shadowdiff": {"gate": 1},
            "verdict": self.verdict,
            "exit_code": VERDICT_EXIT[self.verdict],
            "criteria": [criterion.to_dict() for criterion in self.criteria],
            "segments": [segment.to_dict() for segment in self.segments],
            "clusters": [cluster.to_dict() for cluster in self.clusters],
            "window": dict(self.window),
            "policy": policy,
        }


def _hours(seconds: float) -> str:
    if seconds >= 360:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _segments(good: list[Sample]) -> list[list[Sample]]:
    segments: list[list[Sample]] = []
    for sample in good:
        if segments:
            previous = segments[-1][-1]
            reset = any(
                (now := sample.counters.get(name)) is not None
                and (before := previous.counters.get(name)) is not None
                and now < before
                for name in COUNTERS
            )
            if not reset:
                segments[-1].append(sample)
                continue
        segments.append([sample])
    return segments


def _increments(segment: list[Sample], name: str) -> Iterator[tuple[Sample, int]]:
    """Positive growth of one counter within a segment; a segment's first sample counts from zero."""
    before = 0
    for sample in segment:
        value = sample.counters.get(name)
        if value is None:
            continue
        if value > before:
            yield sample, value - before
        before = value


def _coverage(records: list[Sample], segments: list[list[Sample]], policy: Policy) -> Criterion:
    good = [sample for segment in segments for sample in segment]
    if not good:
        return Criterion(
            "coverage", "FAIL", "no status samples, only gaps", tuple(r.seq for r in records[:10])
        )
    checks: list[tuple[Status, str, tuple[int, ...], str]] = []
    span = good[-1].t - good[0].t
    need = policy.window_hours * 3600
    if span < need - policy.span_slack_minutes * 60:
        status: Status = "FAIL" if policy.short_window == "fail" else "REVIEW"
        advice = f"extend the watch by {_hours(need - span)}"
        checks.append(
            (
                status,
                f"window {_hours(span)} < {policy.window_hours:g} h",
                (good[0].seq, good[-1].seq),
                advice,
            )
        )
    longest, pair = 0.0, (good[0].seq, good[0].seq)
    for before, after in itertools.pairwise(good):
        if after.t - before.t > longest:
            longest, pair = after.t - before.t, (before.seq, after.seq)
    if longest > policy.max_gap_minutes * 60:
        status = "FAIL" if policy.long_gap == "fail" else "REVIEW"
        advice = "extend the watch so the window has no hole (or restart it and judge a fresh window)"
        checks.append((status, f"gap of {_minutes(longest)} > {policy.max_gap_minutes:g} min", pair, advice))
    off = [s.seq for s in good if not (s.enabled and s.executable_available)]
    if off:
        advice = "the shadow was not running: check DOGE_CORE_SHADOW and DOGE_CORE_EXE"
        checks.append(
            ("FAIL", f"shadow off or executable missing in {len(off)} samples", tuple(off[:20]), advice)
        )
    stall, stall_pair = 0.0, (good[0].seq, good[0].seq)
    for segment in segments:
        grew_at = segment[0]
        seen = segment[0].counters.get("transition_checks")
        for sample in segment[1:]:
            now = sample.counters.get("transition_checks")
            if now is not None and seen is not None and now > seen:
                grew_at = sample
            elif sample.t - grew_at.t > stall:
                stall, stall_pair = sample.t - grew_at.t, (grew_at.seq, sample.seq)
            seen = now if now is not None else seen
    if stall > policy.stall_minutes * 60:
        advice = "transition_checks stopped growing: is the trading loop calling the shadow?"
        checks.append(("FAIL", f"checks stalled for {_minutes(stall)}", stall_pair, advice))
    summary = (
        f"window {_hours(span)} (need {policy.window_hours:g} h), longest gap {_minutes(longest)} "
        f"(max {policy.max_gap_minutes:g}), longest stall {_minutes(stall)} (max {policy.stall_minutes:g}), "
        f"shadow on in {len(good) - len(off)}/{len(good)} samples, {len(records) - len(good)} gap samples, "
        f"{len(segments)} segment(s)"
    )
    if not checks:
        return Criterion("coverage", "PASS", summary, (good[0].seq, good[-1].seq))
    worst = max(checks, key=lambda check: _RANK[check[0]])[0]
    deciding = tuple(sorted({seq for status, _, seqs, _ in checks if status == worst for seq in seqs}))
    problems = "; ".join(text for status, text, _, _ in checks if status == worst)
    return Criterion(
        "coverage", worst, f"{problems} | {summary}", deciding, None, "; ".join(c[3] for c in checks)
    )


def _failures(segments: list[list[Sample]], finding_failures: int, policy: Policy) -> Criterion:
    events = [
        (sample, inc, sample.t - segment[0].t <= policy.startup_minutes * 60)
        for segment in segments
        for sample, inc in _increments(segment, "shadow_failures")
    ]
    total = sum(inc for _, inc, _ in events)
    seqs = tuple(sample.seq for sample, _, _ in events)
    if total == 0:
        if finding_failures:
            figure = f"0 in the counters, but {finding_failures} failure(s) in the findings"
            return Criterion("shadow_failures", "REVIEW", figure, (), None, "explain the findings' failures")
        return Criterion("shadow_failures", "PASS", "0 shadow failures", ())
    late = [sample.seq for sample, _, startup in events if not startup]
    errors = sorted({s.last_error for s, _, _ in events if s.last_error})
    said = f"; last_shadow_error: {' | '.join(errors)}" if errors else ""
    if late:
        figure = f"{total} shadow failure(s), {len(late)} sample(s) saw them after start-up{said}"
        return Criterion(
            "shadow_failures", "FAIL", figure, tuple(late[:20]), None, "fix the shadow's failures"
        )
    if total > policy.startup_max_failures:
        figure = f"{total} shadow failures at start-up (max {policy.startup_max_failures}){said}"
        return Criterion("shadow_failures", "FAIL", figure, seqs[:20], None, "fix the shadow's start-up")
    figure = f"{total} shadow failure(s), all within {policy.startup_minutes:g} min of start-up{said}"
    return Criterion("shadow_failures", "REVIEW", figure, seqs, policy.startup_action or None, "")


def _signatures(finding: Mapping[str, Any]) -> list[str]:
    many = finding.get("signatures")
    sigs = [s for s in many if isinstance(s, str)] if isinstance(many, list) else []
    return sigs or [str(finding.get("signature", "unsigned"))]


def _known_note(cluster: GateCluster, sigs: list[str], known: Triage | None) -> GateCluster:
    """The cluster marked triaged when every signature its members show has an explained, open or
    accepted entry, and a reproducer exists (the entry's or the cluster's): the runbook's
    "explained, reproducible, and triaged"."""
    if known is None or cluster.triage is not None:
        return cluster
    note = known.explanation(sigs)
    entries = [known.match(s) for s in sigs]
    reproducers = [e.reproducer for e in entries if e is not None and e.reproducer]
    if note is None or not (cluster.reproducer or len(reproducers) == len(entries)):
        return cluster  # unexplained, or a signature nobody can reproduce
    reproducer = cluster.reproducer or reproducers[0]
    return attrs.evolve(cluster, triage=note, known=True, reproducer=reproducer)


def _finding_clusters(
    findings: Iterable[Mapping[str, Any]], policy: Policy, known: Triage | None = None
) -> list[GateCluster]:
    """The findings clustered by signature (core.classify.Clusters, the one clustering), in order of
    signature, each with its reproducer and the signatures its members carry."""
    counted = Clusters()
    reproducers: dict[str, set[str]] = {}
    member_sigs: dict[str, dict[str, None]] = {}
    for finding in findings:
        signature = str(finding.get("signature", "unsigned"))
        step = finding.get("step")
        counted.add(signature, str(finding.get("kind", "unknown")), str(finding.get("event_type", "unknown")),
                    step if isinstance(step, int) and not isinstance(step, bool) else None)  # fmt: skip
        if finding.get("reproducer"):
            reproducers.setdefault(signature, set()).add(str(finding["reproducer"]))
        member_sigs.setdefault(signature, {}).update(dict.fromkeys(_signatures(finding)))
    clusters = []
    for found, stepped in counted.by_signature():
        signature = found.signature
        repro = sorted(reproducers.get(signature, ()))
        cluster = GateCluster(
            signature,
            found.kind,
            found.event_type,
            found.count,
            f"step {found.first_step}" if stepped else "?",
            f"step {found.last_step}" if stepped else "?",
            "findings",
            failure=found.kind in FAILURE_KINDS,
            hot_path=found.event_type in policy.hot_paths,
            reproducer=repro[0] if repro else None,
        )
        clusters.append(_known_note(cluster, list(member_sigs[signature]), known))
    return clusters


def _counter_clusters(segments: list[list[Sample]], policy: Policy) -> list[GateCluster]:
    """Attribute each growth of total_divergences to the sample's last_divergence_event (an estimate:
    several divergences between two samples all go to the last one's event)."""
    found: dict[str, list[tuple[Sample, int]]] = {}
    for segment in segments:
        for sample, inc in _increments(segment, "total_divergences"):
            signature = f"counters|{sample.last_kind or 'unknown'}|{sample.last_event or 'unknown'}"
            found.setdefault(signature, []).append((sample, inc))
    clusters = []
    for signature, hits in sorted(found.items()):
        _, kind, event_type = signature.split("|", 2)
        clusters.append(
            GateCluster(
                signature,
                kind,
                event_type,
                sum(inc for _, inc in hits),
                hits[0][0].ts,
                hits[-1][0].ts,
                "counters",
                hot_path=event_type in policy.hot_paths,
                seqs=tuple(sample.seq for sample, _ in hits),
            )
        )
    return clusters


def _divergences(clusters: list[GateCluster], policy: Policy) -> Criterion:
    judged = [cluster for cluster in clusters if not cluster.failure]
    total = sum(cluster.count for cluster in judged)
    if not judged:
        return Criterion("divergences", "PASS", "0 divergences", ())
    # a known, explained and reproducible cluster is not news, even on the hot path
    bad = [c for c in judged if c.hot_path and c.count >= policy.hot_path_repeat and not c.known]
    if bad:
        names = ", ".join(f"{c.signature} x{c.count}" for c in bad)
        figure = f"{total} divergence(s); repeating on the hot path: {names}"
        seqs = tuple(sorted({seq for c in bad for seq in c.seqs}))
        return Criterion("divergences", "FAIL", figure, seqs[:20], None, "fix the port before it takes over")
    untriaged = [c.signature for c in judged if c.triage is None]
    figure = f"{total} divergence(s) in {len(judged)} cluster(s), {len(untriaged)} untriaged"
    seqs = tuple(sorted({seq for c in judged for seq in c.seqs}))[:20]
    if untriaged:
        return Criterion("divergences", "REVIEW", figure, seqs, None, "triage: " + ", ".join(untriaged))
    return Criterion("divergences", "REVIEW", figure, seqs, f"all {len(judged)} cluster(s) triaged", "")


def judge(
    samples: Iterable[Mapping[str, Any]],
    findings: Iterable[Mapping[str, Any]] = (),
    triage: Mapping[str, str] | None = None,
    policy: Policy | None = None,
    known: Triage | None = None,
    domain: Domain | None = None,
) -> GateResult:
    """The gate's verdict on a window of status samples (in the order they were taken). The hot-path
    events are the policy's, else ``domain``'s (none without either)."""
    policy = (policy if policy is not None else Policy()).for_domain(domain)
    triage = triage or {}
    records: list[Sample] = []
    for index, record in enumerate(samples):
        sample = parse_sample(record, f"sample {index + 1}", index + 1)
        if math.isnan(sample.t):
            t = records[-1].t if records else math.nan
            sample = attrs.evolve(sample, t=t, ts=records[-1].ts if records else "")
        elif records and sample.t < records[-1].t:
            raise BadInput(
                f"ts goes backwards ({sample.ts} after {records[-1].ts})", where=f"seq {sample.seq}"
            )
        records.append(attrs.evolve(sample, instance=_instance(record), restart=_restart(record)))
    good = [sample for sample in records if not sample.gap]
    segments = _segments(good)
    finding_clusters = _finding_clusters(findings, policy, known)
    covered = {c.event_type for c in finding_clusters if not c.failure}
    clusters = finding_clusters + [
        c for c in _counter_clusters(segments, policy) if c.event_type not in covered
    ]
    clusters = sorted(
        (
            _known_note(attrs.evolve(c, triage=triage.get(c.signature)), [c.signature], known)
            if c.source == "counters"
            else attrs.evolve(c, triage=triage.get(c.signature) or c.triage)
            for c in clusters
        ),
        key=lambda c: (c.failure, c.signature),
    )
    criteria = (
        _coverage(records, segments, policy),
        _failures(segments, sum(c.count for c in clusters if c.failure), policy),
        _divergences(clusters, policy),
        _integrity(records),
    )
    reviews = [criterion for criterion in criteria if criterion.status == "REVIEW"]
    verdict: Verdict
    if any(criterion.status == "FAIL" for criterion in criteria):
        verdict = "REJECT"
    elif not reviews or (len(reviews) == 1 and reviews[0].action):
        verdict = "ACCEPT"
    else:
        verdict = "EXTEND"
    window = {
        "start": good[0].ts if good else None,
        "end": good[-1].ts if good else None,
        "hours": round((good[-1].t - good[0].t) / 3600, 3) if good else 0.0,
        "samples": len(good),
        "gap_samples": len(records) - len(good),
        "synthetic": any(sample.synthetic for sample in records),
    }
    return GateResult(
        verdict,
        criteria,
        tuple(_segment(index, segment) for index, segment in enumerate(segments)),
        tuple(clusters),
        window,
        policy,
        tuple(records),
    )


def _instance(record: Mapping[str, Any]) -> str | None:
    """The process identity a sample's status block carried (``provenance.status``: the sidecar's
    ``instance``, else ``pid`` and ``started``), or None when the status does not say."""
    provenance = record.get("provenance")
    own = provenance.get("status") if isinstance(provenance, Mapping) else None
    if not isinstance(own, Mapping):
        return None
    if own.get("instance") is not None:
        return str(own["instance"])
    if own.get("pid") is not None and own.get("started") is not None:
        return f"{own['pid']}@{own['started']}"
    return None


def _restart(record: Mapping[str, Any]) -> bool:
    marker = record.get("restart")
    return marker is True or (isinstance(marker, Mapping) and bool(marker))


def _integrity(records: list[Sample]) -> Criterion:
    """Counters that go backwards, a change of process and skipped or repeated seqs, checked against the
    restart markers: FAIL for counters going backwards within one process, REVIEW (no action) otherwise."""
    fail: list[tuple[int, str]] = []
    review: list[tuple[int, str]] = []
    previous: Sample | None = None
    marked = False  # a restart marker since the previous good sample (on it or on a gap sample between)
    last_seq: int | None = None
    for sample in records:
        if last_seq is not None and sample.seq != last_seq + 1:
            how = "repeats or goes backwards" if sample.seq <= last_seq else f"skips from {last_seq}"
            review.append((sample.seq, f"seq {sample.seq} {how}"))
        last_seq = sample.seq
        marked = marked or sample.restart
        if sample.gap:
            continue
        if previous is not None and not marked:
            down = [
                name
                for name in COUNTERS
                if (now := sample.counters.get(name)) is not None
                and (before := previous.counters.get(name)) is not None
                and now < before
            ]
            same = sample.instance is not None and sample.instance == previous.instance
            other = sample.instance is not None and previous.instance is not None and not same
            if down and same:
                fail.append((sample.seq, f"{down[0]} goes backwards within one process at seq {sample.seq}"))
            elif down:
                review.append(
                    (sample.seq, f"{down[0]} goes backwards at seq {sample.seq} with no restart marker")
                )
            if other:
                review.append(
                    (sample.seq, f"seq {sample.seq} is from another process with no restart marker")
                )
        previous, marked = sample, False
    if fail:
        figure = fail[0][1] + (
            f" (+{len(fail) + len(review) - 1} more)" if len(fail) + len(review) > 1 else ""
        )
        advice = "the samples were altered or mixed: take the window again from the source"
        return Criterion("integrity", "FAIL", figure, tuple(s for s, _ in fail)[:20], None, advice)
    if review:
        figure = review[0][1] + (f" (+{len(review) - 1} more)" if len(review) > 1 else "")
        return Criterion("integrity", "REVIEW", figure, tuple(s for s, _ in review)[:20], None,
                         "check the named samples; a real restart needs a restart marker")  # fmt: skip
    return Criterion("integrity", "PASS", "counters, processes and seqs consistent", ())


def _segment(index: int, segment: list[Sample]) -> Segment:
    names = ("total_divergences", "shadow_failures", "transition_checks")
    values = {name: [v for s in segment if (v := s.counters.get(name)) is not None] for name in names}
    return Segment(
        index,
        segment[0].seq,
        segment[-1].seq,
        segment[0].ts,
        segment[-1].ts,
        len(segment),
        {name: max(found) if found else 0 for name, found in values.items()},
        {name: found[-1] if found else 0 for name, found in values.items()},
    )
