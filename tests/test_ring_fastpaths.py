"""The Ring options and paths the io_uring server's hot loop uses: DEFER_TASKRUN."""

import socket
import threading
import time

import pytest

from ringhelpers import WAIT, drain, require_io_uring
from uringkit.ring import Ring


@pytest.fixture
def deferred(caps):
    require_io_uring(caps)
    with Ring(16, defer_taskrun=True) as r:
        yield r


def test_defer_taskrun_is_accepted_by_this_kernel(deferred):
    assert deferred.defer_taskrun  # Linux 6.1+; the machine runs 6.18


def test_defer_taskrun_is_off_unless_asked(ring):
    assert not ring.defer_taskrun


def test_defer_taskrun_with_sqpoll_is_refused(caps):
    require_io_uring(caps)
    with pytest.raises(ValueError, match="sqpoll"):
        Ring(4, sqpoll=True, defer_taskrun=True)


def test_completions_nowait_sees_a_completion_that_needs_task_work(deferred):
    """A recv parked in the kernel completes through task work; with DEFER_TASKRUN that runs only when we enter
    the kernel, so completions_nowait must enter it (and must not sleep)."""
    a, b = socket.socketpair()
    with a, b:
        buf = bytearray(16)
        deferred.recv(a.fileno(), buf, user_data="r")
        deferred.submit()
        assert deferred.completions_nowait() == []  # nothing sent yet: nothing to see, and no sleep
        b.send(b"hello")
        deadline = time.monotonic() + WAIT
        got = []
        while not got and time.monotonic() < deadline:
            got = deferred.completions_nowait()
        assert [(c.user_data, c.res) for c in got] == [("r", 5)]
        assert bytes(buf[:5]) == b"hello"


def test_wait_completions_on_a_deferred_ring(deferred):
    a, b = socket.socketpair()
    with a, b:
        buf = bytearray(16)
        deferred.recv(a.fileno(), buf, user_data="r")
        threading.Timer(0.05, b.send, [b"x"]).start()
        (c,) = drain(deferred, 1)
        assert (c.user_data, c.res) == ("r", 1)


def test_another_thread_may_not_submit_on_a_deferred_ring(deferred):
    """SINGLE_ISSUER: the kernel answers a submit from another thread with -EEXIST, as an OSError."""
    deferred.nop()
    deferred.submit()  # this thread becomes (stays) the issuer
    drain(deferred, 1)
    errors = []

    def other():
        deferred.nop()
        try:
            deferred.submit()
        except OSError as e:
            errors.append(e.errno)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert errors == [17]  # EEXIST
