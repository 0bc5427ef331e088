"""The Ring options and paths the io_uring server's hot loop uses: DEFER_TASKRUN, send_recv, dispatch."""

import errno
import gc
import os
import socket
import threading
import time
import weakref

import pytest

from ringhelpers import WAIT, Buf, drain, require_io_uring
from uringkit._ring_types import SKIP_BIT, TURN_SEND_BIT
from uringkit.ring import PreparedBuffer, Ring, RingClosedError
from uringkit._ring_types import F_MORE


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
    assert errors == [errno.EEXIST]


# --- send_recv: a linked send (skipped on success) and recv, one call into C, one completion -----------------
@pytest.fixture
def pair():
    a, b = socket.socketpair()
    with a, b:
        yield a, b


def test_send_recv_posts_one_completion_for_a_good_turn(ring, pair):
    a, b = pair
    buf = Buf(64)
    ref = weakref.ref(buf)
    send_token, recv_token = ring.send_recv(a.fileno(), Buf(b"response"), buf, user_data="turn")
    assert send_token == recv_token | SKIP_BIT | TURN_SEND_BIT
    ring.submit()
    assert b.recv(64) == b"response"  # the send went first
    b.send(b"next request")
    (c,) = drain(ring, 1)
    assert (c.user_data, c.res, c.token) == ("turn", 12, recv_token)
    del buf
    gc.collect()
    assert ref() is None  # released once its completion was reaped
    assert ring.in_flight == 0 and ring.wait_completions(0, timeout=0.05) == []  # no completion of the send


def test_send_recv_keeps_both_buffers_alive_until_the_recv_completes(ring, pair):
    a, b = pair
    data, buf = Buf(b"abc"), Buf(8)
    refs = weakref.ref(data), weakref.ref(buf)
    ring.send_recv(a.fileno(), data, buf, user_data="turn")
    del data, buf
    gc.collect()
    assert all(r() is not None for r in refs)
    ring.submit()
    assert b.recv(8) == b"abc"
    b.send(b"z")
    drain(ring, 1)
    gc.collect()
    assert all(r() is None for r in refs)


def test_send_recv_sends_everything_before_the_recv_starts(ring, pair):
    """A send larger than the socket buffers is finished by the kernel (MSG_WAITALL), not cut short."""
    a, b = pair
    data = bytes(range(256)) * 4096  # 1 MiB
    buf = bytearray(16)
    ring.send_recv(a.fileno(), data, buf, user_data="turn")
    ring.submit()
    got = bytearray()
    b.settimeout(WAIT)
    while len(got) < len(data):
        assert ring.completions_nowait() == []  # the recv has not even started
        got += b.recv(1 << 16)
    assert got == data
    b.send(b"ok")
    (c,) = drain(ring, 1)
    assert (c.res, bytes(buf[:2])) == (2, b"ok")


def test_send_recv_whose_send_fails_completes_once_with_the_send_error(ring, pair):
    a, b = pair
    b.close()  # the send meets EPIPE (Python ignores SIGPIPE)
    buf = Buf(8)
    ref = weakref.ref(buf)
    _, token = ring.send_recv(a.fileno(), b"response", buf, user_data="turn")
    (c,) = drain(ring, 1)
    assert (c.user_data, c.res, c.token) == ("turn", -errno.EPIPE, token)
    assert ring.wait_completions(0, timeout=0.05) == []  # no second completion (of the cancelled recv)
    assert ring.in_flight == 0
    del buf
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("stage", ["send", "recv"])
def test_cancelling_both_tokens_ends_a_turn_at_either_stage(ring, pair, stage):
    a, b = pair
    data = bytes(1 << 22) if stage == "send" else b"x"  # 4 MiB: the send parks until the peer reads
    tokens = ring.send_recv(a.fileno(), data, bytearray(8), user_data="turn")
    ring.submit()
    if stage == "recv":
        assert b.recv(8) == b"x"
    time.sleep(0.05)
    for token in tokens:
        ring.cancel(token, user_data="cancel")
    got = drain(ring, 3)
    turn = [c for c in got if c.user_data == "turn"]
    # a send cancelled after sending a part reports -ECONNRESET: the stream is broken mid-message
    assert [c.res for c in turn] == [-errno.ECONNRESET if stage == "send" else -errno.ECANCELED]
    assert sorted(c.res for c in got if c.user_data == "cancel") == [-errno.ENOENT, 0]


def test_send_recv_queues_its_pair_whole_when_the_queue_is_nearly_full(caps, pair):
    """With one free SQE the pair cannot fit: the queued entries are submitted first, so the link holds."""
    require_io_uring(caps)
    a, b = pair
    with Ring(2) as ring:
        ring.nop(user_data="nop")  # one of two slots taken
        buf = bytearray(8)
        ring.send_recv(a.fileno(), b"resp", buf, user_data="turn")
        ring.submit()
        assert b.recv(8) == b"resp"
        b.send(b"q")
        got = drain(ring, 2)
        assert sorted((str(c.user_data), c.res) for c in got) == [("nop", 0), ("turn", 1)]


