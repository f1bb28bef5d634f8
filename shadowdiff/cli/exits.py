"""Exit codes and the one error style of every command, defined once.

README.md ("Exit codes") and docs/formats.md ("Exit codes (all commands)") cite :data:`EXIT_CODES`;
tests/test_exits.py checks that they list the same codes. Every command reports a problem as one line on
stderr, ``shadowdiff: error: WHERE: WHAT`` (:func:`error_line`), and exits with its code; library code
raises :class:`~shadowdiff.model.errors.ShadowdiffError` and never exits.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from shadowdiff.model.errors import ShadowdiffError
from shadowdiff.runbook.gate import VERDICT_EXIT

__all__ = [
    "EXIT_BAD",
    "EXIT_CLEAN",
    "EXIT_CODES",
    "EXIT_EXTEND",
    "EXIT_FOUND",
    "EXIT_INTERRUPTED",
    "EXIT_NONDETERMINISTIC",
    "GATE_EXIT",
    "error_line",
    "fail",
    "fail_on",
    "warn",
]

EXIT_CLEAN = 0
EXIT_FOUND = 1
EXIT_BAD = 2
EXIT_EXTEND = 3
EXIT_NONDETERMINISTIC = 4
EXIT_INTERRUPTED = 130

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_CLEAN, "clean: no divergence, no shadow failure (gate: ACCEPT)"),
    (EXIT_FOUND, "divergences or shadow failures found, or a shadow that answered nothing (gate: REJECT)"),
    (EXIT_BAD, "bad usage or bad input: one line naming where (a replay's verdict says incomplete)"),
    (EXIT_EXTEND, "gate: EXTEND"),
    (EXIT_NONDETERMINISTIC, "replay --twice: the two runs differ (report bytes or exit code)"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C); a replay's report covers the steps that ran"),
)
"""Every exit code a command may end with, and what it means."""

GATE_EXIT = VERDICT_EXIT
"""The gate's verdicts (``gate``, ``evidence build``) as exit codes: 0 ACCEPT, 1 REJECT, 3 EXTEND (the gate's
report carries them too; tests/test_exits.py checks they are EXIT_CLEAN, EXIT_FOUND and EXIT_EXTEND)."""

PREFIX = "shadowdiff: "


def error_line(message: str | ShadowdiffError, where: str | None = None) -> str:
    """``shadowdiff: error: WHERE: WHAT``, the one style of every error line (an error carries its
    own where)."""
    text = str(message)
    return f"{PREFIX}error: {where}: {text}" if where else f"{PREFIX}error: {text}"


def fail(message: str | ShadowdiffError, code: int | None = None) -> NoReturn:
    """Print the error line and exit with ``code`` (an error's own code, else 2)."""
    click.echo(error_line(message), err=True)
    if code is None:
        code = message.exit_code if isinstance(message, ShadowdiffError) else EXIT_BAD
    sys.exit(code)


def fail_on(exc: OSError) -> NoReturn:
    """An OSError a command did not expect (a file vanished, a disk filled): one line, exit 2."""
    fail(f"{exc.filename or ''}: {exc.strerror or exc}" if exc.filename else str(exc.strerror or exc))


def warn(message: object) -> None:
    click.echo(f"{PREFIX}warning: {message}", err=True)
