"""Chapter 08's features: SQE flags, linked chains, timeouts, cancellation, fixed files, SQPOLL."""

import errno
import os
import socket
import time

import pytest

from test_ring import WAIT, drain, require_io_uring, ring  # noqa: F401  (``ring`` is the shared fixture)
from uringkit.ring import Ring, SqeFlags

LINK = SqeFlags.LINK


@pytest.fixture
def socketpair():
    a, b = socket.socketpair()
    with a, b:
        yield a, b


def by_user_data(completions):
    return {c.user_data: c for c in completions}


# --- links ------------------------------------------------------------------------------------------------------
def test_linked_write_then_read_runs_in_order(ring, tmp_path):
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        buf = bytearray(5)
        ring.write(fd, b"chain", 0, flags=LINK, user_data="w")
        ring.read(fd, buf, 0, user_data="r")
        got = by_user_data(drain(ring, 2))
        assert got["w"].result() == 5 and got["r"].result() == 5 and buf == b"chain"
    finally:
        os.close(fd)


def test_a_failing_link_cancels_the_rest_of_the_chain(ring):
    ring.read(-1, bytearray(4), 0, flags=LINK, user_data="bad")
    ring.nop(flags=LINK, user_data="second")
    ring.nop(user_data="third")
    ring.nop(user_data="unlinked")
    got = by_user_data(drain(ring, 4))
    assert got["bad"].res == -errno.EBADF
    assert got["second"].res == -errno.ECANCELED and got["third"].res == -errno.ECANCELED
    assert got["unlinked"].res == 0


def test_hardlink_continues_after_a_failure(ring):
    ring.read(-1, bytearray(4), 0, flags=SqeFlags.HARDLINK, user_data="bad")
    ring.nop(user_data="after")
    got = by_user_data(drain(ring, 2))
    assert got["bad"].res == -errno.EBADF and got["after"].res == 0


def test_link_timeout_cancels_a_recv_that_never_completes(ring, socketpair):
    a, _ = socketpair
    t0 = time.monotonic()
    ring.recv(a.fileno(), bytearray(16), flags=LINK, user_data="recv")
    ring.link_timeout(0.05, user_data="lt")
    got = by_user_data(drain(ring, 2))
    assert got["recv"].res == -errno.ECANCELED and got["lt"].res == -errno.ETIME
    assert 0.04 <= time.monotonic() - t0 < WAIT


def test_link_timeout_is_cancelled_when_the_operation_finishes_first(ring, socketpair):
    a, b = socketpair
    b.send(b"ready")
    buf = bytearray(16)
    ring.recv(a.fileno(), buf, flags=LINK, user_data="recv")
    ring.link_timeout(WAIT, user_data="lt")
    got = by_user_data(drain(ring, 2))
    assert got["recv"].result() == 5 and got["lt"].res == -errno.ECANCELED


# --- drain, async, skip-success ----------------------------------------------------------------------------------
def test_drain_waits_for_everything_before_it(ring):
    ring.timeout(0.05, user_data="slow")
    ring.nop(flags=SqeFlags.DRAIN, user_data="drained")
    ring.nop(user_data="after")
    order = [c.user_data for c in drain(ring, 3)]
    assert order.index("slow") < order.index("drained")


def test_async_flag_still_reads(ring, tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"async read")
    fd = os.open(path, os.O_RDONLY)
    try:
        buf = bytearray(10)
        ring.read(fd, buf, 0, flags=SqeFlags.ASYNC)
        assert ring.wait_cqe(timeout=WAIT).result() == 10 and buf == b"async read"
    finally:
        os.close(fd)


def test_cqe_skip_success_posts_only_failures(ring):
    ring.nop(flags=SqeFlags.CQE_SKIP_SUCCESS, user_data="skipped")
    ring.read(-1, bytearray(1), 0, flags=SqeFlags.CQE_SKIP_SUCCESS, user_data="failed")
    ring.nop(user_data="marker")
    got = by_user_data(drain(ring, 2))
    assert set(got) == {"failed", "marker"} and got["failed"].res == -errno.EBADF
    assert ring.in_flight == 0                        # the skipped NOP owes no completion


