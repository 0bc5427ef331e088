"""Ring: io_uring from Python, over liburing (introduced in chapter 06, "Inside io_uring").

A Ring owns one io_uring instance. Each operation method prepares one submission queue entry (SQE) and returns
its *token*; ``submit()`` hands the queued entries to the kernel; completions come back as ``Completion``
tuples ``(user_data, res, flags, token)``. Anything the kernel may touch - the buffer of a read, the path of an
openat, the timespec of a timeout - is kept alive by the ring until that operation's last completion is reaped,
so ``del buf; gc.collect()`` while a read is in flight is safe.

The per-batch fast paths (``nop_batch``, ``read_batch``, ``write_batch``) prepare many SQEs in one call into C
and deliver their results straight into a ``Batch``; Python then pays per batch, not per operation (see
``benchmarks/ring.py`` for what that buys).

user_data codec (mirrors ``native/ring.h``)::

     63 62          48 47            32 31                              0
    +--+--------------+----------------+--------------------------------+
    | 1|   reserved   |   batch slot   |        index within batch      |   batch operation
    +--+--------------+----------------+--------------------------------+
    | 0|                         token (63 bits)                        |   single operation
    +--+----------------------------------------------------------------+

Tokens count up from 1 and are never reused within a ring, so a late completion cannot be mistaken for a newer
operation. Try it::

    with Ring() as ring:
        ring.nop(user_data="hello")
        ring.submit()
        print(ring.wait_cqe())      # Completion(user_data='hello', res=0, flags=0, token=1)
"""

from __future__ import annotations

import enum
import errno
from collections import deque
import math
import os
import socket
import struct
import time
from typing import Any, Iterable, NamedTuple, Sequence

from . import _availability
from ._native import ffi, lib

__all__ = [
    "Batch", "Completion", "Ring", "RingClosedError", "SqeFlags", "StatxResult", "UringUnavailable",
    "check", "probe", "supports",
]

BATCH_BIT = 1 << 63
U64 = (1 << 64) - 1     # offset -1 means 'the file position', as (u64)-1 in the SQE
TOKEN_MASK = BATCH_BIT - 1
MAX_BATCHES = 1024        # == UK_MAX_BATCHES in native/ring.h: batches in flight at once
EINTR = errno.EINTR
CLOSE_DRAIN_SECONDS = 1.0  # how long close() waits for cancelled operations before it stops waiting


class RingClosedError(ValueError):
    """The ring was closed; no operation can be prepared, submitted or reaped on it."""


class UringUnavailable(OSError):
    """io_uring cannot be used here; the message says why in one line (sysctl, seccomp, old kernel)."""


class SqeFlags(enum.IntFlag):
    """Per-SQE flags (``flags=`` of every operation). Values come from the kernel header, not from this file."""

    NONE = 0
    LINK = lib.IOSQE_IO_LINK            # the next SQE starts only if this one succeeds
    HARDLINK = lib.IOSQE_IO_HARDLINK    # the next SQE starts when this one ends, whatever its result
    DRAIN = lib.IOSQE_IO_DRAIN          # start only after every earlier SQE has completed
    FIXED_FILE = lib.IOSQE_FIXED_FILE   # ``fd`` is an index into the registered files
    ASYNC = lib.IOSQE_ASYNC             # skip the inline attempt; go straight to an io-wq worker
    CQE_SKIP_SUCCESS = lib.IOSQE_CQE_SKIP_SUCCESS  # post no completion if it succeeds


def check(res: int) -> int:
    """The one place a negative io_uring result becomes an exception: ``-errno`` -> ``OSError(errno, strerror)``."""
    if res < 0:
        raise OSError(-res, os.strerror(-res))
    return res


class Completion(NamedTuple):
    """One completion queue entry: the caller's ``user_data`` object, the result, the CQE flags, the token."""

    user_data: Any
    res: int
    flags: int
    token: int

    @property
    def more(self) -> bool:
        """True if the operation is multishot and further completions will follow."""
        return bool(self.flags & lib.IORING_CQE_F_MORE)

    def result(self) -> int:
        """The result, or ``OSError`` if the operation failed (the checked form of ``res``)."""
        return check(self.res)


