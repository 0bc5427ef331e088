"""Ring: lifecycle, error paths, a full submission queue, buffers kept alive, close() with work in flight.

The operations themselves are in test_ring_ops.py, SQE flags/links/timeouts/cancellation/SQPOLL in
test_ring_advanced.py, batches and the randomized stress test in test_ring_batch.py. Those files import the
``ring`` fixture from conftest.py and the helpers from ringhelpers.py.
"""

import errno
import gc
import os
import signal
import socket
import threading
import time
import weakref

import pytest

from uringkit.ring import Ring, RingClosedError, UringUnavailable, check, probe, supports

from ringhelpers import WAIT, Buf, drain, require_io_uring, signal_after

# --- round trips and the user_data codec -------------------------------------------------------------------------
def test_nop_round_trip_carries_user_data(ring):
    token = ring.nop(user_data={"any": "object"})
    c = ring.wait_cqe(timeout=WAIT)
    assert c.user_data == {"any": "object"} and c.res == 0 and c.token == token and not c.more
    assert c.result() == 0 and ring.in_flight == 0


def test_tokens_count_up_and_are_never_reused(ring):
    tokens = [ring.nop(user_data=i) for i in range(10)]
    assert tokens == sorted(set(tokens)) and tokens[0] >= 1
    got = drain(ring, 10)
    assert sorted(c.token for c in got) == tokens
    assert {c.token: c.user_data for c in got} == dict(zip(tokens, range(10)))
    assert ring.nop() > tokens[-1]
    drain(ring, 1)


def test_wait_cqe_times_out_with_none(ring):
    t0 = time.monotonic()
    assert ring.wait_cqe(timeout=0.05) is None
    assert 0.04 <= time.monotonic() - t0 < 1.0
    assert ring.completions_nowait() == []


def test_wait_cqe_with_timeout_zero_still_looks(ring):
    ring.nop(user_data="ready")
    ring.submit()
    time.sleep(0.01)
    c = ring.wait_cqe(timeout=0)
    assert c is not None and c.user_data == "ready"


def test_wait_completions_gathers_more_than_the_completion_queue_holds(caps):
    require_io_uring(caps)
    with Ring(4) as ring:                                  # a completion queue of 8
        for i in range(20):
            ring.nop(user_data=i)
        t0 = time.monotonic()
        got = ring.wait_completions(20, timeout=WAIT)
        assert sorted(c.user_data for c in got) == list(range(20)) and time.monotonic() - t0 < 1.0


def test_completions_nowait_returns_what_is_ready(ring):
    ring.nop(user_data="a")
    ring.nop(user_data="b")
    assert ring.completions_nowait() == []      # nowait does not submit
    assert ring.submit() == 2
    deadline = time.monotonic() + WAIT
    got = []
    while len(got) < 2 and time.monotonic() < deadline:
        got += ring.completions_nowait()
    assert sorted(c.user_data for c in got) == ["a", "b"]


def test_submit_and_wait_then_reap(ring):
    ring.nop(user_data=1)
    ring.nop(user_data=2)
    assert ring.submit_and_wait(2) == 2
    assert sorted(c.user_data for c in ring.completions_nowait()) == [1, 2]


def test_fileno_and_probe(ring):
    assert os.fstat(ring.fileno())  # a real fd
    assert {"nop", "read", "write"} <= ring.probe()
    assert ring.sq_space_left() == 64


# --- error paths --------------------------------------------------------------------------------------------------
def test_bad_fd_raises_ebadf_through_result(ring):
    ring.read(-1, bytearray(8), 0)
    c = ring.wait_cqe(timeout=WAIT)
    assert c.res == -errno.EBADF
    with pytest.raises(OSError) as exc:
        c.result()
    assert exc.value.errno == errno.EBADF


def test_check_is_the_one_choke_point():
    assert check(5) == 5
    with pytest.raises(OSError) as exc:
        check(-errno.ENOENT)
    assert exc.value.errno == errno.ENOENT and isinstance(exc.value, FileNotFoundError)


def test_use_after_close_is_an_error_not_a_crash(caps, tmp_path):
    require_io_uring(caps)
    r = Ring(8)
    r.close()
    r.close()  # idempotent
    assert r.closed
    path = tmp_path / "f"
    path.write_bytes(b"x")
    calls = [r.nop, r.submit, r.submit_and_wait, r.wait_cqe, r.completions_nowait, r.wait_completions,
             r.fileno, r.sq_space_left, r.probe, lambda: r.nop_batch(4),
             lambda: r.read(0, bytearray(4)), lambda: r.write(1, b"x"), lambda: r.timeout(1),
             lambda: r.openat(path), lambda: r.read_batch(0, bytearray(8), 4, [0, 4]),
             lambda: r.register_files([0]), lambda: r.register_buffers([bytearray(8)])]
    for call in calls:
        with pytest.raises(RingClosedError):
            call()


