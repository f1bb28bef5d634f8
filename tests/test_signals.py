"""Ctrl-C handling that cannot be lost: an interrupt swallowed once is delivered again."""

from __future__ import annotations

import contextlib
import signal
import time

import pytest

from shadowdiff.runtime.signals import interrupts_delivered


def test_an_interrupt_swallowed_where_python_drops_it_comes_again() -> None:
    """Python drops an exception raised in a garbage-collector callback (Hypothesis installs one): the
    first Ctrl-C of a fuzz run could vanish there. Swallowing it here stands for that place."""
    with pytest.raises(KeyboardInterrupt), interrupts_delivered(again_after=0.2):
        with contextlib.suppress(KeyboardInterrupt):  # lost, as in a gc callback
            signal.raise_signal(signal.SIGINT)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.01)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back as it was


def test_leaving_in_time_cancels_the_second_delivery() -> None:
    with pytest.raises(KeyboardInterrupt), interrupts_delivered(again_after=0.2):
        signal.raise_signal(signal.SIGINT)
    time.sleep(0.4)  # no stray interrupt arrives after the context is left
