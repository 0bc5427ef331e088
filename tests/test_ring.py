"""Ring against real files, pipes and loopback sockets (see tests/test_ring_*.py for the rest)."""

import errno
import os

import pytest

from uringkit.ring import Ring, RingClosedError


@pytest.fixture
def ring(caps):
    if not caps.io_uring:
        pytest.skip(f"io_uring unavailable: {caps.io_uring_reason}")
    with Ring(64) as r:
        yield r


def test_nop_round_trip_carries_user_data(ring):
    token = ring.nop(user_data={"any": "object"})
    c = ring.wait_cqe(timeout=5)
    assert c.user_data == {"any": "object"} and c.res == 0 and c.token == token


def test_read_of_a_file(ring, tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"hello, ring")
    fd = os.open(path, os.O_RDONLY)
    try:
        buf = bytearray(64)
        ring.read(fd, buf, 0)
        c = ring.wait_cqe(timeout=5)
        assert c.result() == 11 and bytes(buf[:11]) == b"hello, ring"
    finally:
        os.close(fd)


def test_bad_fd_raises_ebadf_through_result(ring):
    ring.read(-1, bytearray(8), 0)
    c = ring.wait_cqe(timeout=5)
    with pytest.raises(OSError) as exc:
        c.result()
    assert exc.value.errno == errno.EBADF


def test_use_after_close_is_an_error_not_a_crash(caps):
    if not caps.io_uring:
        pytest.skip(caps.io_uring_reason)
    r = Ring(8)
    r.close()
    r.close()  # idempotent
    for call in (r.nop, r.submit, r.wait_cqe, r.completions_nowait, lambda: r.nop_batch(4)):
        with pytest.raises(RingClosedError):
            call()
