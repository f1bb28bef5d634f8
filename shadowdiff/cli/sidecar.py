"""CLI commands of the live mode: ``sidecar``, ``tap-run`` and the ``demo`` group with ``demo live``
(cli.main adds them to the command group)."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from shadowdiff.cli.common import read_known
from shadowdiff.cli.domains import with_domain
from shadowdiff.cli.exits import EXIT_CLEAN, EXIT_FOUND, fail
from shadowdiff.core.diff import Rules
from shadowdiff.core.domain import Domain
from shadowdiff.core.reducer import Shadow
from shadowdiff.live.sidecar import ONE_PROCESS_DEFAULT, Sidecar, SidecarOptions, check_http, check_listen
from shadowdiff.model.errors import ShadowdiffError, ShadowSetupError
from shadowdiff.runtime.private import read_token_file
from shadowdiff.runtime.rulesfile import load_rules

__all__ = ["demo", "demo_live", "register", "sidecar_command", "tap_run"]


def _shadow_factory(domain: Domain, command: str | None, codec: str, deadline: float
                    ) -> tuple[Callable[[], Shadow], str]:  # fmt: skip
    from shadowdiff.shadow.client import SubprocessReducer

    argv: list[str] | str = domain.shadow_command(codec) if command is None else command
    # a partial, not a closure: the checker's process gets it pickled
    make = functools.partial(SubprocessReducer, argv, codec=codec, domain=domain, deadline=deadline)
    return make, argv if isinstance(argv, str) else " ".join(argv)


def _rules(domain: Domain, path: str | None) -> Rules:
    base = domain.default_rules()
    return base.plus(load_rules(path)) if path else base


def _wait_for_signal(sidecar: Sidecar) -> None:
    stop = threading.Event()

    def handle(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    while not stop.wait(1.0):
        sidecar.log.maybe_rotate()


def register(group: click.Group) -> None:
    """Add ``sidecar``, ``tap-run`` and ``demo`` to ``group`` (a test's own group; cli.main adds them
    itself)."""
    group.add_command(sidecar_command)
    group.add_command(tap_run)
    group.add_command(demo)


@click.command("sidecar")
@click.option("--listen", required=True, metavar="unix:/PATH|tcp:127.0.0.1:PORT", help="Where taps connect.")
@click.option(
    "--shadow", metavar='"CMD ARGS"', help="Shadow executable and arguments (default: doge-core-exe)."
)
@click.option("--codec", type=click.Choice(["msgpack", "jsonl"]), default="msgpack", show_default=True)
@click.option(
    "--http", metavar="127.0.0.1:PORT", help="Serve /api/status, /metrics and /healthz on loopback."
)
@click.option("--record", "record_dir", type=click.Path(file_okay=False), help="Directory of the recorded "
              "msgpack logs (default: a new temporary directory).")  # fmt: skip
@click.option(
    "--findings", type=click.Path(dir_okay=False), help="Append one JSONL record per divergence or failure."
)
@click.option("--rules", type=click.Path(dir_okay=False), help="Comparison rules (TOML or JSON).")
@click.option("--max-lag-bytes", type=int, default=256 << 20, show_default=True,
              help="Disk budget of unchecked records; past it the checker skips (counted).")  # fmt: skip
@click.option("--rotate-bytes", type=int, default=64 << 20, show_default=True)
@click.option("--rotate-seconds", type=float, default=3600.0, show_default=True)
@click.option(
    "--deadline", type=float, default=10.0, show_default=True, help="Seconds the shadow may take per request."
)
@click.option(
    "--drain-seconds", type=float, default=10.0, show_default=True, help="Bound on the drain at shutdown."
)
@click.option(
    "--runtime", "runtime_file", type=click.Path(dir_okay=False),
    help="The bot_runtime.json the bot starts from: taps name the slots they meet after connecting "
    "'slot-<id> (<alias>)' as the file does (the tap's own --runtime names them from the start).",
)  # fmt: skip
@click.option("--known", "known_path", type=click.Path(dir_okay=False), help="Triage file: the divergences "
              "it covers are counted apart (status 'known'), not reported as findings.")  # fmt: skip
@click.option("--token-file", metavar="FILE", help="A 0600 file whose first line is the secret every tap "
              "must present (taps: SHADOWDIFF_TAP_TOKEN_FILE). Required with a tcp: listener.")  # fmt: skip
@click.option("--one-process/--two-process", default=ONE_PROCESS_DEFAULT, show_default=True,
              help="Check in a thread of the sidecar's own process (the shape before issue 16), or "
              "in a child process of its own (the default: receiving and recording never share an "
              "interpreter with the checking; a checker that dies is restarted where it was).")  # fmt: skip
@with_domain
def sidecar_command(listen: str, shadow: str | None, codec: str, http: str | None, record_dir: str | None,
                    findings: str | None, rules: str | None, max_lag_bytes: int, rotate_bytes: int,
                    rotate_seconds: float, deadline: float, drain_seconds: float,
                    runtime_file: str | None, known_path: str | None,
                    token_file: str | None, one_process: bool, *, domain: Domain) -> None:  # fmt: skip
    """Receive a live tap's records, record them, and check them against the shadow until SIGTERM.

    Prints one JSON line when ready: {"listen", "http", "record"}. Recorded logs and findings are written
    0600 in 0700 directories; a unix: socket's directory must be 0700 (created so if missing).

    Two processes by default: this one receives, records and serves HTTP; a child process checks the
    recorded log against the shadow, so a flat-out tap is recorded at full speed while the checker works
    through the lag on disk. --one-process checks in a thread of this process instead.

    \b
    Examples:
      shadowdiff sidecar --listen unix:/run/shadowdiff/tap.sock --http 127.0.0.1:8765 --record rec/
      shadowdiff sidecar --listen tcp:127.0.0.1:7000 --token-file ~/.shadowdiff-token
    """
    slot_names: tuple[Any, ...] = ()
    if runtime_file:
        from shadowdiff.live.tap import runtime_slot_names

        try:
            slot_names = tuple(runtime_slot_names(runtime_file))
        except (OSError, ValueError) as exc:
            fail(f"{runtime_file}: cannot read slot names: {exc}")
    try:
        check_listen(listen)
        token = read_token_file(token_file) if token_file else None
        if http:
            check_http(http)
        factory, name = _shadow_factory(domain, shadow, codec, deadline)
        options = SidecarOptions(
            listen=listen, shadow=factory, shadow_name=name,
            record_dir=Path(record_dir) if record_dir else Path(tempfile.mkdtemp(prefix="shadowdiff-live-")),
            http=http, findings=Path(findings) if findings else None, rules=_rules(domain, rules),
            max_lag_bytes=max_lag_bytes, rotate_bytes=rotate_bytes, rotate_seconds=rotate_seconds,
            drain_seconds=drain_seconds, slot_names=slot_names, known=read_known(known_path), token=token,
            one_process=one_process,
        )  # fmt: skip
        sidecar = Sidecar(options)
        sidecar.start()
    except ShadowdiffError as exc:
        fail(exc)
    except OSError as exc:
        fail(f"cannot listen: {exc}")
    ready = {"listen": sidecar.address, "http": sidecar.http_url, "record": str(options.record_dir)}
    click.echo(json.dumps(ready))
    sys.stdout.flush()
    try:
        _wait_for_signal(sidecar)
    finally:
        sidecar.stop()
    status = sidecar.status()
    click.echo(json.dumps({"final": status["state_machine_shadow"], "coverage": status["coverage"],
                           "known": status["known"]}))  # fmt: skip
    sys.exit(EXIT_CLEAN)


@click.command("tap-run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def tap_run(argv: tuple[str, ...]) -> None:
    """Run a Python program with the tap installed.

    ARGV: [--module M]... [--tap ADDR] (SCRIPT | -m MODULE) [ARGS...]
    """
    from shadowdiff.live import tap

    sys.exit(tap.main(list(argv)))


@click.command("live")
@click.option(
    "--mutant",
    metavar="NAME",
    help="Seeded porting bug of the Haskell port (see doge-core-mutants --list-mutants).",
)
@click.option("--seconds", type=float, default=5.0, show_default=True)
@click.option("--rate", type=float, default=200.0, show_default=True, help="Bot loops per second.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--shadow", metavar='"CMD ARGS"', help="Shadow command (default: the Haskell port, else the Python one)."
)
@click.option("--record", "record_dir", type=click.Path(file_okay=False))
@click.option("--findings", type=click.Path(dir_okay=False))
@with_domain
def demo_live(mutant: str | None, seconds: float, rate: float, seed: int, shadow: str | None,
              record_dir: str | None, findings: str | None, *, domain: Domain) -> None:  # fmt: skip
    """The live mode in one command: a sidecar with the reference port, the domain's simulated bot under
    the tap, and the sidecar's status at the end."""
    bot_argv = domain.demo_bot(seconds, rate, seed)
    if bot_argv is None:
        fail(f"the {domain.name} domain has no simulated bot to demonstrate with")
    if shadow is None:
        try:
            shadow = " ".join(domain.shadow_command("msgpack", [mutant] if mutant else []))
        except ShadowSetupError as exc:
            python = domain.python_shadow_command()
            if mutant or python is None:
                fail(f"--mutant needs the built shadow: {exc}" if mutant else exc)
            shadow = " ".join(python)
    workdir = Path(tempfile.mkdtemp(prefix="shadowdiff-demo-"))
    factory, name = _shadow_factory(domain, shadow, "msgpack", 5.0)
    options = SidecarOptions(
        listen=f"unix:{workdir / 'tap.sock'}", shadow=factory, shadow_name=name,
        record_dir=Path(record_dir) if record_dir else workdir / "record",
        findings=Path(findings) if findings else workdir / "findings.jsonl", rules=_rules(domain, None),
        synthetic=True,
    )  # fmt: skip
    try:
        sidecar = Sidecar(options)
        sidecar.start()
    except ShadowdiffError as exc:
        fail(exc)
    click.echo(f"sidecar listening on {sidecar.address}, shadow: {name}", err=True)
    env = dict(os.environ, DOGE_CORE_SHADOW="1", SHADOWDIFF_TAP=sidecar.address)
    command = [sys.executable, "-m", "shadowdiff.tap", *bot_argv]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        sidecar.wait_caught_up(30.0)
        time.sleep(0.2)
    finally:
        sidecar.stop()
    status = sidecar.status()
    shown = {
        "bot": json.loads(done.stdout.strip().splitlines()[-1])
        if done.stdout.strip()
        else {"exit": done.returncode},
        "state_machine_shadow": status["state_machine_shadow"],
        "coverage": status["coverage"],
        "clusters": status["clusters"][:10],
        "shadow": status["shadow"],
        "record": status["record"],
        "findings": str(options.findings),
    }
    click.echo(json.dumps(shown, indent=2))
    bot = status["state_machine_shadow"]
    sys.exit(EXIT_FOUND if bot["total_divergences"] or bot["shadow_failures"] else EXIT_CLEAN)


@click.group("demo")
def demo() -> None:
    """One-command demonstrations for a new user."""


demo.add_command(demo_live)
