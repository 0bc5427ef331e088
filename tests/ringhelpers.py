"""Helpers shared by the ring tests (the ``ring`` fixture itself is in conftest.py)."""

import contextlib
import signal
import threading
import time

import pytest

from uringkit.ring import Completion

WAIT = 5.0  # seconds any single expected completion may take before the test fails instead of hanging


def require_io_uring(caps):
    if not caps.io_uring:
        pytest.skip(f"io_uring unavailable: {caps.io_uring_reason}")


def drain(ring, n, timeout=WAIT) -> list[Completion]:
    """Exactly the next ``n`` single-operation completions, or a failure after ``timeout`` seconds."""
    got: list[Completion] = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(got)} of {n} completions arrived in {timeout} s: {got}"
        got += ring.wait_completions(1, timeout=left)
    assert len(got) == n, f"expected {n} completions, got {len(got)}: {got}"
    return got


class Buf(bytearray):
    """A bytearray that can be weakly referenced, to see whether anything but the ring still holds it."""


@contextlib.contextmanager
def signal_after(seconds: float, handler):
    """SIGUSR1 for the main thread (where the ring waits) after ``seconds``, handled by ``handler``. Not SIGALRM:
    that one is pytest-timeout's."""
    old = signal.signal(signal.SIGUSR1, handler)
    timer = threading.Timer(seconds, signal.pthread_kill, [threading.main_thread().ident, signal.SIGUSR1])
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join()
        signal.signal(signal.SIGUSR1, old)
