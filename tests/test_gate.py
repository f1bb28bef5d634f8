"""The gate on windows built to hit each rule of the runbook (and the staging rule's verdicts)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from shadowdiff_doge.domain import DOGE

from shadowdiff.cli import runbook as runbook_cli
from shadowdiff.model.errors import BadInput
from shadowdiff.runbook.gate import GateResult, Policy, judge, load_policy, read_json_objects
from shadowdiff.runbook.render import render_gate_markdown
from shadowdiff.runbook.watch import format_ts

START = 1_790_000_000.0  # a fixed instant, so every window is the same bytes on every run
FILL = "transition.state|FillEvent|orders[*].price"

Shape = Callable[[int], dict[str, Any]]


def shadow_block(minute: int) -> dict[str, Any]:
    """The bot's ``state_machine_shadow`` block of a healthy shadow, ``minute`` minutes in."""
    return {
        "enabled": True,
        "executable_available": True,
        "transition_checks": 1000 + 50 * minute,
        "invariant_checks": 1000 + 50 * minute,
        "total_divergences": 0,
        "transition_divergences": 0,
        "invariant_divergences": 0,
        "shadow_failures": 0,
        "last_divergence_kind": None,
        "last_divergence_event": None,
        "last_shadow_error": None,
    }


def window(hours: float = 48, shape: Shape | None = None, gaps: range = range(0)) -> list[dict[str, Any]]:
    """One sample a minute for ``hours``; ``shape(minute)`` overrides counters; ``gaps`` are failed polls."""
    samples = []
    for minute in range(int(hours * 60) + 1):
        ts = format_ts(START + minute * 60)
        if minute in gaps:
            samples.append({"ts": ts, "seq": minute + 1, "source": "s", "gap": True, "error": "HTTP 500"})
            continue
        shadow = shadow_block(minute)
        shadow.update(shape(minute) if shape else {})
        samples.append(
            {
                "ts": ts,
                "seq": minute + 1,
                "source": "s",
                "mode": "live",
                "top_phase": "S0",
                "state_machine_shadow": shadow,
                "provenance": {"source": "s", "host": "h", "started": format_ts(START), "synthetic": True},
            }
        )
    return samples


def statuses(result: GateResult) -> dict[str, str]:
    return {c.name: c.status for c in result.criteria}


def criterion(result: GateResult, name: str) -> Any:
    return next(c for c in result.criteria if c.name == name)


def divergences_at(minutes: list[int], event: str) -> Shape:
    def shape(minute: int) -> dict[str, Any]:
        count = sum(1 for m in minutes if m <= minute)
        return {"total_divergences": count, "transition_divergences": count} | (
            {"last_divergence_kind": "transition", "last_divergence_event": event} if count else {}
        )

    return shape


def failures_at(minutes: list[int], error: str = "timeout after 2s") -> Shape:
    def shape(minute: int) -> dict[str, Any]:
        count = sum(1 for m in minutes if m <= minute)
        return {"shadow_failures": count} | ({"last_shadow_error": error} if count else {})

    return shape


def test_clean_48h_window_is_accepted_with_every_criterion_passing() -> None:
    result = judge(window())
    assert result.verdict == "ACCEPT"
    assert statuses(result) == {"coverage": "PASS", "shadow_failures": "PASS", "divergences": "PASS",
                                "integrity": "PASS"}  # fmt: skip
    assert criterion(result, "coverage").seqs == (1, 2881)
    assert result.window["hours"] == 48.0
    assert len(result.segments) == 1


def test_start_up_failure_blip_is_one_review_with_an_action_so_accept() -> None:
    result = judge(window(shape=failures_at([3, 4])))
    failures = criterion(result, "shadow_failures")
    assert failures.status == "REVIEW"
    assert failures.seqs == (4, 5)
    assert "timeout after 2s" in failures.figure
    assert failures.action
    assert result.verdict == "ACCEPT"


def test_start_up_blip_without_a_policy_action_needs_a_human() -> None:
    result = judge(window(shape=failures_at([3])), policy=Policy(startup_action=""))
    assert criterion(result, "shadow_failures").status == "REVIEW"
    assert result.verdict == "EXTEND"


