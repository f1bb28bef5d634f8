"""The one domain plug: commands find their domain through the ``shadowdiff.domains`` entry point.

A second domain is registered the way a real package registers one, with a dist-info directory whose
``entry_points.txt`` names it, on the subprocess's path: the commands then find it through
``importlib.metadata`` exactly as they find DOGE.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from conftest import EXE, ROOT
from shadowdiff_doge import simbot
from shadowdiff_doge.domain import DOGE, TAP_CALLS
from shadowdiff_doge.reference import state_machine as sm
from test_gate import divergences_at, window

from shadowdiff import tap
from shadowdiff.cli.common import shrink_into
from shadowdiff.cli.domains import installed, load_domain
from shadowdiff.model.errors import BadInput, UsageError

TOY = """
from shadowdiff.core.domain import Domain
from shadowdiff.model.errors import UsageError


class Toy(Domain):
    name = "toy"
    hot_path_events = frozenset({"TimerTick"})

    def bundled_corpus(self):
        raise UsageError("TOY-MARKER: the toy domain bundles nothing")


TOY = Toy()
"""


def with_toy(tmp_path: Path) -> dict[str, str]:
    """An environment in which a second domain, ``toy``, is installed beside ``doge``."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "toy_domain.py").write_text(TOY)
    info = site / "toy_domain-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-domain\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[shadowdiff.domains]\ntoy = toy_domain:TOY\n")
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", ""), str(site)])
    return {**os.environ, "PYTHONPATH": path}


def shadowdiff(*argv: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "shadowdiff", *argv], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip


def test_doge_is_found_through_its_entry_point() -> None:
    entry = installed()["doge"]
    assert entry.value == "shadowdiff_doge.domain:DOGE"
    assert load_domain("doge") is DOGE and load_domain(None) is DOGE  # the only one installed


def test_an_unknown_domain_exits_2_with_one_line_naming_the_installed_ones(tmp_path: Path) -> None:
    done = shadowdiff("--domain", "nope", "replay", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == "shadowdiff: error: unknown domain 'nope' (installed: doge)\n"
    assert done.stdout == ""
    with pytest.raises(UsageError, match="unknown domain 'nope'"):
        load_domain("nope")


def test_a_second_installed_domain_is_what_the_commands_use(tmp_path: Path) -> None:
    env = with_toy(tmp_path)
    # two installed: no default, and the error names both
    both = shadowdiff("replay", env=env, cwd=tmp_path)
    assert both.returncode == 2
    assert both.stderr == (
        "shadowdiff: error: 2 domains are installed (doge, toy): choose one with --domain NAME\n"
    )
    # --domain toy: the toy's own member answers (found through importlib.metadata, nothing else)
    toy = shadowdiff("--domain", "toy", "replay", env=env, cwd=tmp_path)
    assert toy.returncode == 2
    assert toy.stderr == "shadowdiff: error: TOY-MARKER: the toy domain bundles nothing\n"
    # SHADOWDIFF_DOMAIN names it too
    by_env = shadowdiff("replay", env={**env, "SHADOWDIFF_DOMAIN": "toy"}, cwd=tmp_path)
    assert by_env.stderr == toy.stderr
    # the gate weighs the chosen domain's hot path: FillEvent is doge's, not the toy's
    samples = tmp_path / "w.jsonl"
    samples.write_text(
        "".join(json.dumps(s) + "\n" for s in window(shape=divergences_at([5, 9], "FillEvent")))
    )
    doge_gate = shadowdiff("--domain", "doge", "gate", str(samples), env=env, cwd=tmp_path)
    toy_gate = shadowdiff("--domain", "toy", "gate", str(samples), env=env, cwd=tmp_path)
    assert (doge_gate.returncode, doge_gate.stdout.splitlines()[0]) == (1, "verdict: REJECT")
    assert (toy_gate.returncode, toy_gate.stdout.splitlines()[0]) == (3, "verdict: EXTEND")


def test_no_module_of_the_engine_imports_a_domain() -> None:
    """The import-linter contract, checked on the source text too (also imports inside functions)."""
    offenders = []
    for path in sorted((ROOT / "shadowdiff").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path}: {n}" for n in names if n.split(".")[0] in ("shadowdiff_doge", "adapters")]
    assert offenders == []


def test_the_tap_reads_the_domains_call_declaration_without_the_engine() -> None:
    code = (
        "import sys; from shadowdiff.live import tap; calls = tap.domain_calls(); "
        "print(calls.step, calls.state, calls.event, [p.key for p in calls.context], list(calls.calls)); "
        "print(sorted(m for m in ('attr', 'attrs', 'numpy', 'click', 'hypothesis', 'shadowdiff.core.engine') "
        "if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == [
        "transition state event ['config', 'order_size_usd', 'order_sizes'] ['apply_order_regime_at_entry']",
        "[]",
    ]
    assert tap.domain_calls() == TAP_CALLS == DOGE.tap_calls


def _records(module: types.ModuleType, reorder: bool) -> list[dict[str, Any]]:
    builder = tap.RecordBuilder(module, calls=TAP_CALLS)
    out: list[dict[str, Any]] = []
    seq = 0

    def observe(function: str, slot: str, args: tuple[Any, ...], result: Any) -> None:
        nonlocal seq
        kind = tap.TRANSITION if function == "transition" else tap.CALL
        if kind == tap.TRANSITION and reorder:  # as the reordered function is called
            state, event, cfg, size, *sizes = args
            args = (event, cfg, state, size, *sizes)
        out.extend(builder.records_for((kind, function, None, seq, args, {}, result)))
        seq += 1

    bot = simbot.SimBot(seed=3, slots=2, observer=observe)
    for _ in range(120):
        bot.loop()
    return out


def test_the_tap_reads_a_call_by_parameter_name_not_position() -> None:
    """The same calls through a reducer whose parameters come in another order give the same records."""
    reordered = types.ModuleType("reordered")
    reordered.__dict__.update(sm.__dict__)

    def transition(event: Any, cfg: Any, state: Any, order_size_usd: float, order_sizes: Any = None) -> Any:
        return sm.transition(state, event, cfg, order_size_usd, order_sizes)

    reordered.transition = transition  # type: ignore[attr-defined]
    plain = _records(sm, reorder=False)
    assert [r["kind"] for r in plain].count("step") > 100
    assert _records(reordered, reorder=True) == plain


def test_a_declared_parameter_the_reducer_lacks_is_refused() -> None:
    bare = types.ModuleType("bare")
    bare.__dict__.update(sm.__dict__)
    bare.transition = lambda state, event: (state, [])  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="has no parameter 'cfg', 'order_size_usd', 'order_sizes'"):
        tap.RecordBuilder(bare, calls=TAP_CALLS)


@pytest.mark.skipif(not EXE.exists(), reason="the Haskell port is not built")
def test_shrinking_raises_and_never_exits(tmp_path: Path) -> None:
    """``replay --shrink`` calls this: a problem is an exception for the command to map, not an exit."""
    with pytest.raises(BadInput):
        shrink_into(DOGE, str(tmp_path / "missing.json"), None, None, "msgpack", "lockstep", 2.0, 1.0,
                    True, None, None)  # fmt: skip


def test_the_commands_import_no_command_module_in_a_cycle() -> None:
    """cli.fuzz, cli.sidecar, cli.triage and cli.runbook import none of cli.main (cli.main adds them)."""
    code = (
        "import sys; import shadowdiff.cli.fuzz, shadowdiff.cli.sidecar, shadowdiff.cli.triage, "
        "shadowdiff.cli.runbook; print('shadowdiff.cli.main' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout == "False\n"
