"""Finding the domain: the one loader of the entry point group ``shadowdiff.domains``.

Every command gets its :class:`~shadowdiff.core.domain.Domain` from here: ``shadowdiff --domain NAME
COMMAND`` (or ``SHADOWDIFF_DOMAIN``) names it; without a name, the only installed one is taken. An
unknown name, or no name with none or several installed, is a :class:`UsageError` naming the installed
ones (exit 2, one line). Nothing under ``shadowdiff/`` imports a domain: this lookup is the only way in.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any, TypeVar

import click

from shadowdiff.core.domain import Domain
from shadowdiff.model.errors import UsageError

__all__ = ["ENV", "GROUP", "domain_option", "installed", "load_domain", "with_domain"]

GROUP = "shadowdiff.domains"
ENV = "SHADOWDIFF_DOMAIN"
F = TypeVar("F", bound=Callable[..., Any])


def installed() -> dict[str, EntryPoint]:
    """The registered domains by name (the entry points of ``shadowdiff.domains``)."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def load_domain(name: str | None = None) -> Domain:
    """The domain registered as ``name`` (None: the only one installed); UsageError when there is no
    such domain or the choice is ambiguous, naming the installed ones."""
    found = installed()
    names = ", ".join(sorted(found)) or "none"
    if name is None:
        if len(found) != 1:
            raise UsageError(f"{len(found)} domains are installed ({names}): choose one with --domain NAME")
        (entry,) = found.values()
    else:
        entry = found.get(name)  # type: ignore[assignment]
        if entry is None:
            raise UsageError(f"unknown domain {name!r} (installed: {names})")
    try:
        domain = entry.load()
    except Exception as exc:  # a broken plug: say which, never a traceback
        raise UsageError(f"the domain {entry.name!r} ({entry.value}) cannot be loaded: {exc}") from exc
    if not isinstance(domain, Domain):
        raise UsageError(f"the domain {entry.name!r} ({entry.value}) is not a shadowdiff Domain")
    return domain


def domain_option(fn: F) -> F:
    """``--domain NAME`` on the command group (every command below it uses that domain)."""
    return click.option(
        "--domain",
        "domain_name",
        envvar=ENV,
        metavar="NAME",
        help=f"The domain every command uses (entry point group {GROUP}). Default: the only one installed.",
    )(fn)


def current_domain() -> Domain:
    """The domain of the running command: the group's ``--domain`` (default: the only one installed).
    A bad name ends the command with one error line and exit 2."""
    from shadowdiff.cli.exits import fail

    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    name = root.params.get("domain_name") if root is not None else None
    try:
        domain = load_domain(name)
    except UsageError as exc:
        fail(exc)
    from shadowdiff.runtime.corpus import use_domain

    use_domain(domain)  # its formats and its contexts' parameters, for every corpus the command reads
    return domain


def with_domain(command: F) -> F:
    """Hand the command its domain as the keyword argument ``domain`` (loaded when it runs, so ``--help``
    needs none)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return command(*args, domain=current_domain(), **kwargs)

    return wrapper  # type: ignore[return-value]
