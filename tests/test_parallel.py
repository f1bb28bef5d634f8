"""Replay over worker processes (--jobs): the same report, findings and errors as one process."""

from __future__ import annotations

import json
import os

from click.testing import CliRunner
from conftest import MISBEHAVING, children_of
from hypothesis import given
from hypothesis import strategies as st
from shadowdiff_doge.corpusgen import generate

from shadowdiff.cli.main import main
from shadowdiff.model.records import Gap, Record
from shadowdiff.runtime.corpus import LogWriter
from shadowdiff.runtime.parallel import owned


def replay(*args: str):
    return CliRunner().invoke(main, ["replay", *args], catch_exceptions=False)


def report_of(path) -> dict:
    report = json.loads(path.read_text())
    report["run"].pop("jobs")
    return report


def test_jobs_give_the_report_and_findings_of_one_process(tmp_path) -> None:
    log = tmp_path / "four-slots.msgpack"
    with LogWriter(log) as writer:
        for record in generate(1600, slots=4, seed=11):
            writer.write(record)
    shadow = " ".join([*MISBEHAVING, "--mutate-price-ts-mod", "7"])
    reports, findings = [], []
    for jobs in ("1", "2", "3"):
        report, found = tmp_path / f"r{jobs}.json", tmp_path / f"f{jobs}.jsonl"
        out = replay(str(log), "--shadow", shadow, "--jobs", jobs, "--deterministic",
                     "--report", str(report), "--findings", str(found))  # fmt: skip
        assert out.exit_code == 1, out.output
        reports.append(report_of(tmp_path / f"r{jobs}.json"))
        # the same findings; a single process writes them as answers are processed (a resent step can
        # come after a later one), the merge writes them in step order
        findings.append(sorted(found.read_text().splitlines()))
    assert reports[0]["summary"]["divergences"] > 0 and reports[0]["summary"]["slots"] == 4
    assert reports[1] == reports[0] and reports[2] == reports[0]
    assert findings[1] == findings[0] and findings[2] == findings[0]
    assert children_of(os.getpid()) == []  # every worker and every shadow reaped


def test_bad_input_stops_every_worker_at_the_same_record_and_keeps_what_came_before(tmp_path) -> None:
    log = tmp_path / "broken.jsonl"
    lines = [json.dumps(r) for r in generate(300, slots=3, seed=4)]
    lines.insert(200, '{"kind": "step", "slot": "slot-1", "event": {"type": "NoSuchEvent"')
    log.write_text("\n".join(lines) + "\n")
    one = replay(str(log), "--report", str(tmp_path / "one.json"), "--deterministic")
    two = replay(str(log), "--jobs", "2", "--report", str(tmp_path / "two.json"), "--deterministic")
    assert one.exit_code == two.exit_code == 2
    assert report_of(tmp_path / "one.json") == report_of(tmp_path / "two.json")
    [error_line] = [line for line in two.output.splitlines() if line.startswith("shadowdiff: error:")]
    assert "broken.jsonl:201: " in error_line
    assert report_of(tmp_path / "two.json")["summary"]["steps"] > 150


slot_streams = st.lists(st.sampled_from(["a", "b", "c", "d", "e", None]), max_size=60)


@given(slot_streams, st.integers(1, 5))
def test_every_item_has_exactly_one_worker_and_a_slot_never_moves(slots: list, workers: int) -> None:
    items = [Gap(None, 1, "") if s is None else Record(s, None, None, None, None, "") for s in slots]  # type: ignore[arg-type]
    shares = [list(owned(items, k, workers)) for k in range(workers)]
    for position in range(len(items)):
        assert sum(share[position][0] for share in shares) == 1
    for slot in set(slots) - {None}:
        holders = {k for k, share in enumerate(shares) for mine, item in share if mine and item.slot == slot}
        assert len(holders) == 1
