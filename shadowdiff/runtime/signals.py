"""Ctrl-C: a replay stops feeding, drains what is in flight and reports what was checked; every other
command stops at once, with one line.

The first SIGINT asks the run to stop at the next record (the handler only sets a flag, so no write to a
shadow is ever cut in half); a second one, for the impatient, raises KeyboardInterrupt as usual. Shadow
processes run in their own session, so the terminal's Ctrl-C reaches only us and we stop them cleanly.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType


@contextlib.contextmanager
def stop_on_interrupt(stop: Callable[[], None], escalate: bool = True) -> Iterator[None]:
    """While inside, the first SIGINT calls ``stop``; with ``escalate`` a second raises
    KeyboardInterrupt (without, every SIGINT just calls ``stop``). Outside the main thread: a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen = 0

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal seen
        seen += 1
        if seen > 1 and escalate:
            raise KeyboardInterrupt
        stop()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def interrupts_delivered(again_after: float = 0.5) -> Iterator[None]:
    """While inside, Ctrl-C raises KeyboardInterrupt as usual, and raises it again ``again_after``
    seconds later if the process is still inside: Python drops an exception raised in a garbage
    collector callback (Hypothesis installs one), so a single Ctrl-C during a fuzz run could vanish.
    Outside the main thread: a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        signal.setitimer(signal.ITIMER_REAL, again_after)
        raise KeyboardInterrupt

    def again(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupt), signal.signal(signal.SIGALRM, again)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGALRM, previous[1])