class Batch:
    """Many operations of one kind prepared in one call; ``results[i]`` is operation i's result once ``done``."""

    __slots__ = ("n", "results", "done", "_keepalive", "_slot")

    def __init__(self, n: int, keepalive: Any):
        self.n = n
        self._keepalive = keepalive          # the buffer (and offsets) the kernel reads or writes
        self.results = ffi.new("int32_t[]", max(n, 1))
        self.done = False
        self._slot = -1

    def check(self) -> list[int]:
        """Every result, or ``OSError`` for the first failed operation."""
        if not self.done:
            raise RuntimeError("batch still in flight: reap its completions first")
        return [check(r) for r in ffi.unpack(self.results, self.n)]

    def __repr__(self) -> str:
        return f"<Batch n={self.n} {'done' if self.done else 'in flight'}>"


class StatxResult:
    """Where ``Ring.statx`` writes; read the fields after the completion arrives."""

    def __init__(self):
        self._buf = ffi.new("struct statx *")

    size = property(lambda self: self._buf.stx_size)
    mode = property(lambda self: self._buf.stx_mode)
    ino = property(lambda self: self._buf.stx_ino)
    nlink = property(lambda self: self._buf.stx_nlink)
    uid = property(lambda self: self._buf.stx_uid)
    gid = property(lambda self: self._buf.stx_gid)
    blocks = property(lambda self: self._buf.stx_blocks)
    mtime_ns = property(lambda self: self._buf.stx_mtime.tv_sec * 10**9 + self._buf.stx_mtime.tv_nsec)


def _timespec(seconds: float):
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"timeout must be a finite number of seconds >= 0, not {seconds!r}")
    ts = ffi.new("struct __kernel_timespec *")
    ns = round(seconds * 1e9)
    ts.tv_sec, ts.tv_nsec = divmod(ns, 10**9)
    return ts


def _sockaddr(address) -> bytearray:
    """A ``struct sockaddr_in``/``sockaddr_in6`` for (host, port[, flowinfo, scope_id]); numeric hosts only."""
    host, port = address[0], address[1]
    if ":" in host:
        flowinfo, scope_id = (address[2], address[3]) if len(address) == 4 else (0, 0)
        return bytearray(struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", port, flowinfo)
                         + socket.inet_pton(socket.AF_INET6, host) + struct.pack("=I", scope_id))
    return bytearray(struct.pack("=H", socket.AF_INET) + struct.pack("!H", port)
                     + socket.inet_pton(socket.AF_INET, host) + bytes(8))


def _writable(buf):
    return ffi.from_buffer(buf, require_writable=True)


def _iovecs(bufs: Sequence, writable: bool):
    """A ``struct iovec[]`` over ``bufs`` and everything that must outlive it."""
    iov = ffi.new("struct iovec[]", max(len(bufs), 1))
    cbufs = [_writable(b) if writable else ffi.from_buffer(b) for b in bufs]
    for v, cb in zip(iov, cbufs):
        v.iov_base, v.iov_len = cb, len(cb)
    return iov, (list(bufs), cbufs, iov)