def test_context_manager_closes(caps):
    require_io_uring(caps)
    with Ring(8) as r:
        fd = r.fileno()
    assert r.closed
    with pytest.raises(OSError) as exc:
        os.fstat(fd)
    assert exc.value.errno == errno.EBADF


def test_bad_arguments_are_refused_before_the_kernel(ring):
    with pytest.raises(ValueError):
        ring.timeout(-1)
    with pytest.raises(ValueError):
        ring.timeout(float("nan"))
    with pytest.raises(ValueError):
        ring.read_fixed(0, 0, 8)            # nothing registered
    with pytest.raises(BufferError):
        ring.read(0, b"read-only bytes")    # the kernel would write into it
    with pytest.raises(ValueError):
        ring.read_batch(0, bytearray(8), 4, [0, 4, 8])
    assert ring.in_flight == 0


# --- a full submission queue is handled, not lost --------------------------------------------------------------
@pytest.mark.parametrize("n", [9, 100, 1000])
def test_more_ops_than_entries_all_complete_exactly_once(caps, n):
    require_io_uring(caps)
    with Ring(8) as ring:
        tokens = {ring.nop(user_data=i): i for i in range(n)}
        got = drain(ring, n)
        assert sorted(c.user_data for c in got) == list(range(n))
        assert all(tokens[c.token] == c.user_data for c in got)
        assert ring.in_flight == 0 and ring.wait_cqe(timeout=0.01) is None


def test_more_ops_than_the_completion_queue_without_reaping(caps):
    """The CQ holds 2 x entries; the rest overflow inside the kernel (FEAT_NODROP) and must still arrive."""
    require_io_uring(caps)
    with Ring(4) as ring:
        for i in range(50):
            ring.nop(user_data=i)
        ring.submit()
        assert sorted(c.user_data for c in drain(ring, 50)) == list(range(50))


# --- buffers in flight survive the caller dropping them --------------------------------------------------------------
def test_recv_buffer_survives_del_and_gc(ring):
    a, b = socket.socketpair()
    with a, b:
        buf = Buf(32)
        alive = weakref.ref(buf)
        ring.recv(a.fileno(), buf, user_data="recv")
        ring.submit()
        del buf
        gc.collect()
        assert alive() is not None, "the ring let go of a buffer the kernel is about to write"
        buf = alive()
        b.send(b"written after the del")
        c = ring.wait_cqe(timeout=WAIT)
        assert c.user_data == "recv" and c.result() == 21 and bytes(buf[:21]) == b"written after the del"
    del buf
    gc.collect()
    assert alive() is None, "the ring kept the buffer after its completion was reaped"


def test_freed_buffer_memory_is_not_written_by_the_kernel(ring):
    """If the ring dropped the buffer, its memory would be reused by one of these same-sized decoys and the
    kernel's write would land in it (or crash the process)."""
    a, b = socket.socketpair()
    with a, b:
        ring.recv(a.fileno(), bytearray(4096), user_data="recv")
        ring.submit()
        gc.collect()
        decoys = [bytearray(4096) for _ in range(200)]
        payload = b"kernel-written payload " * 100
        b.send(payload[:4096])
        c = ring.wait_cqe(timeout=WAIT)
        assert c.result() == len(payload[:4096])
        assert not any(any(d) for d in decoys), "the kernel wrote into memory the ring had released"


def test_write_source_survives_del_and_gc(ring):
    r, w = os.pipe()
    try:
        data = Buf(b"z" * 1000)
        alive = weakref.ref(data)
        ring.write(w, data, user_data="w")
        del data
        gc.collect()
        assert alive() is not None
        assert ring.wait_cqe(timeout=WAIT).result() == 1000
        assert os.read(r, 2000) == b"z" * 1000
        gc.collect()
        assert alive() is None
    finally:
        os.close(r)
        os.close(w)


def test_user_data_is_released_after_its_completion(ring):
    class Token:
        pass

    obj = Token()
    alive = weakref.ref(obj)
    ring.nop(user_data=obj)
    del obj
    gc.collect()
    assert alive() is not None
    c = ring.wait_cqe(timeout=WAIT)
    assert c.user_data is alive()
    del c
    gc.collect()
    assert alive() is None