def test_failures_after_start_up_are_persistent_and_fail() -> None:
    result = judge(window(shape=failures_at([3, 600])))
    assert criterion(result, "shadow_failures").status == "FAIL"
    assert criterion(result, "shadow_failures").seqs == (601,)
    assert result.verdict == "REJECT"


def test_too_many_start_up_failures_fail() -> None:
    result = judge(window(shape=failures_at([1, 2, 3, 4])))
    assert criterion(result, "shadow_failures").status == "FAIL"


def test_untriaged_off_path_divergences_extend() -> None:
    samples = window(shape=divergences_at([100, 900], "apply_order_regime_at_entry"))
    result = judge(samples)
    div = criterion(result, "divergences")
    assert div.status == "REVIEW" and div.action is None
    assert div.seqs == (101, 901)
    assert result.verdict == "EXTEND"
    (cluster,) = result.clusters
    assert (cluster.signature, cluster.count) == ("counters|transition|apply_order_regime_at_entry", 2)


def test_triaging_every_cluster_turns_the_review_into_an_accept() -> None:
    samples = window(shape=divergences_at([100, 900], "apply_order_regime_at_entry"))
    triage = {"counters|transition|apply_order_regime_at_entry": "float rounding of regime, harmless"}
    result = judge(samples, triage=triage)
    assert criterion(result, "divergences").status == "REVIEW"
    assert result.verdict == "ACCEPT"
    assert result.clusters[0].triage == "float rounding of regime, harmless"


def test_two_reviews_extend_even_with_actions() -> None:
    def shape(minute: int) -> dict[str, Any]:
        return failures_at([2])(minute) | divergences_at([700], "apply_order_regime_at_entry")(minute)

    triage = {"counters|transition|apply_order_regime_at_entry": "known"}
    result = judge(window(shape=shape), triage=triage)
    assert statuses(result) == {"coverage": "PASS", "shadow_failures": "REVIEW", "divergences": "REVIEW",
                                "integrity": "PASS"}  # fmt: skip
    assert result.verdict == "EXTEND"


def test_repeating_fill_event_cluster_rejects_even_when_triaged() -> None:
    samples = window(shape=divergences_at([200, 800, 801], "FillEvent"))
    result = judge(samples, triage={"counters|transition|FillEvent": "we think it is fine"}, domain=DOGE)
    div = criterion(result, "divergences")
    assert div.status == "FAIL"
    assert div.seqs == (201, 801, 802)
    assert result.verdict == "REJECT"


def test_the_hot_path_is_the_domains_or_the_policys_never_the_gates() -> None:
    """The gate knows no event names: the hot path is the domain's (Domain.hot_path_events), unless the
    policy names its own; without either, a repeating divergence is only a review."""
    samples = window(shape=divergences_at([200, 800, 801], "FillEvent"))
    assert criterion(judge(samples), "divergences").status == "REVIEW"
    doge = judge(samples, domain=DOGE)
    assert criterion(doge, "divergences").status == "FAIL"
    assert doge.to_dict()["policy"]["hot_path_events"] == sorted(DOGE.hot_path_events)
    own = load_policy('[divergences]\nhot_path_events = ["TimerTick"]\n')
    assert criterion(judge(samples, policy=own, domain=DOGE), "divergences").status == "REVIEW"
    assert criterion(judge(samples, policy=own), "divergences").status == "REVIEW"
    fills = load_policy('[divergences]\nhot_path_events = ["FillEvent"]\n')
    assert criterion(judge(samples, policy=fills), "divergences").status == "FAIL"


def test_a_single_hot_path_divergence_is_only_a_review() -> None:
    result = judge(window(shape=divergences_at([200], "FillEvent")), domain=DOGE)
    assert criterion(result, "divergences").status == "REVIEW"


