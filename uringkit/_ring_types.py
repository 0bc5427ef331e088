"""What crosses between a Ring and the kernel: the user_data codec's constants, the values it hands back
(Completion, Batch, StatxResult), the C arguments it builds (timespec, sockaddr, iovec), and the one error choke
point, ``check``.

Private: ``uringkit.ring`` re-exports every public name (introduced in chapter 06, "Inside io_uring").
"""

from __future__ import annotations

import math
import os
import socket
import struct
from array import array
from typing import Any, NamedTuple, Sequence

from ._native import ffi, lib

F_MORE = lib.IORING_CQE_F_MORE

# The user_data codec (drawn in native/ring.h, which owns it: C hands out the tokens).
BATCH_BIT = 1 << 63       # == UK_BATCH_BIT: a batch operation (C settles those itself)
SKIP_BIT = 1 << 62        # == UK_SKIP_BIT: the operation posts no completion if it succeeds
TURN_SEND_BIT = 1 << 61   # == UK_TURN_SEND_BIT: the send half of a send_recv turn
MAX_BATCHES = 1024        # == UK_MAX_BATCHES in native/ring.h: batches in flight at once
U64 = (1 << 64) - 1       # offset -1 means 'the file position', as (u64)-1 in the SQE


def check(res: int) -> int:
    """The one place a negative io_uring result becomes an exception: ``-errno`` -> ``OSError(errno, strerror)``
    (``OSError`` picks the subclass, so ``-ENOENT`` raises ``FileNotFoundError``)."""
    if res < 0:
        raise OSError(-res, os.strerror(-res))
    return res


class RingClosedError(ValueError):
    """The ring was closed; no operation can be prepared, submitted or reaped on it."""


class Completion(NamedTuple):
    """One completion queue entry: the caller's ``user_data`` object, the result, the CQE flags, the token
    (chapter 06; ``more`` is chapter 08's multishot)."""

    user_data: Any
    res: int
    flags: int
    token: int

    @property
    def more(self) -> bool:
        """True if the operation is multishot and further completions will follow."""
        return bool(self.flags & F_MORE)

    def result(self) -> int:
        """The result, or ``OSError`` if the operation failed (the checked form of ``res``)."""
        return check(self.res)


# Builds a Completion without NamedTuple's Python-level __new__: about half the cost, on every reaped completion.
new_completion = tuple.__new__


class Batch:
    """Many operations of one kind queued by one call into C (chapter 06's queue-depth experiment); ``results[i]``
    is operation i's result once ``done``.

    A batch is built once and can run many times: once it is done, ``Ring.requeue(batch)`` queues the same
    operations again, after the caller has changed ``offsets`` in place if it likes (a writable
    ``memoryview('Q')``; ``None`` for NOPs). The buffer's conversion for C, the results and the offsets are made
    once, so a queue-depth loop pays one call into C per round and allocates nothing. The price: the batch holds
    its buffer for as long as the batch lives (a ``bytearray`` cannot be resized meanwhile), because the kernel
    writes into it on every run."""

    __slots__ = ("n", "results", "offsets", "done", "_size", "_spec", "_keepalive")

    def __init__(self, op: int, n: int, fd: int, cbuf, size: int, offsets, sqe_flags: int):
        self.n = self._size = n              # n: the operations of the current run (fewer if C queued a part)
        self.results = ffi.new("int32_t[]", n or 1)
        self.done = True                     # not in flight: a Ring queues it (and sets this False)
        spec = self._spec = ffi.new("struct uk_batch *")
        spec.op, spec.fd, spec.size, spec.n, spec.sqe_flags, spec.buf_index = op, fd, size, n, sqe_flags, 0
        spec.results = self.results
        spec.buf = ffi.NULL if cbuf is None else cbuf
        if offsets is None:
            self.offsets, coffsets = None, None
        else:
            coffsets = ffi.new("uint64_t[]", n or 1)
            self.offsets = memoryview(ffi.buffer(coffsets)).cast("Q")[:n]
            self.offsets[:] = offsets if isinstance(offsets, array) and offsets.typecode == "Q" else array("Q", offsets)
            spec.offsets = coffsets
        self._keepalive = (cbuf, coffsets)   # what the kernel reads or writes on every run

    def check(self) -> list[int]:
        """Every result, or ``OSError`` for the first failed operation."""
        if not self.done:
            raise RuntimeError("batch still in flight: reap its completions first")
        return [check(r) for r in ffi.unpack(self.results, self.n)]

    def __repr__(self) -> str:
        return f"<Batch n={self.n} {'done' if self.done else 'in flight'}>"


class PreparedBuffer:
    """A buffer converted for C once, for ``Ring.send_recv`` to take many times without converting it again
    (``ffi.from_buffer`` is a tenth of a microsecond per call; the io_uring server receives every request of a
    connection into the same buffer). Keeps ``obj`` alive, and a bytearray cannot be resized while prepared.
    ``writable=True`` refuses read-only objects, as the receive side of ``send_recv`` needs."""

    __slots__ = ("obj", "cdata", "writable")

    def __init__(self, obj, writable: bool = False):
        self.obj, self.writable = obj, writable
        self.cdata = writable_buffer(obj) if writable else ffi.from_buffer(obj)

    def __len__(self) -> int:
        return len(self.cdata)


class StatxResult:
    """Where ``Ring.statx`` writes (chapter 06); read the fields after the completion arrives."""

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


# --- arguments for C --------------------------------------------------------------------------------------------
def nanoseconds(seconds: float) -> int:
    """A uk_reap timeout in whole nanoseconds; never negative (0: take what is ready, do not sleep)."""
    return max(0, round(seconds * 1e9))


def timespec(seconds: float):
    """A ``struct __kernel_timespec`` for a timeout; the kernel reads it when the SQE is issued, so it is kept
    alive with the operation."""
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"timeout must be a finite number of seconds >= 0, not {seconds!r}")
    ts = ffi.new("struct __kernel_timespec *")
    ns = round(seconds * 1e9)
    ts.tv_sec, ts.tv_nsec = divmod(ns, 10**9)
    return ts


def sockaddr(address) -> bytearray:
    """A ``struct sockaddr_in``/``sockaddr_in6`` for (host, port[, flowinfo, scope_id]); numeric hosts only."""
    host, port = address[0], address[1]
    if ":" in host:
        flowinfo, scope_id = (address[2], address[3]) if len(address) == 4 else (0, 0)
        return bytearray(struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", port, flowinfo)
                         + socket.inet_pton(socket.AF_INET6, host) + struct.pack("=I", scope_id))
    return bytearray(struct.pack("=H", socket.AF_INET) + struct.pack("!H", port)
                     + socket.inet_pton(socket.AF_INET, host) + bytes(8))


_from_buffer = ffi.from_buffer


def writable_buffer(buf):
    """A cdata over ``buf`` the kernel may write into (refuses read-only objects such as bytes). Positional
    arguments: the keyword form costs twice as much, on every recv and read."""
    return _from_buffer("char[]", buf, True)


def iovecs(bufs: Sequence, writable: bool):
    """A ``struct iovec[]`` over ``bufs`` and everything that must outlive it."""
    iov = ffi.new("struct iovec[]", max(len(bufs), 1))
    cbufs = [writable_buffer(b) if writable else ffi.from_buffer(b) for b in bufs]
    for v, cb in zip(iov, cbufs):
        v.iov_base, v.iov_len = cb, len(cb)
    return iov, (list(bufs), cbufs, iov)
