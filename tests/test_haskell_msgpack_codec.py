"""The Haskell port (`doge-core-exe --msgpack`) over real pipes: codec round trips, the handshake,
error handling, exit codes, sessions and deltas, the from_dict leniency, and the seeded mutants.

The binary is built by build.sh through the session fixture ``haskell_exe`` (conftest): a missing
toolchain fails these tests, it never skips them.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import select
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shadowdiff_doge.reference import state_machine as sm

OPS = {"transition", "check_invariants", "call", "open", "step", "patch", "get", "close"}


class Server:
    """One `doge-core-exe --msgpack` process; every read has a deadline, so a hang fails fast."""

    def __init__(self, exe: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(exe), "--msgpack", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        self.next_id = 0
        self.raw = b""

    def send(self, op: str, **fields: Any) -> int:
        self.next_id += 1
        self.write(msgpack.packb({"op": op, "id": self.next_id, **fields}, use_bin_type=True))
        return self.next_id

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def read(self, timeout: float = 10.0) -> Any:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            for obj in self.unpacker:
                return obj
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from doge-core-exe")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if not ready:
                continue
            data = os.read(self.proc.stdout.fileno(), 1 << 16)
            if not data:
                raise EOFError("doge-core-exe closed its stdout")
            self.raw += data
            self.unpacker.feed(data)

    def req(self, op: str, **fields: Any) -> Any:
        rid = self.send(op, **fields)
        resp = self.read()
        assert resp["id"] == rid
        return resp

    def ok(self, op: str, **fields: Any) -> Any:
        resp = self.req(op, **fields)
        assert "ok" in resp, resp
        return resp["ok"]

    def close(self, timeout: float = 10.0) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


@pytest.fixture
def server(haskell_exe: Path):
    srv = Server(haskell_exe)
    yield srv
    srv.kill()


def same(a: Any, b: Any) -> bool:
    """Exact wire identity: types, key order, float bits (NaN == NaN, -0.0 != 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack(">d", a) == struct.pack(">d", b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def by_value(a: Any, b: Any) -> bool:
    """Equality as the diff compares: ints and floats by value, NaN equals NaN."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(by_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(by_value(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


# ----------------------------------------------------------------------------- codec

wire_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.binary(),
    lambda inner: st.lists(inner, max_size=20) | st.dictionaries(st.text(), inner, max_size=20),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=wire_values)
def test_arbitrary_wire_values_round_trip(server: Server, value: Any) -> None:
    assert same(server.ok("echo", value=value)["value"], value)


def test_all_widths_and_forms_round_trip(server: Server) -> None:
    values = [
        0,
        127,
        128,
        255,
        256,
        65535,
        65536,
        2**32 - 1,
        2**32,
        2**63 - 1,
        2**63,
        2**64 - 1,
        -1,
        -32,
        -33,
        -128,
        -129,
        -32768,
        -32769,
        -(2**31),
        -(2**31) - 1,
        -(2**63),
        "",
        "x" * 31,
        "x" * 32,
        "é" * 200,
        "€" * 30000,
        b"",
        b"\x00" * 300,
        b"\xff" * 70000,
        list(range(15)),
        list(range(16)),
        list(range(70000)),
        {str(i): i for i in range(15)},
        {str(i): i for i in range(16)},
        {str(i): i for i in range(70000)},
        -0.0,
        1e308,
        5e-324,
        float("inf"),
    ]
    for v in values:
        assert same(server.ok("echo", value=v)["value"], v), repr(v)[:80]


def test_float32_is_read_and_answered_as_float64(server: Server) -> None:
    packer = msgpack.Packer(use_single_float=True)
    server.write(packer.pack({"op": "echo", "id": 1, "value": [0.1, 1.5]}))
    resp = server.read()
    assert resp["ok"]["value"] == [struct.unpack(">f", struct.pack(">f", 0.1))[0], 1.5]
    # and the answer itself uses float64 (0xcb), never float32 (0xca)
    assert b"\xcb" in server.raw and b"\xca" not in server.raw


def test_handshake(server: Server) -> None:
    resp = server.req("hello", protocol=1)
    ok = resp["ok"]
    assert ok["protocol"] == 1
    assert isinstance(ok["implementation"], str) and isinstance(ok["version"], str)
    assert set(ok["ops"]) >= OPS


def test_malformed_requests_get_errors_and_the_server_carries_on(server: Server) -> None:
    state = base_state()
    bad = [
        ("transition", {"event": tick(1.0)}, "bad_request"),  # no state
        ("transition", {"state": state}, "bad_request"),  # no event
        ("transition", {"state": 5, "event": tick(1.0)}, "bad_request"),
        ("transition", {"state": state, "event": {"type": "Nope", "payload": {}}}, "bad_request"),
        (
            "transition",
            {"state": state, "event": {"type": "PriceTick", "payload": {"price": "x", "timestamp": 1}}},
            "bad_request",
        ),
        ("transition", {"state": {"cycle_a": "2.5"}, "event": tick(1.0)}, "bad_request"),
        ("check_invariants", {"state": {"orders": None}}, "bad_request"),
        ("frobnicate", {}, "unsupported_op"),
        ("call", {"function": "nope", "args": {}}, "unsupported_op"),
        ("get", {"session": 99}, "bad_request"),
        ("step", {"session": 99, "event": tick(1.0)}, "bad_request"),
        ("close", {"session": "x"}, "bad_request"),
        ("patch", {"session": 99, "delta": {}}, "bad_request"),
    ]
    for op, fields, kind in bad:
        resp = server.req(op, **fields)
        assert resp["error"]["kind"] == kind, (op, fields, resp)
        assert resp["error"]["message"]
    # a request that is not a map, and one without op
    server.write(msgpack.packb([1, 2, 3]))
    assert server.read()["error"]["kind"] == "bad_request"
    server.write(msgpack.packb({"id": 77}))
    resp = server.read()
    assert resp["id"] == 77 and resp["error"]["kind"] == "bad_request"
    # an ext type is msgpack, so it is a bad request, not the end of the stream
    server.write(msgpack.packb({"op": "echo", "id": 78, "value": msgpack.ExtType(5, b"abc")}))
    assert server.read()["error"]["kind"] == "bad_request"
    assert server.ok("hello", protocol=1)["protocol"] == 1
    assert server.close() == 0


def test_garbage_bytes_end_the_server_with_a_message(haskell_exe: Path) -> None:
    done = subprocess.run(
        [str(haskell_exe), "--msgpack"],
        input=msgpack.packb({"op": "hello", "id": 1}) + b"\xc1",
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert done.returncode != 0
    assert done.stderr.strip()
    answers = list(msgpack.Unpacker(__import__("io").BytesIO(done.stdout), raw=False))
    assert answers and answers[0]["id"] == 1  # what came before the garbage was answered


def test_eof_exits_zero(haskell_exe: Path) -> None:
    done = subprocess.run(
        [str(haskell_exe), "--msgpack"], input=b"", capture_output=True, timeout=20, check=False
    )
    assert done.returncode == 0 and done.stdout == b""
    reqs = b"".join(msgpack.packb({"op": "hello", "id": i, "protocol": 1}) for i in range(3))
    done = subprocess.run(
        [str(haskell_exe), "--msgpack"], input=reqs, capture_output=True, timeout=20, check=False
    )
    assert done.returncode == 0
    assert [r["id"] for r in msgpack.Unpacker(__import__("io").BytesIO(done.stdout), raw=False)] == [0, 1, 2]


def test_pipelined_requests_are_answered_in_order(server: Server) -> None:
    state = base_state()
    n = 2000
    blob = b"".join(
        msgpack.packb(
            {
                "op": "transition",
                "id": i,
                "state": state,
                "event": tick(1000.0 + i),
                "config": {},
                "order_size_usd": 2.0,
                "order_sizes": None,
            }
        )
        for i in range(n)
    )
    writer = threading.Thread(target=server.write, args=(blob,))
    writer.start()
    ids = [server.read()["id"] for _ in range(n)]
    writer.join()
    assert ids == list(range(n))


# ----------------------------------------------------------------------------- reducer parity


def ref_step(
    state: dict[str, Any],
    event: dict[str, Any],
    cfg: dict[str, Any],
    size: float,
    sizes: dict[str, float] | None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    events = {
        n: getattr(sm, n)
        for n in ("PriceTick", "TimerTick", "FillEvent", "RecoveryFillEvent", "RecoveryCancelEvent")
    }
    nxt, actions = sm.transition(
        sm.from_dict(state), events[event["type"]](**event["payload"]), sm.EngineConfig(**cfg), size, sizes
    )
    import dataclasses

    return sm.to_dict(nxt), [{"type": type(a).__name__, "payload": dataclasses.asdict(a)} for a in actions]


def random_event(rng: random.Random, state: dict[str, Any], t: float) -> dict[str, Any]:
    orders, recs = state["orders"], state["recovery_orders"]
    market = state["market_price"] or 0.1
    r = rng.random()
    if r < 0.35:
        price = (
            rng.choice(orders)["price"]
            if orders and rng.random() < 0.1
            else market * (1 + rng.gauss(0, 0.01))
        )
        return {"type": "PriceTick", "payload": {"price": price, "timestamp": t}}
    if r < 0.6 or not (orders or recs):
        return {"type": "TimerTick", "payload": {"timestamp": t}}
    if r < 0.85 and orders:
        o = rng.choice(orders)
        return {
            "type": "FillEvent",
            "payload": {
                "order_local_id": o["local_id"],
                "txid": "TX",
                "side": o["side"],
                "price": o["price"],
                "volume": o["volume"],
                "fee": rng.choice([0.01, 0.004, 0.0]),
                "timestamp": t,
            },
        }
    if recs:
        rc = rng.choice(recs)
        if rng.random() < 0.6:
            return {
                "type": "RecoveryFillEvent",
                "payload": {
                    "recovery_id": rc["recovery_id"],
                    "txid": "R",
                    "side": rc["side"],
                    "price": rc["price"] * (1 + rng.gauss(0, 0.01)),
                    "volume": rc["volume"],
                    "fee": 0.003,
                    "timestamp": t,
                },
            }
        return {
            "type": "RecoveryCancelEvent",
            "payload": {"recovery_id": rc["recovery_id"], "txid": "R", "timestamp": t},
        }
    return {"type": "TimerTick", "payload": {"timestamp": t}}


def apply_delta(state: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    out = dict(state)
    for k, v in delta.get("set", {}).items():
        out[k] = v
    for k, v in delta.get("append", {}).items():
        out[k] = list(out[k]) + list(v)
    return out


def test_fixtures_match_the_reference_stateless_and_in_sessions(server: Server, upstream: Path) -> None:
    files = sorted(upstream.glob("*.json"))
    assert len(files) >= 20
    for n, f in enumerate(files):
        fx = json.loads(f.read_text())
        cfg, size, sizes = fx["config"], fx["order_size_usd"], fx.get("order_sizes")
        ref = sm.to_dict(sm.from_dict(fx["initial_state"]))
        server.ok("open", session=n, state=fx["initial_state"])
        mirror = server.ok("get", session=n)["state"]
        assert by_value(mirror, ref), f.name
        for ev in fx["events"]:
            nxt, actions = ref_step(ref, ev, cfg, size, sizes)
            got = server.ok(
                "transition",
                state=ref,
                event=ev,
                config=cfg,
                order_size_usd=size,
                order_sizes=sizes,
                with_invariants=True,
            )
            assert by_value(got["state"], nxt), (f.name, ev)
            assert by_value(got["actions"], actions), (f.name, ev)
            assert got["violations"] == sm.check_invariants(sm.from_dict(nxt))
            stepped = server.ok(
                "step", session=n, event=ev, config=cfg, order_size_usd=size, order_sizes=sizes
            )
            mirror = apply_delta(mirror, stepped["delta"])
            assert by_value(mirror, nxt), (f.name, ev)
            ref = nxt
        assert by_value(server.ok("get", session=n)["state"], ref)
        server.ok("close", session=n)


def test_sessions_deltas_are_canonical_and_reproduce_get(server: Server) -> None:
    rng = random.Random(5)
    cfg = {"max_recovery_slots": 1, "s1_orphan_after_sec": 300.0, "s2_orphan_after_sec": 300.0}
    ref = sm.to_dict(sm.from_dict(base_state(market=0.1)))
    server.ok("open", session=7, state=ref)
    mirror = server.ok("get", session=7)["state"]
    t = 1000.0
    for i in range(400):
        t += rng.choice([1.0, 60.0, 400.0])
        ev = random_event(rng, ref, t)
        nxt, actions = ref_step(ref, ev, cfg, 2.0, None)
        out = server.ok(
            "step",
            session=7,
            event=ev,
            config=cfg,
            order_size_usd=2.0,
            order_sizes=None,
            with_invariants=True,
        )
        delta = out["delta"]
        # canonical: every named field changed; appends exactly for growth at the end
        for k, v in delta.get("set", {}).items():
            assert not by_value(ref[k], v), (i, k)
            if isinstance(v, list) and k in ref:
                old = ref[k]
                assert not (len(v) > len(old) and by_value(v[: len(old)], old)), (i, k, "should be append")
        for k, v in delta.get("append", {}).items():
            assert v and by_value(nxt[k], list(ref[k]) + list(v)), (i, k)
        for k in ref:
            if k not in delta.get("set", {}) and k not in delta.get("append", {}):
                assert by_value(ref[k], nxt[k]), (i, k, "changed but not named")
        mirror = apply_delta(mirror, delta)
        assert by_value(mirror, nxt), i
        assert by_value(out["actions"], actions), i
        assert out["violations"] == sm.check_invariants(sm.from_dict(nxt))
        ref = nxt
    assert by_value(server.ok("get", session=7)["state"], ref)
    # patch (a resync) and call on the session
    server.ok("patch", session=7, delta={"set": {"cycle_a": 41, "long_only": True}, "append": {"orders": []}})
    got = server.ok("get", session=7)["state"]
    assert got["cycle_a"] == 41 and got["long_only"] is True
    lid = got["orders"][0]["local_id"] if got["orders"] else 1
    out = server.ok(
        "call",
        session=7,
        function="apply_order_regime_at_entry",
        args={"local_id": lid, "regime_at_entry": "Bullish"},
    )
    after = apply_delta(got, out["delta"])
    assert by_value(after, server.ok("get", session=7)["state"])
    server.ok("close", session=7)
    assert server.req("get", session=7)["error"]["kind"] == "bad_request"


@pytest.mark.parametrize(
    "state",
    [
        {"cycle_a": "3", "cycle_b": " 1_000 ", "next_order_id": 2.9, "total_round_trips": True},
        {"cycle_a": "2.5"},
        {"cycle_a": None},
        {"now": "1e3", "market_price": " 2.5 ", "total_fees": "-Infinity", "cooldown_until_a": "nan"},
        {"now": None},
        {"total_profit": 4.5},
        {"total_profit": 4.5, "total_settled_usd": 1},
        {"profit_pct": 2.0},
        {"profit_pct": "x"},
        {"mode_source": "  BALANCE "},
        {"mode_source": "sideways"},
        {"mode_source": None},
        {"long_only": "", "short_only": [0]},
        {"s2_entered_at": "whenever", "last_price_update_at": [1, 2], "last_refresh_direction_a": 5},
        {"orders": [1, "x", {"side": "", "role": None, "trade_id": 5, "txid": 1.0, "local_id": "7"}]},
        {
            "orders": [
                {"side": True, "regime_at_entry": "٢"},
                {"regime_at_entry": " bullish "},
                {"regime_at_entry": 2.9},
                {"regime_at_entry": 7},
                {"regime_at_entry": False},
                {"regime_at_entry": "ranging"},
                {"regime_at_entry": "03"},
                {"regime_at_entry": [2]},
            ]
        },
        {"orders": [{"regime_at_entry": "²"}]},
        {"orders": [{"regime_at_entry": float("nan")}]},
        {"orders": "not a list"},
        {"orders": 5},
        {
            "recovery_orders": [{"reason": "", "entry_filled_at": "12"}],
            "completed_cycles": [{"from_recovery": "no"}],
        },
        {"next_recovery_id": "99999999999999999999"},
    ],
)
def test_from_dict_leniency_matches_the_reference(server: Server, state: dict[str, Any]) -> None:
    try:
        expected: Any = sm.to_dict(sm.from_dict(state))
    except (TypeError, ValueError, OverflowError):
        expected = None
    resp = server.req("open", session=1, state=state)
    if expected is None:
        assert resp["error"]["kind"] == "bad_request", resp
        return
    assert "ok" in resp, resp
    try:
        msgpack.packb(expected)
    except OverflowError:  # an int past 64 bits: no msgpack side can send it back
        assert server.req("get", session=1)["error"]["kind"] == "internal"
        return
    got = server.ok("get", session=1)["state"]
    assert list(got) == list(expected)
    assert by_value(got, expected)


# ----------------------------------------------------------------------------- mutants


def list_mutants(exe: Path) -> list[list[str]]:
    out = subprocess.run([str(exe), "--list-mutants"], capture_output=True, text=True, check=True, timeout=20)
    return [line.split("\t") for line in out.stdout.splitlines()]


def test_mutant_catalogue(mutant_exe: Path) -> None:
    rows = list_mutants(mutant_exe)
    assert len(rows) >= 15
    assert all(len(r) == 3 and all(r) for r in rows)
    names = [r[0] for r in rows]
    assert len(set(names)) == len(names)
    failures = [n for n in names if n.startswith(("crash_", "hang_", "garbage_"))]
    assert len(failures) >= 3
    assert {n.split("_")[0] for n in failures} == {"crash", "hang", "garbage"}
    assert set(MUTANT_CASES) | set(TYPE_MUTANT_CASES) | set(FAILURE_CASES) == set(names)


@pytest.mark.parametrize(
    "flag", [["--mutant", "cycle_max_dropped"], ["--msgpack", "--mutant", "x"], ["--list-mutants"]]
)
def test_the_production_binary_refuses_mutants_in_one_line(haskell_exe: Path, flag: list[str]) -> None:
    """doge-core-exe (what a takeover ships) has no mutants: the flags are refused, exit 2, one line
    naming doge-core-mutants, before any input is read."""
    done = subprocess.run([str(haskell_exe), *flag], input=b"", capture_output=True, timeout=20, check=False)
    assert done.returncode == 2 and done.stdout == b""
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("doge-core-exe: --") and "doge-core-mutants" in lines[0]


def test_the_production_binary_holds_no_mutant_code(haskell_exe: Path, mutant_exe: Path) -> None:
    """No mutant's name, no Mutants/Sabotage module and no sabotage message is in doge-core-exe's bytes
    (the mutants are compiled out, not switched off); its --help does not mention them, while
    doge-core-mutants carries them all and says so."""

    def help_of(exe: Path) -> str:
        done = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=20, check=True)
        return done.stdout + done.stderr

    assert "mutant" not in help_of(haskell_exe).lower() and "--mutant" in help_of(mutant_exe)
    names = [row[0] for row in list_mutants(mutant_exe)]
    production, mutants = haskell_exe.read_bytes(), mutant_exe.read_bytes()
    markers = [n.encode() for n in names] + [
        b"Mutants.",
        b"Sabotage",
        b"waiting for price convergence",
        b"Int64 field",
        b"must be None outside",
    ]
    assert [m for m in markers if m in production] == []
    assert [m for m in markers if m not in mutants] == []


def order(lid: int, side: str, role: str, price: float, trade: str, **kw: Any) -> dict[str, Any]:
    return {
        "local_id": lid,
        "side": side,
        "role": role,
        "price": price,
        "volume": 13.0,
        "trade_id": trade,
        "cycle": 1,
        **kw,
    }


def base_state(market: float = 100.0, **kw: Any) -> dict[str, Any]:
    state = {
        "market_price": market,
        "now": 1000.0,
        "orders": [
            order(1, "buy", "entry", round(market * 0.998, 6), "B", placed_at=1000.0),
            order(2, "sell", "entry", round(market * 1.002, 6), "A", placed_at=1000.0),
        ],
        "next_order_id": 3,
    }
    state.update(kw)
    return state


def tick(t: float) -> dict[str, Any]:
    return {"type": "TimerTick", "payload": {"timestamp": t}}


def price(p: float, t: float = 1000.0) -> dict[str, Any]:
    return {"type": "PriceTick", "payload": {"price": p, "timestamp": t}}


def fill(lid: int, p: float, fee: float = 0.01, t: float = 1001.0, txid: str = "TX") -> dict[str, Any]:
    return {
        "type": "FillEvent",
        "payload": {
            "order_local_id": lid,
            "txid": txid,
            "side": "buy",
            "price": p,
            "volume": 13.0,
            "fee": fee,
            "timestamp": t,
        },
    }


S1A = base_state(
    orders=[
        order(1, "buy", "exit", 99.0, "A", entry_price=101.0, entry_filled_at=1000.0),
        order(2, "buy", "entry", 99.8, "B", placed_at=1000.0),
    ]
)
S2 = base_state(
    orders=[
        order(1, "buy", "exit", 99.0, "A", entry_price=101.0, entry_filled_at=1000.0),
        order(2, "sell", "exit", 101.0, "B", entry_price=99.0, entry_filled_at=1000.0),
    ],
    s2_entered_at=1000.0,
)
B_STALE = base_state(
    orders=[
        order(1, "buy", "entry", 90.0, "B", placed_at=900.0),
        order(2, "sell", "entry", 100.2, "A", placed_at=900.0),
    ]
)
REC = {
    "side": "buy",
    "price": 90.0,
    "volume": 13.0,
    "trade_id": "A",
    "cycle": 1,
    "entry_price": 101.0,
    "entry_fee": 0.02,
    "txid": "TX-R",
}


def transition(
    state: dict[str, Any], event: dict[str, Any], cfg: dict[str, Any] | None = None, size: float = 2.0
) -> tuple[str, dict[str, Any]]:
    return "transition", {
        "state": state,
        "event": event,
        "config": cfg or {},
        "order_size_usd": size,
        "order_sizes": None,
        "with_invariants": True,
    }


# name -> (op, fields): an input on which the mutant's answer differs from the clean one
MUTANT_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "round_scaled_double": transition(
        base_state(market=0.1, orders=[order(1, "buy", "entry", 0.18835, "B")]), fill(1, 0.18835)
    ),
    "volume_round_half_up": transition(
        base_state(market=1.0, orders=[order(1, "buy", "entry", 1.0, "B")]),
        price(0.5),
        {"entry_pct": 0.0, "min_volume": 1.0},
        6.25,
    ),
    "s1_timeout_strict": transition(S1A, tick(1600.0), {"s1_orphan_after_sec": 600.0}),
    "s2_timeout_strict": transition(S2, tick(2800.0)),
    "refresh_drift_strict": transition(
        base_state(orders=[order(1, "buy", "entry", 99.0, "B"), order(2, "sell", "entry", 100.2, "A")]),
        price(100.0),
    ),
    "s2_worse_leg_tie_buy": transition(dict(S2, s2_entered_at=0.0), tick(2000.0)),
    "evict_newest_first": transition(
        dict(
            S1A,
            recovery_orders=[
                dict(REC, recovery_id=1, orphaned_at=100.0),
                dict(REC, recovery_id=2, orphaned_at=200.0),
            ],
            next_recovery_id=3,
        ),
        tick(1600.0),
        {"s1_orphan_after_sec": 600.0, "max_recovery_slots": 2},
    ),
    "quote_fee_swapped_recovery": transition(
        base_state(recovery_orders=[dict(REC, recovery_id=1, orphaned_at=100.0)]),
        {
            "type": "RecoveryFillEvent",
            "payload": {
                "recovery_id": 1,
                "txid": "TX-R",
                "side": "buy",
                "price": 99.0,
                "volume": 13.0,
                "fee": 0.01,
                "timestamp": 1001.0,
            },
        },
    ),
    "break_even_counts_as_loss": transition(
        base_state(orders=[order(1, "sell", "exit", 100.0, "B", entry_price=100.0)]), fill(1, 100.0, fee=0.0)
    ),
    "loss_cooldown_off_by_one": transition(
        base_state(orders=[order(1, "buy", "exit", 102.0, "A", entry_price=100.0)], consecutive_losses_a=4),
        fill(1, 102.0),
    ),
    "cycle_max_dropped": transition(
        base_state(orders=[order(1, "buy", "exit", 99.0, "A", entry_price=101.0)], cycle_a=5), fill(1, 99.0)
    ),
    "anti_chase_keeps_cooldown": transition(
        dict(B_STALE, consecutive_refreshes_b=3, refresh_cooldown_until_b=500.0), price(100.0)
    ),
    "refresh_ignores_direction": transition(
        base_state(
            orders=[order(1, "buy", "entry", 110.0, "B")],
            consecutive_refreshes_b=1,
            last_refresh_direction_b="up",
        ),
        price(100.0),
    ),
    "regime_case_sensitive": transition(
        base_state(orders=[order(1, "buy", "entry", 99.8, "B", regime_at_entry="bullish")]), tick(1001.0)
    ),
    "invariant_typo": ("check_invariants", {"state": base_state(s2_entered_at=5.0)}),
    "cycle_default_zero": transition({"market_price": 100.0, "now": 1000.0}, tick(1001.0)),
    "profit_pct_no_fallback": transition(
        {"market_price": 100.0, "now": 1000.0, "profit_pct": 2.0}, tick(1001.0)
    ),
    "s2_kept_after_fill": transition(S2, fill(1, 99.0)),
    "entry_pct_b_ignored": transition(B_STALE, price(100.0), {"entry_pct_b": 0.5}, 2000.0),
    "backoff_off_by_one": transition(dict(B_STALE, consecutive_losses_b=3), price(100.0), None, 2000.0),
    # a bot's long history: 32 cycles held, one more booked
    "history_capped": transition(
        {**S1A, "completed_cycles": [{"trade_id": "A", "cycle": i} for i in range(1, 33)]}, fill(1, 99.0)
    ),
    # DOGE_REDUCER.md section 9 (bit-exact details)
    "evict_fee_old_grouping": transition(
        # evicted at market 99.5, volume 31: 99.5 * 31 * 0.25 / 100 is one ulp below the module's fee
        dict(
            S1A, market_price=99.5, recovery_orders=[dict(REC, recovery_id=1, orphaned_at=100.0, volume=31.0)]
        ),
        tick(1600.0),
        {"s1_orphan_after_sec": 600.0, "max_recovery_slots": 1},
    ),
    "recovery_entry_time_truthy": transition(
        base_state(recovery_orders=[dict(REC, recovery_id=1, orphaned_at=100.0, entry_filled_at=-5.0)]),
        {
            "type": "RecoveryFillEvent",
            "payload": {
                "recovery_id": 1,
                "txid": "TX-R",
                "side": "buy",
                "price": 99.0,
                "volume": 13.0,
                "fee": 0.01,
                "timestamp": 1001.0,
            },
        },
    ),
    "evict_by_position": transition(
        dict(
            S1A,
            recovery_orders=[
                dict(REC, recovery_id=1, orphaned_at=100.0),
                dict(REC, recovery_id=1, orphaned_at=200.0),
            ],
            next_recovery_id=3,
        ),
        tick(1600.0),
        {"s1_orphan_after_sec": 600.0, "max_recovery_slots": 2},
    ),
    # the exit price f * 1.01 is exactly 0.1640625 = 21 x 2^-7, a tie at 6 decimals (Python: 0.164062)
    "round_half_up_exact_tie": transition(
        base_state(market=0.1, orders=[order(1, "buy", "entry", 0.1624381188118812, "B")]),
        fill(1, 0.1624381188118812),
    ),
    "evict_keeps_rank_order": transition(
        dict(
            S1A,
            recovery_orders=[
                dict(REC, recovery_id=1, price=95.0, orphaned_at=100.0),
                dict(REC, recovery_id=2, price=80.0, orphaned_at=100.0),
                dict(REC, recovery_id=3, price=97.0, orphaned_at=100.0),
            ],
            next_recovery_id=4,
        ),
        tick(1600.0),
        {"s1_orphan_after_sec": 600.0, "max_recovery_slots": 3},
    ),
    "mode_source_default_empty": transition({"market_price": 100.0, "now": 1000.0}, tick(1001.0)),
}

# name -> (op, fields): an input on which the mutant's answer differs from the clean one in a wire type
# only (equal by value, so the diff's exact rule, like the bot's ==, cannot see it; tests/test_bitexact.py)
TYPE_MUTANT_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "fee_int_booked_as_int": transition(S1A, fill(1, 99.0, fee=0)),  # type: ignore[arg-type]
}

FAILURE_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "crash_zero_fee_exit": transition(S1A, fill(1, 99.0, fee=0.0)),
    "crash_huge_int": transition(base_state(next_order_id=2**63), tick(1001.0)),
    "hang_price_at_order": transition(base_state(), price(99.8)),
    "garbage_non_ascii_txid": transition(S1A, fill(1, 99.0, txid="TX-\u00e9")),
}


@pytest.mark.parametrize("name", sorted(TYPE_MUTANT_CASES))
def test_each_wire_type_mutant_is_exposed_by_its_input_in_types_only(
    haskell_exe: Path, mutant_exe: Path, name: str
) -> None:
    op, fields = TYPE_MUTANT_CASES[name]
    clean, mutant = Server(haskell_exe), Server(mutant_exe, "--mutant", name)
    try:
        a, b = clean.ok(op, **copy.deepcopy(fields)), mutant.ok(op, **copy.deepcopy(fields))
        assert by_value(a, b) and not same(a, b), f"{name} is not exposed (in types only) by its input"
    finally:
        clean.close()
        mutant.close()


@pytest.mark.parametrize("name", sorted(MUTANT_CASES))
def test_each_behaviour_mutant_is_exposed_by_its_input(
    haskell_exe: Path, mutant_exe: Path, name: str
) -> None:
    op, fields = MUTANT_CASES[name]
    clean, mutant = Server(haskell_exe), Server(mutant_exe, "--mutant", name)
    try:
        a, b = clean.ok(op, **copy.deepcopy(fields)), mutant.ok(op, **copy.deepcopy(fields))
        assert not by_value(a, b), f"{name} is not exposed by its input"
        # and the mutant is otherwise a working server
        assert mutant.ok("hello", protocol=1)["protocol"] == 1
        assert mutant.close() == 0
    finally:
        clean.kill()
        mutant.kill()


@pytest.mark.parametrize("name", sorted(FAILURE_CASES))
def test_each_failure_mutant_fails_the_way_it_says(haskell_exe: Path, mutant_exe: Path, name: str) -> None:
    op, fields = FAILURE_CASES[name]
    clean = Server(haskell_exe)
    try:
        assert "ok" in clean.req(op, **copy.deepcopy(fields))
    finally:
        clean.kill()
    srv = Server(mutant_exe, "--mutant", name)
    try:
        assert srv.ok("hello", protocol=1)["protocol"] == 1  # fine until the rare input
        srv.send(op, **fields)
        kind = name.split("_")[0]
        if kind == "crash":
            with pytest.raises(EOFError):
                srv.read(timeout=10)
            assert srv.proc.wait(10) != 0
        elif kind == "hang":
            with pytest.raises(TimeoutError):
                srv.read(timeout=1.5)
            assert srv.proc.poll() is None
        else:
            with pytest.raises(ValueError):  # msgpack's FormatError: not msgpack at all
                srv.read(timeout=10)
    finally:
        srv.kill()