class Ring:
    """One io_uring instance: prepare operations, ``submit()``, then reap ``Completion``s.

    ``entries`` is the submission queue size (the completion queue is twice that). ``sqpoll=True`` starts a kernel
    thread that polls the submission queue, so ``submit()`` needs no system call while that thread is awake; it
    sleeps after ``sq_thread_idle_ms`` without work. ``coop_taskrun`` (kernel 5.19+, dropped silently if refused)
    lets completions be posted when we next enter the kernel instead of by interrupting us: cheaper, and this
    ring always enters the kernel to wait anyway.
    """

    def __init__(self, entries: int = 256, *, sqpoll: bool = False, sq_thread_idle_ms: int = 1000,
                 coop_taskrun: bool = True):
        self._r = _CLOSED
        reason = _availability.disabled_reason()
        if reason:
            raise UringUnavailable(errno.ENOSYS, reason)
        # The kernel refuses COOP_TASKRUN with SQPOLL: the poller thread, not an interrupt, runs the task work.
        coop_taskrun = coop_taskrun and not sqpoll
        flags = (lib.IORING_SETUP_SQPOLL if sqpoll else 0) | (lib.IORING_SETUP_COOP_TASKRUN if coop_taskrun else 0)
        err = ffi.new("int *")
        r = lib.uk_ring_new(entries, flags, sq_thread_idle_ms, err)
        if r == ffi.NULL and err[0] == -errno.EINVAL and coop_taskrun:  # kernel < 5.19
            r = lib.uk_ring_new(entries, flags & ~lib.IORING_SETUP_COOP_TASKRUN, sq_thread_idle_ms, err)
        if r == ffi.NULL:
            raise _setup_error(-err[0], sqpoll)
        self._r = r
        self._io = lib.uk_ring_io(r)
        self._out = out = lib.uk_ring_out(r)
        # memoryviews onto uk_reap's output arrays: indexing them costs a third of indexing the cdata arrays.
        self._out_user_data = memoryview(ffi.buffer(out.user_data)).cast("Q")
        self._out_res = memoryview(ffi.buffer(out.res)).cast("i")
        self._out_flags = memoryview(ffi.buffer(out.flags)).cast("I")
        self._batches_in_flight = 0
        self.sqpoll = sqpoll
        self.features = self._io.features
        self._next_token = 0                         # tokens count up from 1
        self._inflight: dict[int, tuple] = {}       # token -> (user_data, keepalive)
        self._batches: list[Batch | None] = [None] * MAX_BATCHES
        self._free_slots = list(range(MAX_BATCHES - 1, -1, -1))
        self._ready: deque[Completion] = deque()    # reaped but not yet handed out (wait_cqe takes one)
        self._registered_buffers = None
        self._registered_files = None

    # --- lifecycle -------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Cancel what is in flight, wait briefly for it to finish, then tear the ring down. Idempotent."""
        if self._r == _CLOSED:
            return
        if self._inflight or any(self._batches):
            self._cancel_everything()
        if self._inflight or any(self._batches):
            # The kernel may still write into these buffers (an uncancellable read in an io-wq worker):
            # keep them alive for the rest of the process rather than risk a use-after-free.
            _ORPHANED.append((list(self._inflight.values()), [b for b in self._batches if b]))
        r, self._r = self._r, _CLOSED  # every later call into C sees NULL and answers -EBADFD
        self._io = self._out = None
        for view in (self._out_user_data, self._out_res, self._out_flags):
            view.release()
        lib.uk_ring_free(r)
        self._registered_buffers = self._registered_files = None

    def _cancel_everything(self) -> None:
        # Its own completion is dropped by _reap: the token is in no table.
        token = self._next_token = self._next_token + 1
        lib.uk_prep_cancel(self._r, token, 0, 0, lib.IORING_ASYNC_CANCEL_ANY | lib.IORING_ASYNC_CANCEL_ALL)
        deadline = time.monotonic() + CLOSE_DRAIN_SECONDS
        while (self._inflight or any(self._batches)) and time.monotonic() < deadline:
            self._reap(1, 1, max(0.0, deadline - time.monotonic()))
        self._ready.clear()

    @property
    def closed(self) -> bool:
        return self._r == _CLOSED

    def __enter__(self) -> "Ring":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        if getattr(self, "_r", _CLOSED) != _CLOSED:
            self.close()

    def fileno(self) -> int:
        """The ring's own file descriptor (for poll/epoll on the ring, as chapter 08 does)."""
        return self._live_io().ring_fd

    def _live_io(self):
        if self._r == _CLOSED:
            raise RingClosedError("this Ring is closed")
        return self._io


    # --- preparing single operations -------------------------------------------------------------------------
    # Each method is one call into C (native/ring.c: take an SQE, liburing's prep helper, stamp user_data and
    # flags) plus one dict entry that keeps user_data and every buffer the kernel may touch alive until reaped.
    # The pattern, spelled out in each method because a helper call would cost a sixth of a NOP round trip:
    #     token = self._next_token = self._next_token + 1
    #     if lib.uk_prep_X(self._r, token, flags, ...): self._refuse()
    #     self._inflight[token] = (user_data, what_the_kernel_may_touch)
    def _refuse(self):
        if self.closed:
            raise RingClosedError("this Ring is closed")
        raise OSError(errno.EBUSY, "submission queue full and the kernel refused to take its entries")

    def nop(self, *, user_data=None, flags: int = 0) -> int:
        """An operation that does nothing: the round trip through the ring and nothing else."""
        token = self._next_token = self._next_token + 1
        if lib.uk_prep_nop(self._r, token, flags):
            self._refuse()
        self._inflight[token] = (user_data, None)
        return token

    def read(self, fd: int, buf, offset: int = -1, *, nbytes: int | None = None, user_data=None,
             flags: int = 0) -> int:
        """read(2)/pread(2) into ``buf`` (offset -1: the file position, as read(2) uses)."""
        cbuf = _writable(buf)
        token = self._next_token = self._next_token + 1
        n = len(cbuf) if nbytes is None else min(nbytes, len(cbuf))
        res = lib.uk_prep_read(self._r, token, flags, fd, cbuf, n, offset & U64)
        if res:
            self._refuse()
        self._inflight[token] = (user_data, (buf, cbuf))
        return token

    def write(self, fd: int, data, offset: int = -1, *, user_data=None, flags: int = 0) -> int:
        """write(2)/pwrite(2) of ``data`` (any bytes-like object)."""
        cbuf = ffi.from_buffer(data)
        token = self._next_token = self._next_token + 1
        res = lib.uk_prep_write(self._r, token, flags, fd, cbuf, len(cbuf), offset & U64)
        if res:
            self._refuse()
        self._inflight[token] = (user_data, (data, cbuf))
        return token

    def readv(self, fd: int, bufs: Sequence, offset: int = -1, *, user_data=None, flags: int = 0) -> int:
        """preadv(2): scatter one read over several buffers."""
        iov, keep = _iovecs(bufs, writable=True)
        token = self._next_token = self._next_token + 1
        res = lib.uk_prep_readv(self._r, token, flags, fd, iov, len(bufs), offset & U64)
        if res:
            self._refuse()
        self._inflight[token] = (user_data, keep)
        return token

    def writev(self, fd: int, bufs: Sequence, offset: int = -1, *, user_data=None, flags: int = 0) -> int:
        """pwritev(2): gather one write from several buffers."""
        iov, keep = _iovecs(bufs, writable=False)
        token = self._next_token = self._next_token + 1
        res = lib.uk_prep_writev(self._r, token, flags, fd, iov, len(bufs), offset & U64)
        if res:
            self._refuse()
        self._inflight[token] = (user_data, keep)
        return token

    def _fixed_slice(self, buf_index: int, nbytes: int, buf_offset: int):
        bufs = self._registered_buffers
        if bufs is None or not 0 <= buf_index < len(bufs[1]):
            raise ValueError(f"no registered buffer {buf_index}: call register_buffers() first")
        cbuf = bufs[1][buf_index]
        if buf_offset < 0 or nbytes < 0 or buf_offset + nbytes > len(cbuf):
            raise ValueError(f"[{buf_offset}:{buf_offset + nbytes}] lies outside registered buffer {buf_index}")
        return cbuf + buf_offset

    def read_fixed(self, fd: int, buf_index: int, nbytes: int, offset: int = -1, *, buf_offset: int = 0,
                   user_data=None, flags: int = 0) -> int:
        """Read into registered buffer ``buf_index`` (no per-I/O page pinning: see ``register_buffers``)."""
        ptr = self._fixed_slice(buf_index, nbytes, buf_offset)
        token = self._next_token = self._next_token + 1
        res = lib.uk_prep_read_fixed(self._r, token, flags, fd, ptr, nbytes, offset & U64, buf_index)
        if res:
            self._refuse()
        self._inflight[token] = (user_data, self._registered_buffers)
        return token

    def write_fixed(self, fd: int, buf_index: int, nbytes: int, offset: int = -1, *, buf_offset: int = 0,
                    user_data=None, flags: int = 0) -> int:
        """Write from registered buffer ``buf_index``."""
        ptr = self._fixed_slice(buf_index, nbytes, buf_offset)
        token = self._next_token = self._next_token + 1
        res = lib.uk_prep_write_fixed(self._r, token, flags, fd, ptr, nbytes, offset & U64, buf_index)
        if res:
            self._refuse()
        self._inflight[token] = (user_data, self._registered_buffers)
        return token

    def openat(self, path, open_flags: int = os.O_RDONLY, mode: int = 0o644, *, dirfd: int = lib.AT_FDCWD,
               user_data=None, flags: int = 0) -> int:
        """openat(2); the completion's ``res`` is the new fd."""
        cpath = ffi.new("char[]", os.fsencode(path))
        token = self._next_token = self._next_token + 1
        res = lib.uk_prep_openat(self._r, token, flags, dirfd, cpath, open_flags, mode)
        if res:
            self._refuse()
        self._inflight[token] = (user_data, cpath)
        return token

    def close_fd(self, fd: int, *, user_data=None, flags: int = 0) -> int:
        """close(2) through the ring (named close_fd because ``close()`` closes the ring itself)."""
        token = self._next_token = self._next_token + 1
        if lib.uk_prep_close(self._r, token, flags, fd):
            self._refuse()
        self._inflight[token] = (user_data, None)
        return token

    def fsync(self, fd: int, *, datasync: bool = False, user_data=None, flags: int = 0) -> int:
        """fsync(2), or fdatasync(2) with ``datasync=True``."""
        token = self._next_token = self._next_token + 1
        res = lib.uk_prep_fsync(self._r, token, flags, fd, lib.IORING_FSYNC_DATASYNC if datasync else 0)
        if res:
            self._refuse()
        self._inflight[token] = (user_data, None)
        return token

    def statx(self, path, out: StatxResult, *, dirfd: int = lib.AT_FDCWD, at_flags: int = 0,
              mask: int = lib.STATX_BASIC_STATS, user_data=None, flags: int = 0) -> int:
        """statx(2) into ``out`` (a ``StatxResult``)."""
        cpath = ffi.new("char[]", os.fsencode(path))
        token = self._next_token = self._next_token + 1
        res = lib.uk_prep_statx(self._r, token, flags, dirfd, cpath, at_flags, mask, out._buf)
        if res:
            self._refuse()
        self._inflight[token] = (user_data, (cpath, out))
        return token

    def accept(self, fd: int, *, multishot: bool = False, sock_flags: int = 0, user_data=None,
               flags: int = 0) -> int:
        """accept4(2); ``res`` is the connection's fd. ``multishot=True`` (kernel 5.19+) keeps accepting: one
        completion per connection, each with ``more`` set until the request ends (a kernel without multishot
        answers ``-EINVAL``: fall back to one accept per connection)."""
        token = self._next_token = self._next_token + 1
        res = lib.uk_prep_accept(self._r, token, flags, fd, multishot, sock_flags)
        if res:
            self._refuse()
        self._inflight[token] = (user_data, None)
        return token

    def connect(self, fd: int, address, *, user_data=None, flags: int = 0) -> int:
        """connect(2) to a numeric ``(host, port)`` address (IPv4 or IPv6)."""
        sa = _sockaddr(address)
        csa = ffi.from_buffer(sa)
        token = self._next_token = self._next_token + 1
        res = lib.uk_prep_connect(self._r, token, flags, fd, ffi.cast("struct sockaddr *", csa), len(sa))
        if res:
            self._refuse()
        self._inflight[token] = (user_data, (sa, csa))
        return token

    def recv(self, fd: int, buf, *, msg_flags: int = 0, user_data=None, flags: int = 0) -> int:
        """recv(2) into ``buf``; ``res`` 0 means the peer closed."""
        cbuf = _writable(buf)
        token = self._next_token = self._next_token + 1
        res = lib.uk_prep_recv(self._r, token, flags, fd, cbuf, len(cbuf), msg_flags)
        if res:
            self._refuse()
        self._inflight[token] = (user_data, (buf, cbuf))
        return token

    def send(self, fd: int, data, *, msg_flags: int = 0, user_data=None, flags: int = 0) -> int:
        """send(2) of ``data``; like send(2) it may send less than all of it."""
        cbuf = ffi.from_buffer(data)
        token = self._next_token = self._next_token + 1
        res = lib.uk_prep_send(self._r, token, flags, fd, cbuf, len(cbuf), msg_flags)
        if res:
            self._refuse()
        self._inflight[token] = (user_data, (data, cbuf))
        return token

    def timeout(self, seconds: float, *, count: int = 0, user_data=None, flags: int = 0) -> int:
        """Complete after ``seconds`` (``res == -ETIME``) or once ``count`` other completions arrived (``res 0``)."""
        ts = _timespec(seconds)
        token = self._next_token = self._next_token + 1
        if lib.uk_prep_timeout(self._r, token, flags, ts, count):
            self._refuse()
        self._inflight[token] = (user_data, ts)
        return token

    def link_timeout(self, seconds: float, *, user_data=None, flags: int = 0) -> int:
        """Cancel the previous SQE (which must carry ``SqeFlags.LINK``) if it has not finished in ``seconds``."""
        ts = _timespec(seconds)
        token = self._next_token = self._next_token + 1
        if lib.uk_prep_link_timeout(self._r, token, flags, ts):
            self._refuse()
        self._inflight[token] = (user_data, ts)
        return token

    def cancel(self, target: int, *, user_data=None, flags: int = 0) -> int:
        """Cancel the operation whose token is ``target``: ``res`` 0 if found and cancelled, ``-ENOENT`` if not
        found, ``-EALREADY`` if it is running and will end by itself; the target completes with ``-ECANCELED``."""
        token = self._next_token = self._next_token + 1
        if lib.uk_prep_cancel(self._r, token, flags, target, 0):
            self._refuse()
        self._inflight[token] = (user_data, None)
        return token

    def poll_add(self, fd: int, mask: int, *, user_data=None, flags: int = 0) -> int:
        """One-shot readiness wait, as poll(2): ``res`` is the ready ``select.POLL*`` mask."""
        token = self._next_token = self._next_token + 1
        if lib.uk_prep_poll_add(self._r, token, flags, fd, mask):
            self._refuse()
        self._inflight[token] = (user_data, None)
        return token

    # --- batches: many SQEs per call into C ------------------------------------------------------------------
    def _batch(self, op: int, n: int, fd: int, buf, size: int, offsets, flags: int, buf_index: int = 0) -> Batch:
        if self.closed:
            raise RingClosedError("this Ring is closed")
        if not self._free_slots:
            raise OSError(errno.EBUSY, f"{MAX_BATCHES} batches already in flight: reap some first")
        batch = Batch(n, (buf, offsets))
        if n == 0:
            batch.done = True
            return batch
        coffsets = ffi.NULL if offsets is None else ffi.new("uint64_t[]", offsets)
        cbuf = ffi.NULL if buf is None else buf
        slot = self._free_slots.pop()
        got = lib.uk_prep_batch(self._r, op, fd, cbuf, size, coffsets, n, slot, batch.results, flags, buf_index)
        if got <= 0:
            self._free_slots.append(slot)
            raise OSError(errno.EBUSY if got == 0 else -got, "could not prepare the batch")
        batch._slot, batch.n = slot, got
        batch._keepalive = (buf, offsets, coffsets)
        self._batches[slot] = batch
        self._batches_in_flight += 1
        if got < n:  # the kernel refused a submit half-way: what was prepared stays tracked, the rest is reported
            raise OSError(errno.EBUSY, f"only {got} of {n} operations could be queued")
        return batch

    def nop_batch(self, n: int, *, flags: int = 0) -> Batch:
        """``n`` NOPs in one call."""
        return self._batch(lib.UK_OP_NOP, n, -1, None, 0, None, flags)

    def read_batch(self, fd: int, buf, size: int, offsets: Sequence[int], *, flags: int = 0) -> Batch:
        """``len(offsets)`` reads of ``size`` bytes: read i lands in ``buf[i*size:(i+1)*size]``."""
        cbuf = _writable(buf)
        if len(offsets) * size > len(cbuf):
            raise ValueError(f"{len(offsets)} reads of {size} bytes need {len(offsets) * size} bytes of buffer")
        return self._batch(lib.UK_OP_READ, len(offsets), fd, cbuf, size, offsets, flags)

    def write_batch(self, fd: int, buf, size: int, offsets: Sequence[int], *, flags: int = 0) -> Batch:
        """``len(offsets)`` writes of ``size`` bytes: write i comes from ``buf[i*size:(i+1)*size]``."""
        cbuf = ffi.from_buffer(buf)
        if len(offsets) * size > len(cbuf):
            raise ValueError(f"{len(offsets)} writes of {size} bytes need {len(offsets) * size} bytes of buffer")
        return self._batch(lib.UK_OP_WRITE, len(offsets), fd, cbuf, size, offsets, flags)

    # --- submitting and reaping ------------------------------------------------------------------------------
    def submit(self) -> int:
        """Hand every queued SQE to the kernel; returns how many it took."""
        io = self._live_io()
        return check(lib.io_uring_submit(io))

    def submit_and_wait(self, wait_nr: int = 1) -> int:
        """Submit, then sleep in the kernel (GIL released) until ``wait_nr`` completions are ready."""
        io = self._live_io()
        res = lib.io_uring_submit_and_wait(io, wait_nr)
        while res == -EINTR:  # a signal: Python runs its handler now (Ctrl-C raises here), then we retry
            res = lib.io_uring_submit_and_wait(io, wait_nr)
        return check(res)

    def _reap(self, submit: int, wait_nr: int, timeout: float | None) -> None:
        """One call into uk_reap (GIL released while it waits), then settle what it returned: finished batches
        are released; single-op completions are queued in ``self._ready`` with their user_data."""
        r = self._r
        if timeout is None:
            res = lib.uk_reap(r, submit, wait_nr, -1)
            while res == -EINTR:  # a signal: Python runs its handler now (Ctrl-C raises here), then we retry
                res = lib.uk_reap(r, submit, wait_nr, -1)
        else:
            deadline = time.monotonic() + timeout
            res = lib.uk_reap(r, submit, wait_nr, max(0, round(timeout * 1e9)))
            while res == -EINTR:
                res = lib.uk_reap(r, submit, wait_nr, max(0, round((deadline - time.monotonic()) * 1e9)))
        if res < 0:
            if res == -errno.EBADFD and self.closed:
                raise RingClosedError("this Ring is closed")
            check(res)
        if self._batches_in_flight:
            self._release_done_batches()
        if res == 1:  # the common case in a request/response loop: no lists, no loop
            token, cflags = self._out_user_data[0], self._out_flags[0]
            entry = self._inflight.get(token) if cflags & F_MORE else self._inflight.pop(token, None)
            if entry is not None:
                self._ready.append(_new_completion(Completion, (entry[0], self._out_res[0], cflags, token)))
        elif res:
            for token, res, cflags in zip(self._out_user_data[:res], self._out_res[:res], self._out_flags[:res]):
                self._settle(token, res, cflags)

    def _release_done_batches(self) -> None:
        out = self._out
        for slot in ffi.unpack(out.batches_done, out.n_batches_done):
            batch = self._batches[slot]
            self._batches[slot] = None
            self._free_slots.append(slot)
            self._batches_in_flight -= 1
            batch.done, batch._keepalive = True, None

    def _settle(self, token: int, res: int, cflags: int) -> None:
        # A multishot operation stays registered until its last completion (the one without F_MORE).
        entry = self._inflight.get(token) if cflags & F_MORE else self._inflight.pop(token, None)
        if entry is not None:  # None: our own close-time cancel request, not a caller's operation
            self._ready.append(_new_completion(Completion, (entry[0], res, cflags, token)))

    def completions_nowait(self) -> list[Completion]:
        """Every completion that is ready now (batch results go into their ``Batch`` instead)."""
        self._reap(0, 0, None)
        ready = list(self._ready)
        self._ready.clear()
        return ready

    def wait_completions(self, wait_nr: int = 1, timeout: float | None = None) -> list[Completion]:
        """Submit what is queued, wait for ``wait_nr`` completions of any kind (or ``timeout`` seconds), and
        return every single-operation completion that is ready."""
        if len(self._ready) < wait_nr:
            self._reap(1, wait_nr - len(self._ready), timeout)
        ready = list(self._ready)
        self._ready.clear()
        return ready

    def wait_cqe(self, timeout: float | None = None) -> Completion | None:
        """The next single-operation completion, submitting what is queued first; ``None`` after ``timeout``."""
        ready = self._ready
        if timeout is None:
            while not ready:
                self._reap(1, 1, None)
            return ready.popleft()
        deadline = time.monotonic() + timeout
        while not ready:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._reap(1, 1, left)
        return ready.popleft()

    def wait_batch(self, batch: Batch, timeout: float | None = None) -> bool:
        """Wait until ``batch`` is done (completions of other operations are kept for the next reap)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not batch.done:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self._reap(1, 1, left)
        return True

    # --- registration ----------------------------------------------------------------------------------------
    def register_buffers(self, bufs: Sequence) -> None:
        """Pin ``bufs`` once so ``read_fixed``/``write_fixed`` skip per-I/O page pinning; kept alive until
        ``unregister_buffers`` or close."""
        iov, keep = _iovecs(bufs, writable=True)
        check(lib.io_uring_register_buffers(self._live_io(), iov, len(bufs)))
        self._registered_buffers = (keep[0], keep[1], iov)

    def unregister_buffers(self) -> None:
        """Unpin the registered buffers (no fixed read or write may be in flight)."""
        check(lib.io_uring_unregister_buffers(self._live_io()))
        self._registered_buffers = None

    def register_files(self, fds: Iterable[int]) -> None:
        """Register ``fds``; then pass an index with ``flags=SqeFlags.FIXED_FILE`` to skip the fd lookup."""
        fds = list(fds)
        check(lib.io_uring_register_files(self._live_io(), ffi.new("int[]", fds), len(fds)))
        self._registered_files = fds

    def unregister_files(self) -> None:
        """Drop the registered files (the fds themselves stay open: they are the caller's)."""
        check(lib.io_uring_unregister_files(self._live_io()))
        self._registered_files = None

    # --- introspection ---------------------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """Operations submitted or queued whose final completion has not been reaped yet."""
        return len(self._inflight) + sum(b.n for b in self._batches if b is not None)

    def sq_space_left(self) -> int:
        """Free submission queue entries (preparing more than this submits the queued ones first)."""
        return lib.io_uring_sq_space_left(self._live_io())

    def probe(self) -> frozenset[str]:
        """Names of the operations this kernel supports (``IORING_OP_READ`` -> ``"read"``)."""
        p = lib.io_uring_get_probe_ring(self._live_io())
        if p == ffi.NULL:
            return frozenset()
        try:
            return frozenset(name for name, op in OPCODES.items() if lib.io_uring_opcode_supported(p, op))
        finally:
            lib.io_uring_free_probe(p)


OPCODES = {name[len("IORING_OP_"):].lower(): getattr(lib, name)
           for name in dir(lib) if name.startswith("IORING_OP_") and name != "IORING_OP_LAST"}
F_MORE = lib.IORING_CQE_F_MORE
_CLOSED = ffi.cast("struct uk_ring *", 0)  # what a closed Ring holds instead of its pointer
_new_completion = tuple.__new__  # builds a Completion without NamedTuple's Python-level __new__ (2x faster)
_ORPHANED: list = []  # buffers of operations that outlived their ring's close(); see Ring.close


def _setup_error(err: int, sqpoll: bool) -> OSError:
    if err == errno.EPERM and sqpoll:
        return PermissionError(err, "SQPOLL is not permitted here (needs CAP_SYS_NICE on kernels before 5.11)")
    reason = _availability.explain_setup_errno(err)
    return UringUnavailable(err, reason) if reason else OSError(err, f"io_uring_setup failed: {os.strerror(err)}")


_PROBE_CACHE: frozenset[str] | None = None


def probe() -> frozenset[str]:
    """The operations this kernel's io_uring supports (empty if io_uring is unavailable). Cached."""
    global _PROBE_CACHE
    if _PROBE_CACHE is None:
        try:
            with Ring(4) as ring:
                _PROBE_CACHE = ring.probe()
        except OSError:
            _PROBE_CACHE = frozenset()
    return _PROBE_CACHE


def supports(op: str) -> bool:
    """Whether the kernel supports io_uring operation ``op`` (``"read"``, ``"accept"``, ``"send_zc"`` ...)."""
    if op.lower() not in OPCODES:
        raise ValueError(f"unknown io_uring operation {op!r}; known: {', '.join(sorted(OPCODES))}")
    return op.lower() in probe()

