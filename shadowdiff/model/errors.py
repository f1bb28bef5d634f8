"""The one exception root of shadowdiff, and its few subclasses.

Each carries *where* (a file and line, a byte offset, a request id, an event index) and *what*; the CLI
turns them into one-line messages and exit codes. Library code raises these, never exits or prints.
"""

from __future__ import annotations


class ShadowdiffError(Exception):
    """Base class. ``where`` names the place (file:line, step 12, request 7), ``what`` the problem."""

    exit_code = 2

    def __init__(self, what: str, where: str | None = None) -> None:
        self.what = what
        self.where = where
        super().__init__(f"{where}: {what}" if where else what)


class BadInput(ShadowdiffError, ValueError):
    """A corpus, log, policy or findings file that cannot be read as documented."""


class UsageError(ShadowdiffError, ValueError):
    """Options that contradict each other or name something that does not exist."""


class ShadowSetupError(ShadowdiffError, RuntimeError):
    """The shadow could not be started at all (missing executable, failed handshake)."""