# --- close() with operations in flight ------------------------------------------------------------------------------
def test_close_with_a_recv_that_never_completes_is_prompt(caps):
    require_io_uring(caps)
    a, b = socket.socketpair()
    with a, b:
        ring = Ring(8)
        fd = ring.fileno()
        ring.recv(a.fileno(), bytearray(64))
        ring.timeout(60)
        ring.submit()
        t0 = time.monotonic()
        ring.close()
        assert time.monotonic() - t0 < 0.5
        assert ring.closed and ring.in_flight == 0
        with pytest.raises(OSError):
            os.fstat(fd)   # the ring's fd is gone (the fixture checks that nothing else leaked)
        b.send(b"after close")  # the cancelled recv must not take it
        assert a.recv(64) == b"after close"


def test_close_with_unsubmitted_entries_and_batches(caps):
    require_io_uring(caps)
    ring = Ring(8)
    for _ in range(5):
        ring.nop()
    ring.nop_batch(20)
    ring.close()
    assert ring.closed and ring.in_flight == 0


def test_garbage_collected_ring_closes_itself(caps):
    require_io_uring(caps)
    ring = Ring(8)
    fd = ring.fileno()
    ring.nop()
    del ring
    gc.collect()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_close_drops_what_was_reaped_but_not_handed_out(caps):
    require_io_uring(caps)
    ring = Ring(8)
    ring.nop()
    ring.nop()
    assert ring.wait_cqe(timeout=WAIT) is not None   # the second completion was reaped in the same call
    ring.close()
    with pytest.raises(RingClosedError):
        ring.wait_cqe()


# --- signals: a wait with no timeout can still be interrupted (Ctrl-C) ------------------------------------------
class Interrupted(Exception):
    pass


def raise_interrupted(signum, frame):
    raise Interrupted


def test_a_signal_handler_that_raises_interrupts_wait_cqe(ring):
    t0 = time.monotonic()
    with signal_after(0.05, raise_interrupted), pytest.raises(Interrupted):
        ring.wait_cqe()                              # nothing in flight: only the signal can end this wait
    assert time.monotonic() - t0 < 1.0


@pytest.mark.parametrize("wait", ["wait_cqe", "wait_completions", "submit_and_wait"])
def test_a_signal_interrupts_a_wait_that_also_submitted(ring, wait):
    """One io_uring_enter that submits and then sleeps reports the submission, not -EINTR, when a signal cuts
    the sleep short; the ring must still hand control back to Python so the handler (Ctrl-C) runs."""
    a, b = socket.socketpair()
    rescue = threading.Timer(3.0, b.send, [b"rescue"])  # if the signal were ignored: fail, do not hang
    rescue.start()
    try:
        ring.recv(a.fileno(), bytearray(8))          # queued, not submitted: the wait below submits it
        t0 = time.monotonic()
        with signal_after(0.05, raise_interrupted), pytest.raises(Interrupted):
            getattr(ring, wait)()
        assert time.monotonic() - t0 < 1.0, "the signal handler ran only once a completion arrived"
    finally:
        rescue.cancel()
        rescue.join()
        a.close()
        b.close()


def test_a_signal_handler_that_returns_lets_the_wait_go_on(ring):
    hits = []
    with signal_after(0.02, lambda signum, frame: hits.append(signum)):
        ring.timeout(0.1, user_data="t")
        assert ring.wait_cqe().user_data == "t"      # EINTR was retried, not raised
    assert hits == [signal.SIGUSR1]


# --- setup errors and the capability probe ------------------------------------------------------------------------
def test_invalid_entries_is_an_oserror(caps):
    require_io_uring(caps)
    with pytest.raises(OSError) as exc:
        Ring(0)
    assert exc.value.errno == errno.EINVAL


def test_disable_switch_makes_ring_unavailable(monkeypatch):
    monkeypatch.setenv("URINGKIT_DISABLE_IO_URING", "1")
    with pytest.raises(UringUnavailable) as exc:
        Ring(8)
    assert "URINGKIT_DISABLE_IO_URING" in str(exc.value)


def test_supports_asks_the_kernel_probe(caps):
    assert supports("nop") == caps.io_uring
    assert supports("NOP") == supports("nop")
    with pytest.raises(ValueError):
        supports("no_such_op")
    assert probe() == caps.opcodes
