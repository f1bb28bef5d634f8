"""The tap: dependency-light, transparent to the bot, and its records replay clean against the shadow."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import types
from pathlib import Path

import pytest
from conftest import PY_SERVER, ROOT
from shadowdiff_doge import simbot
from shadowdiff_doge.reference import state_machine as sm

from shadowdiff import tap
from shadowdiff.core.engine import Replay, ReplayOptions
from shadowdiff.model.records import Record, Snapshot
from shadowdiff.shadow.client import SubprocessReducer

ENV = {k: v for k, v in os.environ.items() if k not in (tap.ENV_SWITCH, tap.ENV_ADDRESS)}
ENV["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])


def test_importing_the_tap_pulls_in_no_heavy_dependency() -> None:
    code = (
        "import sys, shadowdiff.tap\nprint([m for m in ('numpy', 'hypothesis', 'click') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=ENV, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"
    # the package root is lazy: importing the tap loads the tap and its one light helper, nothing else
    code = (
        "import sys, shadowdiff.tap\n"
        "heavy = ('numpy', 'hypothesis', 'click', 'attrs', 'prometheus_client')\n"
        "print(sorted(m for m in sys.modules if m.startswith('shadowdiff') or m in heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=ENV, cwd=ROOT
    )
    assert out.stdout.strip() == str(sorted([
        "shadowdiff", "shadowdiff.live", "shadowdiff.live.tap", "shadowdiff.tap", "shadowdiff.wire",
        "shadowdiff.wire.format", "shadowdiff.wire.identity",
    ]))  # fmt: skip


def _fake_module() -> types.ModuleType:
    module = types.ModuleType("fake_reducer")
    sentinel = object()

    def transition(state, event, cfg, order_size_usd, order_sizes=None):  # type: ignore[no-untyped-def]
        return sentinel

    def check_invariants(state):  # type: ignore[no-untyped-def]
        return []

    module.transition = transition  # type: ignore[attr-defined]
    module.check_invariants = check_invariants  # type: ignore[attr-defined]
    module.sentinel = sentinel  # type: ignore[attr-defined]
    return module


def test_off_unless_the_bot_switch_is_on(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _fake_module()
    monkeypatch.setenv(tap.ENV_ADDRESS, "tcp:127.0.0.1:9")
    monkeypatch.setenv(tap.ENV_SWITCH, "0")
    assert tap.install(module) is None
    monkeypatch.delenv(tap.ENV_SWITCH)
    assert tap.install(module) is None
    assert not hasattr(module.transition, "__shadowdiff_tap__")


def test_wrapped_calls_return_the_originals_result_and_never_raise_or_block() -> None:
    module = _fake_module()
    installed = tap.install(module, "tcp:127.0.0.1:9", force=True, queue_size=4, exit_wait=0.2)
    assert installed is not None
    try:
        assert tap.install(module, "tcp:127.0.0.1:9", force=True) is installed  # idempotent
        for _ in range(2000):  # no sidecar at all: nothing may raise, the queue stays bounded
            assert module.transition(object(), object(), object(), 2.0) is module.sentinel
        assert module.check_invariants(object()) == []
        stats = installed.stats()
        assert stats["calls"] == 2000
        assert stats["queued"] <= 4
        assert stats["invariant_calls"] == 1
    finally:
        tap.uninstall(module)
    assert not hasattr(module.transition, "__shadowdiff_tap__")


def test_a_bad_address_is_refused_without_touching_the_module(capsys: pytest.CaptureFixture[str]) -> None:
    module = _fake_module()
    assert tap.install(module, "tcp:10.0.0.1:80", force=True) is None
    assert "loopback" in capsys.readouterr().err
    with pytest.raises(ValueError):
        tap.parse_address("tcp:0.0.0.0:1")
    assert tap.parse_address("unix:/tmp/x.sock") == ("unix", "/tmp/x.sock")


def test_slots_follow_the_identity_chain_through_txid_binding() -> None:
    """No slot hints: the tap must still see three slots, with patches where the bot bound txids."""
    builder = tap.RecordBuilder(sm)
    records: list[dict[str, object]] = []
    seq = 0

    def observe(function: str, slot: str, args: tuple[object, ...], result: object) -> None:
        nonlocal seq
        kind = tap.TRANSITION if function == "transition" else tap.CALL
        records.extend(builder.records_for((kind, function, None, seq, args, {}, result)))
        seq += 1

    bot = simbot.SimBot(seed=5, slots=3, observer=observe)
    for _ in range(300):
        bot.loop()
    assert sorted(builder.tracks) == ["slot-0", "slot-1", "slot-2"]
    kinds = [r["kind"] for r in records]
    assert kinds.count("snapshot") == 3
    assert kinds.count("patch") >= bot.patches // 2
    assert kinds.count("step") == bot.transitions and kinds.count("call") == bot.calls
    # the identity chain names each slot after the bot's own slot (same final states)
    finals = {name: sm.to_dict(track.post) for name, track in builder.tracks.items()}
    assert sorted(json.dumps(s, sort_keys=True) for s in finals.values()) == sorted(
        json.dumps(s, sort_keys=True) for s in bot.states().values()
    )


def test_generated_log_replays_clean_against_the_python_shadow() -> None:
    items = list(_items(simbot.generate_log(3000, seed=2)))
    assert sum(isinstance(i, Record) for i in items) == 3000
    assert all(i.outcome is not None for i in items if isinstance(i, Record))
    with SubprocessReducer([*PY_SERVER, "--msgpack"]) as shadow:
        result = Replay(shadow, None, ReplayOptions(verify_final=True)).run(items)
    assert result.divergence_count == 0 and result.failure_count == 0
    assert result.shadow_checks["transition"] + result.shadow_checks["call"] == 3000


def _items(records: object) -> list[object]:
    from shadowdiff.runtime.corpus import RecordReader

    reader = RecordReader("generated")
    out: list[object] = []
    for record in records:  # type: ignore[attr-defined]
        out.extend(reader.item(record, "generated"))
    return out


def test_generate_log_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.msgpack", tmp_path / "b.msgpack"
    simbot.write_log(a, 500, seed=9)
    simbot.write_log(b, 500, seed=9)
    first = list(_items(simbot.generate_log(10, seed=9)))
    assert isinstance(first[0], Snapshot)
    # the header's provenance carries no clock, so two runs are byte-identical
    assert a.read_bytes() == b.read_bytes()


def test_python_m_shadowdiff_tap_runs_the_program_unchanged_when_switched_off() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.1)
    port = listener.getsockname()[1]
    bot = [sys.executable, "-m", "shadowdiff_doge.simbot", "--seconds", "0.5", "--rate", "400", "--seed", "4"]
    plain = subprocess.run(bot, capture_output=True, text=True, check=True, env=ENV, cwd=ROOT)
    tapped = [sys.executable, "-m", "shadowdiff.tap", "--module", simbot.DEFAULT_MODULE, "--tap",
              f"tcp:127.0.0.1:{port}", "-m", "shadowdiff_doge.simbot", *bot[3:]]  # fmt: skip
    off = subprocess.run(
        tapped, capture_output=True, text=True, check=True, env={**ENV, tap.ENV_SWITCH: "0"}, cwd=ROOT
    )
    with pytest.raises(TimeoutError):
        listener.accept()  # DOGE_CORE_SHADOW=0: the tap never even connected
    listener.close()
    assert json.loads(off.stdout)["digest"] == json.loads(plain.stdout)["digest"]
    bad = subprocess.run([sys.executable, "-m", "shadowdiff.tap", "--tap", "tcp:8.8.8.8:1", "x.py"],
                         capture_output=True, text=True, env=ENV, cwd=ROOT, check=False)  # fmt: skip
    assert bad.returncode == 2 and "loopback" in bad.stderr