def test_send_recv_on_a_closed_ring_is_an_error(caps, pair):
    require_io_uring(caps)
    ring = Ring(4)
    ring.close()
    with pytest.raises(RingClosedError):
        ring.send_recv(pair[0].fileno(), b"x", bytearray(1))


def test_send_recv_refuses_a_read_only_receive_buffer(ring, pair):
    with pytest.raises(BufferError):
        ring.send_recv(pair[0].fileno(), b"x", b"read-only")
    assert ring.in_flight == 0


# --- dispatch: call user_data(res, flags) for each completion, no Completion tuples ------------------------------
def test_dispatch_calls_each_user_data_in_order_after_before(ring):
    calls = []
    for i in range(3):
        ring.nop(user_data=lambda res, flags, i=i: calls.append((i, res, flags)))
    assert ring.dispatch(lambda: calls.append("before")) == 3
    assert calls == ["before", (0, 0, 0), (1, 0, 0), (2, 0, 0)]
    assert ring.in_flight == 0


def test_dispatch_keeps_a_multishot_registered_until_its_last_completion(ring):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        fds = []
        ring.accept(listener.fileno(), multishot=True, user_data=lambda res, flags: fds.append((res, flags)))
        clients = [socket.create_connection(listener.getsockname()) for _ in range(2)]
        try:
            deadline = time.monotonic() + WAIT
            while len(fds) < 2 and time.monotonic() < deadline:
                ring.dispatch()
            assert len(fds) == 2 and all(res >= 0 and flags & F_MORE for res, flags in fds)
            assert ring.in_flight == 1  # still accepting
        finally:
            for res, _ in fds:
                os.close(res)
            for c in clients:
                c.close()


def test_dispatch_loses_nothing_when_a_callback_raises(ring):
    calls = []

    def boom(res, flags):
        raise RuntimeError("callback failed")

    ring.nop(user_data=lambda res, flags: calls.append(1))
    ring.nop(user_data=boom)
    ring.nop(user_data=lambda res, flags: calls.append(3))
    ring.nop(user_data=lambda res, flags: calls.append(4))
    with pytest.raises(RuntimeError, match="callback failed"):
        ring.dispatch()
    assert calls == [1]
    assert ring.dispatch() == 2  # the two after the failing one, without waiting for anything new
    assert calls == [1, 3, 4]
    assert ring.in_flight == 0 and ring.wait_completions(0, timeout=0.05) == []  # and nothing twice


def test_dispatch_survives_a_callback_that_reaps(ring):
    """A callback that reaps overwrites the ring's output arrays; dispatch works from its own copy."""
    calls, later = [], []

    def reaping(res, flags):
        calls.append("a")
        ring.nop(user_data="c1")
        ring.nop(user_data="c2")
        ring.submit()
        later.extend(ring.completions_nowait())  # two completions: written over slots 0 and 1 of the output

    ring.nop(user_data=reaping)
    ring.nop(user_data=lambda res, flags: calls.append("b"))
    assert ring.dispatch() == 2
    assert calls == ["a", "b"]
    assert [c.user_data for c in later] == ["c1", "c2"]
    assert ring.in_flight == 0


def test_dispatch_hands_out_completions_another_method_reaped_first(ring):
    calls = []
    ring.nop(user_data=lambda res, flags: calls.append("nop"))
    ring.nop_batch(2, wait=True)  # reaps the nop's completion too, into the ready queue
    assert ring.dispatch() == 1 and calls == ["nop"]


def test_dispatch_on_a_closed_ring_is_an_error(caps):
    require_io_uring(caps)
    ring = Ring(4)
    ring.close()
    with pytest.raises(RingClosedError):
        ring.dispatch()


# --- PreparedBuffer: converted for C once, passed to send_recv many times -----------------------------------------
def test_send_recv_takes_prepared_buffers_for_both_sides(ring, pair):
    a, b = pair
    rbuf = bytearray(16)
    answer, into = PreparedBuffer(b"answer"), PreparedBuffer(rbuf, writable=True)
    for request in (b"one", b"three"):
        ring.send_recv(a.fileno(), answer, into, user_data="turn")
        ring.submit()
        assert b.recv(16) == b"answer"
        b.send(request)
        (c,) = drain(ring, 1)
        assert bytes(rbuf[:c.res]) == request


def test_a_read_only_prepared_buffer_cannot_receive(ring, pair):
    with pytest.raises(ValueError, match="writable"):
        ring.send_recv(pair[0].fileno(), b"x", PreparedBuffer(bytearray(4)))
    with pytest.raises(BufferError):
        PreparedBuffer(b"read-only", writable=True)
    assert ring.in_flight == 0


def test_a_prepared_buffer_stays_alive_while_its_turn_is_in_flight(ring, pair):
    a, b = pair
    obj = Buf(8)
    ref = weakref.ref(obj)
    prepared = PreparedBuffer(obj, writable=True)
    assert len(prepared) == 8
    ring.send_recv(a.fileno(), b"x", prepared, user_data="turn")
    del obj, prepared
    gc.collect()
    assert ref() is not None  # the ring holds the prepared buffer, which holds obj
    ring.submit()
    assert b.recv(8) == b"x"
    b.send(b"y")
    drain(ring, 1)
    gc.collect()
    assert ref() is None
