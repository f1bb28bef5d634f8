"""Corpus readers: every format streams, bad input names its place, and the fixtures all load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shadowdiff_doge.corpusgen import generate

from shadowdiff.model.errors import BadInput
from shadowdiff.model.records import PatchRecord, Record, Snapshot
from shadowdiff.runtime.corpus import LogWriter, expand, read_items


def test_all_twenty_upstream_fixtures_load_as_one_slot_each(upstream: Path) -> None:
    items = list(read_items([upstream]))
    snapshots = [i for i in items if isinstance(i, Snapshot)]
    assert len(snapshots) == 20 == len({s.slot for s in snapshots})
    assert sum(isinstance(i, Record) for i in items) == 27


@pytest.mark.parametrize("name", ["log.jsonl", "log.jsonl.gz", "log.msgpack", "log.msgpack.gz"])
def test_every_log_format_round_trips_the_same_records(tmp_path: Path, name: str) -> None:
    records = list(generate(300, slots=2, seed=4, outcomes=True))
    with LogWriter(tmp_path / name) as writer:
        for record in records:
            writer.write(record)
    items = list(read_items([tmp_path / name]))
    steps = [i for i in items if isinstance(i, Record)]
    assert len(steps) == sum(r["kind"] in ("step", "call") for r in records)
    assert all(s.outcome is not None for s in steps)
    assert sum(isinstance(i, PatchRecord) for i in items) == sum(r["kind"] == "patch" for r in records)
    assert [s.seq for s in steps] == [r["seq"] for r in records if r["kind"] in ("step", "call")]


def test_a_log_must_open_with_a_header_and_a_bad_record_names_its_line(tmp_path: Path) -> None:
    headless = tmp_path / "headless.jsonl"
    headless.write_text(
        json.dumps({"kind": "step", "slot": "a", "event": {"type": "TimerTick", "payload": {}}}) + "\n"
    )
    with pytest.raises(BadInput, match="starts with a 'header'"):
        list(read_items([headless]))
    raw = list(generate(20, slots=1, seed=1))
    records = [json.dumps(r) for r in raw]
    records.insert(5, json.dumps({"kind": "teleport", "slot": "slot-0"}))
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(records) + "\n")
    seen = []
    with pytest.raises(BadInput) as caught:
        for item in read_items([bad]):
            seen.append(item)
    assert caught.value.where == f"{bad}:6" and "unknown record kind 'teleport'" in str(caught.value)
    before = sum(r["kind"] in ("step", "call") for r in raw[:5])
    assert before >= 2 and sum(isinstance(i, Record) for i in seen) == before  # all before the bad line


def test_garbage_in_a_msgpack_log_names_its_byte_offset(tmp_path: Path) -> None:
    log = tmp_path / "g.msgpack"
    with LogWriter(log) as writer:
        for record in generate(10, slots=1, seed=2):
            writer.write(record)
    good = log.stat().st_size
    with log.open("ab") as fh:
        fh.write(b"\xc1\xc1\xc1")
    with pytest.raises(BadInput, match=f"byte {good}: not msgpack"):
        list(read_items([log]))


def test_directories_expand_sorted_and_missing_paths_are_bad_input(tmp_path: Path) -> None:
    (tmp_path / "b.json").write_text("{}")
    (tmp_path / "a.jsonl").write_text("")
    (tmp_path / "notes.txt").write_text("")
    assert [p.name for p in expand([tmp_path])] == ["a.jsonl", "b.json"]
    with pytest.raises(BadInput, match="no such file"):
        expand([tmp_path / "missing"])


_torn_log = [dict(r) for r in generate(30, slots=2, seed=9)]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 10_000), st.integers(16, 4096))
def test_a_record_cut_anywhere_is_named_at_its_first_byte_and_the_rest_is_read(
    tmp_path_factory, cut: int, chunk: int
) -> None:
    """However the file is read in chunks and wherever the last record was cut, every whole record is
    read and the notice names the torn record's first byte and its length."""
    import msgpack

    import shadowdiff.runtime.corpus as corpus

    whole = b"".join(msgpack.packb(r) for r in _torn_log[:-1])
    last = msgpack.packb(_torn_log[-1])
    cut = 1 + cut % (len(last) - 1)
    log = tmp_path_factory.mktemp("torn") / "torn.msgpack"
    log.write_bytes(whole + last[:cut])
    expected = list(read_items([_write_whole(tmp_path_factory, whole)]))
    old, corpus.READ_CHUNK = corpus.READ_CHUNK, chunk
    try:
        notices: list[str] = []
        got = list(read_items([log], notices=notices.append))
    finally:
        corpus.READ_CHUNK = old
    assert notices == [f"{log}: byte {len(whole)}: torn last record skipped ({cut} bytes)"]
    assert [(type(i).__name__, getattr(i, "slot", None)) for i in got] == [
        (type(i).__name__, getattr(i, "slot", None)) for i in expected
    ]


def _write_whole(factory, data: bytes) -> Path:
    path = factory.mktemp("whole") / "whole.msgpack"
    path.write_bytes(data)
    return path