def test_close_does_not_wait_for_a_skipped_completion(caps):
    require_io_uring(caps)
    ring = Ring(8)
    ring.nop(flags=SqeFlags.CQE_SKIP_SUCCESS)
    ring.submit()
    t0 = time.monotonic()
    ring.close()
    assert time.monotonic() - t0 < 0.5


# --- fixed files --------------------------------------------------------------------------------------------------
def test_fixed_file_reads_by_index(ring, tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"by index")
    fd = os.open(path, os.O_RDONLY)
    try:
        ring.register_files([fd])
        buf = bytearray(8)
        ring.read(0, buf, 0, flags=SqeFlags.FIXED_FILE)
        assert ring.wait_cqe(timeout=WAIT).result() == 8 and buf == b"by index"
        ring.read(1, buf, 0, flags=SqeFlags.FIXED_FILE)  # no such index
        assert ring.wait_cqe(timeout=WAIT).res in (-errno.EBADF, -errno.ENXIO)
        ring.unregister_files()
        ring.read(0, buf, 0, flags=SqeFlags.FIXED_FILE)
        assert ring.wait_cqe(timeout=WAIT).res < 0
    finally:
        os.close(fd)


# --- timeouts and cancellation --------------------------------------------------------------------------------------
def test_cancel_a_pending_recv(ring, socketpair):
    a, _ = socketpair
    target = ring.recv(a.fileno(), bytearray(8), user_data="recv")
    ring.submit()
    ring.cancel(target, user_data="cancel")
    got = by_user_data(drain(ring, 2))
    assert got["cancel"].result() == 0 and got["recv"].res == -errno.ECANCELED


def test_cancel_a_pending_timeout(ring):
    target = ring.timeout(60, user_data="t")
    ring.submit()
    ring.cancel(target, user_data="cancel")
    got = by_user_data(drain(ring, 2))
    assert got["cancel"].result() == 0 and got["t"].res == -errno.ECANCELED


def test_cancel_of_an_unknown_token_is_enoent(ring):
    ring.nop()
    done = ring.wait_cqe(timeout=WAIT).token
    ring.cancel(done)
    assert ring.wait_cqe(timeout=WAIT).res == -errno.ENOENT


def test_many_timeouts_fire_in_deadline_order(ring):
    for delay in (0.04, 0.01, 0.03, 0.02):
        ring.timeout(delay, user_data=delay)
    assert [c.user_data for c in drain(ring, 4)] == [0.01, 0.02, 0.03, 0.04]


# --- SQPOLL ------------------------------------------------------------------------------------------------------
def test_sqpoll_ring_submits_without_us(caps, tmp_path):
    require_io_uring(caps)
    if not caps.sqpoll:
        pytest.skip("SQPOLL is not permitted here (needs CAP_SYS_NICE before Linux 5.11)")
    path = tmp_path / "f"
    path.write_bytes(b"sqpoll" * 100)
    fd = os.open(path, os.O_RDONLY)
    try:
        with Ring(8, sqpoll=True, sq_thread_idle_ms=50) as ring:
            assert ring.sqpoll
            bufs = [bytearray(6) for _ in range(20)]       # more than the 8 entries: the queue fills and drains
            for i, buf in enumerate(bufs):
                ring.read(fd, buf, 6 * i, user_data=i)
            got = drain(ring, 20)
            assert sorted(c.user_data for c in got) == list(range(20))
            assert all(c.result() == 6 for c in got) and all(b == b"sqpoll" for b in bufs)
            time.sleep(0.1)                                 # the poller thread goes to sleep ...
            ring.nop(user_data="wake")                      # ... and submitting wakes it up
            assert ring.wait_cqe(timeout=WAIT).user_data == "wake"
    finally:
        os.close(fd)
