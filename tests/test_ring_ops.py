"""Every single operation of Ring against real files, pipes and loopback sockets."""

import errno
import os
import select
import socket
import stat

import pytest

from test_ring import WAIT, drain, ring  # noqa: F401  (``ring`` is the shared fixture)
from uringkit.ring import StatxResult


@pytest.fixture
def file(tmp_path):
    """A 64 KiB file of known bytes, open for reading and writing."""
    path = tmp_path / "data"
    path.write_bytes(bytes(range(256)) * 256)
    fd = os.open(path, os.O_RDWR)
    yield path, fd
    os.close(fd)


@pytest.fixture
def pipe():
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)


@pytest.fixture
def listener():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s


def test_nop(ring):
    ring.nop(user_data="n")
    assert ring.wait_cqe(timeout=WAIT)[:3] == ("n", 0, 0)


def test_read_at_offset_and_at_the_file_position(ring, file):
    path, fd = file
    buf = bytearray(16)
    ring.read(fd, buf, 256 + 16)
    assert ring.wait_cqe(timeout=WAIT).result() == 16 and buf == bytes(range(16, 32))
    os.lseek(fd, 3, os.SEEK_SET)
    ring.read(fd, buf, nbytes=4)                       # offset -1: the file position, which advances
    assert ring.wait_cqe(timeout=WAIT).result() == 4 and buf[:4] == bytes([3, 4, 5, 6])
    assert os.lseek(fd, 0, os.SEEK_CUR) == 7


def test_read_past_the_end_returns_zero(ring, file):
    _, fd = file
    ring.read(fd, bytearray(8), 1 << 20)
    assert ring.wait_cqe(timeout=WAIT).result() == 0


def test_write_then_read_back(ring, file):
    path, fd = file
    ring.write(fd, b"hello", 100)
    assert ring.wait_cqe(timeout=WAIT).result() == 5
    assert path.read_bytes()[100:105] == b"hello"
    ring.write(fd, memoryview(b"xxABCxx")[2:5], 0)     # any bytes-like object, slices included
    assert ring.wait_cqe(timeout=WAIT).result() == 3
    assert path.read_bytes()[:3] == b"ABC"


def test_readv_scatters(ring, file):
    _, fd = file
    a, b = bytearray(3), bytearray(5)
    ring.readv(fd, [a, b], 10)
    assert ring.wait_cqe(timeout=WAIT).result() == 8
    assert a == bytes([10, 11, 12]) and b == bytes(range(13, 18))


def test_writev_gathers(ring, file):
    path, fd = file
    ring.writev(fd, [b"ab", bytearray(b"cde"), memoryview(b"f")], 1000)
    assert ring.wait_cqe(timeout=WAIT).result() == 6
    assert path.read_bytes()[1000:1006] == b"abcdef"


def test_read_fixed_and_write_fixed_with_registered_buffers(ring, file):
    path, fd = file
    bufs = [bytearray(4096), bytearray(4096)]
    ring.register_buffers(bufs)
    ring.read_fixed(fd, 1, 100, 0, buf_offset=50)
    assert ring.wait_cqe(timeout=WAIT).result() == 100
    assert bufs[1][50:150] == (bytes(range(256)) * 2)[:100] and not any(bufs[0])
    bufs[0][:4] = b"FIXD"
    ring.write_fixed(fd, 0, 4, 2000)
    assert ring.wait_cqe(timeout=WAIT).result() == 4
    assert path.read_bytes()[2000:2004] == b"FIXD"
    with pytest.raises(ValueError):
        ring.read_fixed(fd, 0, 4097, 0)                # outside the registered buffer
    with pytest.raises(ValueError):
        ring.read_fixed(fd, 2, 10, 0)                  # no such buffer
    ring.unregister_buffers()
    with pytest.raises(ValueError):
        ring.write_fixed(fd, 0, 4, 0)


def test_openat_then_close_fd(ring, file):
    path, _ = file
    ring.openat(path, os.O_RDONLY)
    fd = ring.wait_cqe(timeout=WAIT).result()
    assert os.pread(fd, 4, 0) == bytes([0, 1, 2, 3])
    ring.close_fd(fd)
    assert ring.wait_cqe(timeout=WAIT).result() == 0
    with pytest.raises(OSError):
        os.fstat(fd)


def test_openat_relative_to_a_directory_and_missing_file(ring, tmp_path):
    (tmp_path / "rel").write_bytes(b"r")
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        ring.openat("rel", dirfd=dfd)
        fd = ring.wait_cqe(timeout=WAIT).result()
        os.close(fd)
        ring.openat(tmp_path / "missing")
        with pytest.raises(FileNotFoundError):
            ring.wait_cqe(timeout=WAIT).result()
    finally:
        os.close(dfd)


def test_openat_creates_with_mode(ring, tmp_path):
    ring.openat(tmp_path / "new", os.O_CREAT | os.O_WRONLY, 0o600)
    fd = ring.wait_cqe(timeout=WAIT).result()
    os.close(fd)
    assert stat.S_IMODE(os.stat(tmp_path / "new").st_mode) == 0o600 & ~_umask()


def _umask():
    old = os.umask(0)
    os.umask(old)
    return old


def test_fsync_and_fdatasync(ring, file):
    _, fd = file
    ring.fsync(fd)
    ring.fsync(fd, datasync=True)
    assert [c.result() for c in drain(ring, 2)] == [0, 0]
    ring.fsync(-1)
    assert ring.wait_cqe(timeout=WAIT).res == -errno.EBADF