def test_findings_clusters_by_signature_decide_over_the_counters() -> None:
    findings = [
        {"kind": "transition.state", "signature": FILL, "event_type": "FillEvent", "step": step}
        for step in (40, 12, 77)
    ]
    result = judge(window(shape=divergences_at([200, 800, 801], "FillEvent")), findings=findings, domain=DOGE)
    (cluster,) = result.clusters
    assert (cluster.signature, cluster.source, cluster.count) == (FILL, "findings", 3)
    assert (cluster.first, cluster.last) == ("step 12", "step 77")
    assert result.verdict == "REJECT"


def test_stalled_shadow_fails_coverage_and_names_the_stall() -> None:
    def stalled(minute: int) -> dict[str, Any]:
        frozen = min(minute, 1000) + max(0, minute - 1060)
        return {"transition_checks": 1000 + 50 * frozen}

    result = judge(window(shape=stalled))
    cov = criterion(result, "coverage")
    assert cov.status == "FAIL"
    assert cov.seqs == (1001, 1061)
    assert "stalled for 60.0 min" in cov.figure
    assert result.verdict == "REJECT"


def test_shadow_switched_off_fails_coverage() -> None:
    result = judge(window(shape=lambda m: {"enabled": m < 2000}))
    assert criterion(result, "coverage").status == "FAIL"
    assert criterion(result, "coverage").seqs[0] == 2001


def test_forty_hour_window_extends_by_default_and_fails_when_the_policy_says_so() -> None:
    samples = window(hours=40)
    extended = judge(samples)
    assert criterion(extended, "coverage").status == "REVIEW"
    assert "extend the watch by 8.0 h" in criterion(extended, "coverage").advice
    assert extended.verdict == "EXTEND"
    strict = judge(samples, policy=load_policy('[window]\nshort_window = "fail"\n'))
    assert criterion(strict, "coverage").status == "FAIL"
    assert strict.verdict == "REJECT"


def test_long_hole_in_the_window_extends_but_short_gaps_do_not() -> None:
    assert judge(window(gaps=range(100, 103))).verdict == "ACCEPT"
    holed = judge(window(gaps=range(100, 110)))
    assert criterion(holed, "coverage").status == "REVIEW"
    assert criterion(holed, "coverage").seqs == (100, 111)
    assert holed.verdict == "EXTEND"


def test_counter_reset_mid_window_splits_segments_without_false_alarm() -> None:
    def restarted(minute: int) -> dict[str, Any]:
        # The bot restarted at minute 1440: every counter starts again from zero.
        if minute < 1440:
            return {}
        return {"transition_checks": 50 * (minute - 1440), "invariant_checks": 50 * (minute - 1440)}

    samples = window(shape=restarted)
    samples[1440]["restart"] = True  # the restart marker watch writes when the process changes
    result = judge(samples)
    assert result.verdict == "ACCEPT"
    assert statuses(result) == {"coverage": "PASS", "shadow_failures": "PASS", "divergences": "PASS",
                                "integrity": "PASS"}  # fmt: skip
    assert [(s.first_seq, s.last_seq) for s in result.segments] == [(1, 1440), (1441, 2881)]


def test_failures_right_after_a_restart_count_as_that_segments_start_up() -> None:
    def restarted(minute: int) -> dict[str, Any]:
        if minute < 1440:
            return {"shadow_failures": 0}
        return {"transition_checks": 50 * (minute - 1440), "shadow_failures": 1 if minute >= 1445 else 0}

    result = judge(window(shape=restarted))
    assert criterion(result, "shadow_failures").status == "REVIEW"
    assert criterion(result, "shadow_failures").seqs == (1446,)
    assert result.segments[1].max["shadow_failures"] == 1


def test_markdown_and_json_are_deterministic_and_carry_the_verdict() -> None:
    samples = window(shape=divergences_at([100], "TimerTick"))
    first, second = judge(samples), judge(list(samples))
    assert json.dumps(first.to_dict(), sort_keys=True) == json.dumps(second.to_dict(), sort_keys=True)
    text = render_gate_markdown(first)
    assert text.startswith("# Shadow gate: EXTEND")
    assert "SYNTHETIC DATA" in text
    assert r"`counters\|transition\|TimerTick`" in text  # pipes escaped inside the table
    assert first.to_dict()["exit_code"] == 3


