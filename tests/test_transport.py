"""The msgpack framing: a byte stream cut anywhere splits into the raw bytes of each object, undecoded."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowdiff.shadow.transport import FramingError, MsgpackFraming

wire_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False),
              st.text(max_size=6), st.binary(max_size=6)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


@given(st.lists(wire_values, min_size=1, max_size=12), st.lists(st.integers(1, 40), max_size=30))
def test_any_cut_of_the_stream_gives_back_every_object_whole(values: list, cuts: list[int]) -> None:
    stream = b"".join(msgpack.packb(v, use_bin_type=True) for v in values)
    framing = MsgpackFraming()
    raw: list[bytes] = []
    at = 0
    for size in [*cuts, len(stream)]:
        raw += framing.feed(stream[at : at + size])
        at += size
        if at >= len(stream):
            break
    assert b"".join(raw) == stream  # nothing lost, nothing repeated, in order
    assert [framing.decode(r) for r in raw] == values


def test_garbage_keeps_the_objects_before_it_and_fails_the_next_read() -> None:
    framing = MsgpackFraming()
    good = msgpack.packb({"id": 1, "ok": {}})
    got = framing.feed(good + msgpack.packb({"id": 2})[:2])
    assert got == [good]
    got = framing.feed(msgpack.packb({"id": 2})[2:] + b"\xc1 not msgpack")
    assert [framing.decode(r) for r in got] == [{"id": 2}]
    with pytest.raises(FramingError, match=r"not msgpack at byte \d+"):
        framing.feed(b"")


def test_bytes_that_are_not_utf8_fail_when_decoded_not_when_split() -> None:
    framing = MsgpackFraming()
    bad_string = b"\x81\xa2id\xa3\xff\xfe\xfd"  # {"id": <3 bytes that are not UTF-8>}
    [raw] = framing.feed(bad_string)
    with pytest.raises(FramingError, match="not msgpack"):
        framing.decode(raw)