def test_statx(ring, file):
    path, _ = file
    out = StatxResult()
    ring.statx(path, out)
    assert ring.wait_cqe(timeout=WAIT).result() == 0
    st = os.stat(path)
    assert (out.size, out.ino, out.mode, out.nlink, out.uid, out.gid) == \
        (65536, st.st_ino, st.st_mode, st.st_nlink, st.st_uid, st.st_gid)
    assert out.mtime_ns == st.st_mtime_ns and out.blocks == st.st_blocks


def test_statx_of_a_missing_path(ring, tmp_path):
    ring.statx(tmp_path / "nope", StatxResult())
    assert ring.wait_cqe(timeout=WAIT).res == -errno.ENOENT


def test_pipe_write_then_read(ring, pipe):
    r, w = pipe
    buf = bytearray(10)
    ring.read(r, buf, user_data="r")                  # waits for data: pipes ignore the offset
    ring.write(w, b"through", user_data="w")
    got = {c.user_data: c.result() for c in drain(ring, 2)}
    assert got == {"r": 7, "w": 7} and buf[:7] == b"through"


def test_connect_accept_send_recv_over_loopback(ring, listener):
    with socket.socket() as client:
        ring.accept(listener.fileno(), user_data="accept")
        ring.connect(client.fileno(), listener.getsockname(), user_data="connect")
        got = {c.user_data: c.result() for c in drain(ring, 2)}
        assert got["connect"] == 0
        with socket.socket(fileno=got["accept"]) as server:
            assert server.getpeername() == client.getsockname()
            buf = bytearray(64)
            ring.send(client.fileno(), b"ping", user_data="send")
            ring.recv(server.fileno(), buf, user_data="recv")
            got = {c.user_data: c.result() for c in drain(ring, 2)}
            assert got == {"send": 4, "recv": 4} and buf[:4] == b"ping"
            client.shutdown(socket.SHUT_WR)
            ring.recv(server.fileno(), buf)
            assert ring.wait_cqe(timeout=WAIT).result() == 0  # the peer closed


def test_accept_with_sock_flags(ring, listener):
    with socket.create_connection(listener.getsockname()):
        ring.accept(listener.fileno(), sock_flags=socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        fd = ring.wait_cqe(timeout=WAIT).result()
        try:
            assert not os.get_inheritable(fd) and not os.get_blocking(fd)
        finally:
            os.close(fd)


def test_multishot_accept_stays_armed(ring, listener, caps):
    if not caps.multishot_accept:
        pytest.skip("multishot accept is not supported by this kernel (5.19+)")
    token = ring.accept(listener.fileno(), multishot=True, user_data="ms")
    ring.submit()
    clients = [socket.create_connection(listener.getsockname()) for _ in range(3)]
    try:
        got = drain(ring, 3)
        assert all(c.user_data == "ms" and c.token == token and c.more for c in got)
        for c in got:
            os.close(c.result())
        assert ring.in_flight == 1                    # still armed after three connections
        ring.cancel(token, user_data="cancel")
        got = {c.user_data: c for c in drain(ring, 2)}
        assert got["cancel"].result() == 0
        assert got["ms"].res == -errno.ECANCELED and not got["ms"].more
        assert ring.in_flight == 0
    finally:
        for s in clients:
            s.close()


def test_connect_refused(ring):
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]  # bound but not listening: connecting is refused
        with socket.socket() as client:
            ring.connect(client.fileno(), ("127.0.0.1", port))
            with pytest.raises(ConnectionRefusedError):
                ring.wait_cqe(timeout=WAIT).result()


def test_connect_ipv6_loopback(ring):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        lst = socket.socket(socket.AF_INET6)
        lst.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    with lst, socket.socket(socket.AF_INET6) as client:
        lst.listen(1)
        ring.connect(client.fileno(), lst.getsockname())
        assert ring.wait_cqe(timeout=WAIT).result() == 0
        conn, _ = lst.accept()
        conn.close()


def test_send_and_recv_on_a_socketpair_with_msg_flags(ring):
    a, b = socket.socketpair()
    with a, b:
        b.send(b"peekable")
        buf = bytearray(8)
        ring.recv(a.fileno(), buf, msg_flags=socket.MSG_PEEK)
        assert ring.wait_cqe(timeout=WAIT).result() == 8 and buf == b"peekable"
        assert a.recv(8) == b"peekable"                # MSG_PEEK left it there
        ring.recv(a.fileno(), buf, msg_flags=socket.MSG_DONTWAIT)
        assert ring.wait_cqe(timeout=WAIT).res == -errno.EAGAIN


def test_timeout_expires_with_etime(ring):
    ring.timeout(0.01, user_data="t")
    c = ring.wait_cqe(timeout=WAIT)
    assert c.user_data == "t" and c.res == -errno.ETIME


def test_timeout_with_count_completes_after_other_completions(ring):
    ring.timeout(WAIT, count=2, user_data="t")
    ring.nop(user_data=1)
    ring.nop(user_data=2)
    got = {c.user_data: c.res for c in drain(ring, 3)}
    assert got == {1: 0, 2: 0, "t": 0}


def test_poll_add_on_a_pipe(ring, pipe):
    r, w = pipe
    ring.poll_add(r, select.POLLIN, user_data="in")
    ring.submit()
    assert ring.wait_cqe(timeout=0.02) is None        # nothing to read yet
    os.write(w, b"!")
    c = ring.wait_cqe(timeout=WAIT)
    assert c.user_data == "in" and c.result() & select.POLLIN
    ring.poll_add(w, select.POLLOUT)
    assert ring.wait_cqe(timeout=WAIT).result() & select.POLLOUT