def test_default_policy_file_is_the_policy_in_code() -> None:
    text = (Path(__file__).parent.parent / "shadowdiff" / "default_policy.toml").read_text()
    assert load_policy(text) == Policy()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[window]\nhours = 'two days'\n", "wrong type"),
        ("[window]\nhuors = 40\n", "unknown policy key"),
        ("[window]\nshort_window = 'maybe'\n", "extend"),
        ("hours = 40\n", "must be a [section]"),
        ("[window\n", "not TOML"),
    ],
)
def test_bad_policy_is_bad_input(text: str, message: str) -> None:
    with pytest.raises(BadInput, match=re.escape(message)):
        load_policy(text, where="p.toml")


def test_malformed_jsonl_line_is_named_by_file_and_line() -> None:
    lines = ['{"seq": 1}\n', "\n", '{"seq": 2,\n']
    with pytest.raises(BadInput) as caught:
        list(read_json_objects(lines, "w.jsonl"))
    assert caught.value.where == "w.jsonl:3"


def test_time_going_backwards_is_bad_input() -> None:
    samples = window(hours=1)
    samples[10], samples[11] = samples[11], samples[10]
    with pytest.raises(BadInput, match="backwards"):
        judge(samples)


def test_sample_without_zone_or_with_a_bad_seq_is_bad_input() -> None:
    with pytest.raises(BadInput, match="seq"):
        judge([{"ts": "2026-01-01T00:00:00Z", "seq": "1"}])
    assert judge([{"ts": "2026-01-01T00:00:00Z"}]).series[0].seq == 1  # the position stands in
    with pytest.raises(BadInput, match="zone"):
        judge([{"ts": "2026-01-01T00:00:00", "seq": 1}])


def run_gate(tmp_path: Path, samples: list[dict[str, Any]], *extra: str) -> Any:
    path = tmp_path / "w.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    main = click.Group("shadowdiff")
    runbook_cli.register(main)
    return CliRunner().invoke(main, ["gate", str(path), *extra])


@pytest.mark.parametrize(
    ("shape", "code", "verdict"),
    [
        (None, 0, "ACCEPT"),
        (divergences_at([5, 9], "FillEvent"), 1, "REJECT"),
        (failures_at([1]), 0, "ACCEPT"),
    ],
)
def test_gate_cli_exit_codes(tmp_path: Path, shape: Shape | None, code: int, verdict: str) -> None:
    done = run_gate(tmp_path, window(shape=shape))
    assert done.exit_code == code, done.output
    assert done.stdout.startswith(f"verdict: {verdict}\n")


def test_gate_cli_extend_is_three_and_writes_every_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["--report", str(out / "g.json"), "--markdown", str(out / "g.md"), "--html", str(out / "g.html")]
    done = run_gate(tmp_path, window(hours=40), *args)
    assert done.exit_code == 3
    assert json.loads((out / "g.json").read_text())["verdict"] == "EXTEND"
    assert (out / "g.md").read_text().startswith("# Shadow gate: EXTEND")
    assert "<svg" in (out / "g.html").read_text()


def test_gate_cli_names_a_malformed_line_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    lines = [json.dumps(s) for s in window(hours=1)]
    lines[2] = lines[2][:-5]
    path.write_text("\n".join(lines) + "\n")
    main = click.Group("shadowdiff")
    runbook_cli.register(main)
    done = CliRunner().invoke(main, ["gate", str(path)])
    assert done.exit_code == 2
    assert done.stderr.startswith(f"shadowdiff: error: {path}:3: not JSON (")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_gate_cli_policy_file_and_bad_policy(tmp_path: Path) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text("[window]\nhours = 40\n")
    assert run_gate(tmp_path, window(hours=40), "--policy", str(policy)).exit_code == 0
    policy.write_text("[window]\nhorus = 40\n")
    done = run_gate(tmp_path, window(hours=40), "--policy", str(policy))
    assert done.exit_code == 2
    assert done.stderr == f"shadowdiff: error: {policy}: unknown policy key [window] horus\n"
