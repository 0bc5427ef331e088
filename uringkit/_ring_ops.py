"""What a Ring can ask the kernel to do: one method per io_uring operation, each preparing one submission queue
entry (SQE), and the batches that prepare many in one call into C (chapter 06, "Inside io_uring"; links,
timeouts, cancellation and fixed buffers are chapter 08).

Private: ``Ring`` (``uringkit/ring.py``) inherits these methods and owns what they use: ``self._r`` (the C ring,
NULL once closed), ``self._inflight`` (token -> (user_data, what the kernel may touch)), the batch slots, and the
reaping that ``requeue(..., wait=True)`` finishes with. Reading ``ring.py`` first helps.
"""

from __future__ import annotations

import errno
import os
from typing import Sequence

from ._native import ffi, lib
from ._native.lib import (  # imported by name: a module global costs a quarter of lib.name, on every operation
    uk_prep_accept, uk_prep_cancel, uk_prep_close, uk_prep_connect, uk_prep_fsync, uk_prep_link_timeout,
    uk_prep_nop, uk_prep_openat, uk_prep_poll_add, uk_prep_read, uk_prep_read_fixed, uk_prep_readv, uk_prep_recv,
    uk_prep_send, uk_prep_send_recv, uk_prep_statx, uk_prep_timeout, uk_prep_write, uk_prep_write_fixed,
    uk_prep_writev, uk_queue_batch,
)
from ._ring_types import (
    MAX_BATCHES, SKIP_BIT, TURN_SEND_BIT, U64, Batch, PreparedBuffer, RingClosedError, StatxResult, iovecs, sockaddr,
    timespec, writable_buffer,
)

_from_buffer = ffi.from_buffer  # a module global: cheaper than ffi.from_buffer on every operation
_CQE_SKIP_SUCCESS = lib.IOSQE_CQE_SKIP_SUCCESS  # a plain int: arithmetic on an IntFlag member runs Python code
_FINISHED_ALONE = lib.UK_BATCH_FINISHED_ALONE


class Operations:
    """The operation methods of ``Ring`` (see the module docstring)."""

    # --- preparing single operations -------------------------------------------------------------------------
    # Each method is one call into C (native/ring.c: take an SQE, liburing's prep helper, stamp the next token
    # and the flags) plus one dict entry that keeps user_data and every buffer the kernel may touch alive until
    # reaped. The pattern, spelled out in each method because a helper call would cost a tenth of a NOP round
    # trip:
    #     token = uk_prep_X(self._r, flags, ...)             # the token, or -errno
    #     if token < 0: self._refuse(token)
    #     self._inflight[token] = (user_data, what_the_kernel_may_touch)
    def _refuse(self, err: int):
        if self.closed:
            raise RingClosedError("this Ring is closed")
        raise OSError(-err, "submission queue full and the kernel refused to take its entries")

    def nop(self, *, user_data=None, flags: int = 0) -> int:
        """An operation that does nothing: the round trip through the ring and nothing else."""
        token = uk_prep_nop(self._r, flags)
        if token < 0:
            self._refuse(token)
        self._inflight[token] = (user_data, None)
        return token

    def read(self, fd: int, buf, offset: int = -1, *, nbytes: int | None = None, user_data=None,
             flags: int = 0) -> int:
        """read(2)/pread(2) into ``buf`` (offset -1: the file position, as read(2) uses)."""
        cbuf = writable_buffer(buf)
        n = len(cbuf) if nbytes is None else min(nbytes, len(cbuf))
        token = uk_prep_read(self._r, flags, fd, cbuf, n, offset & U64)
        if token < 0:
            self._refuse(token)
        self._inflight[token] = (user_data, cbuf)
        return token

    def write(self, fd: int, data, offset: int = -1, *, user_data=None, flags: int = 0) -> int:
        """write(2)/pwrite(2) of ``data`` (any bytes-like object)."""
        cbuf = ffi.from_buffer(data)
        token = uk_prep_write(self._r, flags, fd, cbuf, len(cbuf), offset & U64)
        if token < 0:
            self._refuse(token)
        self._inflight[token] = (user_data, cbuf)
        return token

    def readv(self, fd: int, bufs: Sequence, offset: int = -1, *, user_data=None, flags: int = 0) -> int:
        """preadv(2): scatter one read over several buffers."""
        iov, keep = iovecs(bufs, writable=True)
        token = uk_prep_readv(self._r, flags, fd, iov, len(bufs), offset & U64)
        if token < 0:
            self._refuse(token)
        self._inflight[token] = (user_data, keep)
        return token

    def writev(self, fd: int, bufs: Sequence, offset: int = -1, *, user_data=None, flags: int = 0) -> int:
        """pwritev(2): gather one write from several buffers."""
        iov, keep = iovecs(bufs, writable=False)
        token = uk_prep_writev(self._r, flags, fd, iov, len(bufs), offset & U64)
        if token < 0:
            self._refuse(token)
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
        """Read into registered buffer ``buf_index`` (no per-I/O page pinning: see ``register_buffers``; chapter 08)."""
        ptr = self._fixed_slice(buf_index, nbytes, buf_offset)
        token = uk_prep_read_fixed(self._r, flags, fd, ptr, nbytes, offset & U64, buf_index)
        if token < 0:
            self._refuse(token)
        self._inflight[token] = (user_data, self._registered_buffers)
        return token

    def write_fixed(self, fd: int, buf_index: int, nbytes: int, offset: int = -1, *, buf_offset: int = 0,
                    user_data=None, flags: int = 0) -> int:
        """Write from registered buffer ``buf_index`` (chapter 08)."""
        ptr = self._fixed_slice(buf_index, nbytes, buf_offset)
        token = uk_prep_write_fixed(self._r, flags, fd, ptr, nbytes, offset & U64, buf_index)
        if token < 0:
            self._refuse(token)
        self._inflight[token] = (user_data, self._registered_buffers)
        return token

    def openat(self, path, open_flags: int = os.O_RDONLY, mode: int = 0o644, *, dirfd: int = lib.AT_FDCWD,
               user_data=None, flags: int = 0) -> int:
        """openat(2); the completion's ``res`` is the new fd."""
        cpath = ffi.new("char[]", os.fsencode(path))
        token = uk_prep_openat(self._r, flags, dirfd, cpath, open_flags, mode)
        if token < 0:
            self._refuse(token)
        self._inflight[token] = (user_data, cpath)
        return token

    def close_fd(self, fd: int, *, user_data=None, flags: int = 0) -> int:
        """close(2) through the ring (named close_fd because ``close()`` closes the ring itself)."""
        token = uk_prep_close(self._r, flags, fd)
        if token < 0:
            self._refuse(token)
        self._inflight[token] = (user_data, None)
        return token

    def fsync(self, fd: int, *, datasync: bool = False, user_data=None, flags: int = 0) -> int:
        """fsync(2), or fdatasync(2) with ``datasync=True``."""
        token = uk_prep_fsync(self._r, flags, fd, lib.IORING_FSYNC_DATASYNC if datasync else 0)
        if token < 0:
            self._refuse(token)
        self._inflight[token] = (user_data, None)
        return token

    def statx(self, path, out: StatxResult, *, dirfd: int = lib.AT_FDCWD, at_flags: int = 0,
              mask: int = lib.STATX_BASIC_STATS, user_data=None, flags: int = 0) -> int:
        """statx(2) into ``out`` (a ``StatxResult``)."""
        cpath = ffi.new("char[]", os.fsencode(path))
        token = uk_prep_statx(self._r, flags, dirfd, cpath, at_flags, mask, out._buf)
        if token < 0:
            self._refuse(token)
        self._inflight[token] = (user_data, (cpath, out))
        return token

    def accept(self, fd: int, *, multishot: bool = False, sock_flags: int = 0, user_data=None,
               flags: int = 0) -> int:
        """accept4(2); ``res`` is the connection's fd. ``multishot=True`` (kernel 5.19+) keeps accepting: one
        completion per connection, each with ``more`` set until the request ends (a kernel without multishot
        answers ``-EINVAL``: fall back to one accept per connection; chapter 08)."""
        token = uk_prep_accept(self._r, flags, fd, multishot, sock_flags)
        if token < 0:
            self._refuse(token)
        self._inflight[token] = (user_data, None)
        return token

    def connect(self, fd: int, address, *, user_data=None, flags: int = 0) -> int:
        """connect(2) to a numeric ``(host, port)`` address (IPv4 or IPv6)."""
        sa = sockaddr(address)
        csa = ffi.from_buffer(sa)
        token = uk_prep_connect(self._r, flags, fd, ffi.cast("struct sockaddr *", csa), len(sa))
        if token < 0:
            self._refuse(token)
        self._inflight[token] = (user_data, (sa, csa))
        return token

    def recv(self, fd: int, buf, *, msg_flags: int = 0, user_data=None, flags: int = 0) -> int:
        """recv(2) into ``buf``; ``res`` 0 means the peer closed."""
        cbuf = writable_buffer(buf)
        token = uk_prep_recv(self._r, flags, fd, cbuf, len(cbuf), msg_flags)
        if token < 0:
            self._refuse(token)
        self._inflight[token] = (user_data, cbuf)
        return token

    def send(self, fd: int, data, *, msg_flags: int = 0, user_data=None, flags: int = 0) -> int:
        """send(2) of ``data``; like send(2) it may send less than all of it."""
        cbuf = ffi.from_buffer(data)
        token = uk_prep_send(self._r, flags, fd, cbuf, len(cbuf), msg_flags)
        if token < 0:
            self._refuse(token)
        self._inflight[token] = (user_data, cbuf)
        return token

    def send_recv(self, fd: int, data, buf, *, user_data=None) -> tuple[int, int]:
        """A request/response turn on a stream socket: send all of ``data``, then - once it is sent - recv(2) into
        ``buf``, as two linked SQEs prepared in one call into C. A turn that goes well posts one completion, the
        recv's (``res`` bytes received, 0 if the peer closed), because the send carries ``CQE_SKIP_SUCCESS``; the
        send uses ``MSG_WAITALL``, so it sends everything or fails, and if it fails the turn completes (once)
        with the send's ``-errno`` and the recv never starts. Returns ``(send_token, token)``: completions carry
        ``token``; cancel both to end the turn, whichever half is under way (chapter 08: links and
        CQE_SKIP_SUCCESS; native/ring.h says how the failure is reported). Either buffer may be a
        ``PreparedBuffer``, which skips converting it on each call.

        Both buffers stay alive until the turn's completion is reaped: by then the send, which comes first in the
        chain, has finished, and the recv has finished or will never start."""
        sbuf = data.cdata if data.__class__ is PreparedBuffer else _from_buffer(data)
        if buf.__class__ is PreparedBuffer:
            if not buf.writable:
                raise ValueError("send_recv receives into buf: prepare it with writable=True")
            rbuf = buf.cdata
        else:
            rbuf = _from_buffer("char[]", buf, True)  # writable_buffer(buf), inlined: the server's hot path
        token = uk_prep_send_recv(self._r, fd, sbuf, len(sbuf), rbuf, len(rbuf))
        if token < 0:
            self._refuse(token)
        self._inflight[token] = (user_data, (sbuf, rbuf))
        return token | SKIP_BIT | TURN_SEND_BIT, token

    def timeout(self, seconds: float, *, count: int = 0, user_data=None, flags: int = 0) -> int:
        """Complete after ``seconds`` (``res == -ETIME``) or once ``count`` other completions arrived (``res 0``;
        chapter 08)."""
        ts = timespec(seconds)
        token = uk_prep_timeout(self._r, flags, ts, count)
        if token < 0:
            self._refuse(token)
        self._inflight[token] = (user_data, ts)
        return token

    def link_timeout(self, seconds: float, *, user_data=None, flags: int = 0) -> int:
        """Cancel the previous SQE (which must carry ``SqeFlags.LINK``) if it has not finished in ``seconds``: it
        completes with ``-ECANCELED``, this one with ``-ETIME`` (chapter 08)."""
        ts = timespec(seconds)
        token = uk_prep_link_timeout(self._r, flags, ts)
        if token < 0:
            self._refuse(token)
        self._inflight[token] = (user_data, ts)
        return token

    def cancel(self, target: int, *, user_data=None, flags: int = 0) -> int:
        """Cancel the operation whose token is ``target``: ``res`` 0 if found and cancelled, ``-ENOENT`` if not
        found, ``-EALREADY`` if it is running and will end by itself; the target completes with ``-ECANCELED``
        (chapter 08)."""
        token = uk_prep_cancel(self._r, flags, target, 0)
        if token < 0:
            self._refuse(token)
        self._inflight[token] = (user_data, None)
        return token

    def poll_add(self, fd: int, mask: int, *, user_data=None, flags: int = 0) -> int:
        """One-shot readiness wait, as poll(2): ``res`` is the ready ``select.POLL*`` mask."""
        token = uk_prep_poll_add(self._r, flags, fd, mask)
        if token < 0:
            self._refuse(token)
        self._inflight[token] = (user_data, None)
        return token

    # --- batches: many SQEs per call into C ------------------------------------------------------------------
    def _batch(self, op: int, n: int, fd: int, cbuf, size: int, offsets, flags: int, wait: bool) -> Batch:
        if flags & _CQE_SKIP_SUCCESS:
            raise ValueError("a batch waits for every result: CQE_SKIP_SUCCESS would leave it unfinished forever")
        batch = Batch(op, n, fd, cbuf, size, offsets, flags)
        return self.requeue(batch, wait=wait) if n else batch  # an empty batch is done at once

    def requeue(self, batch: Batch, *, wait: bool = False) -> Batch:
        """Queue a done ``batch``'s operations again, with whatever ``batch.offsets`` now holds (chapter 06's
        queue-depth loop: no conversion and no allocation per round). ``wait`` as for ``nop_batch``."""
        if not batch.done:
            raise ValueError("this batch is still in flight: wait for it before queuing it again")
        free_slots = self._free_slots
        if not free_slots:
            raise OSError(errno.EBUSY, f"{MAX_BATCHES} batches already in flight: reap some first")
        got = uk_queue_batch(self._r, batch._spec, free_slots[-1], wait)
        if got == batch._size | _FINISHED_ALONE:  # done in that call, nothing else reaped: nothing to settle
            batch.n = batch._size
            return batch
        if got <= 0:  # nothing was queued: the slot stays free
            if self.closed:
                raise RingClosedError("this Ring is closed")
            raise OSError(errno.EBUSY if got == 0 else -got, "could not prepare the batch")
        slot = free_slots.pop()
        batch.n, batch.done = got, False
        self._batches[slot] = batch
        self._batches_in_flight += 1
        if got < batch._size:  # the kernel refused a submit half-way: what was queued is tracked, the rest reported
            raise OSError(errno.EBUSY, f"only {got} of {batch._size} operations could be queued")
        if wait:
            self._settle_reaped(self._out_counts[0])  # what C reaped while it waited: this batch, maybe others
            if not batch.done:  # a signal, an error or a full reap buffer cut C's wait short
                self.wait_batch(batch)
        return batch

    def nop_batch(self, n: int, *, flags: int = 0, wait: bool = False) -> Batch:
        """``n`` NOPs in one call (chapter 06 measures what batching buys). ``wait=True`` also submits them and
        waits until they are done, still in that one call into C: the batch comes back ``done``."""
        return self._batch(lib.UK_OP_NOP, n, -1, None, 0, None, flags, wait)

    def read_batch(self, fd: int, buf, size: int, offsets: Sequence[int], *, flags: int = 0,
                   wait: bool = False) -> Batch:
        """``len(offsets)`` reads of ``size`` bytes: read i lands in ``buf[i*size:(i+1)*size]``. ``offsets`` is
        any sequence of ints; an ``array('Q')`` skips a conversion. ``wait=True`` as for ``nop_batch`` (chapter
        06's queue-depth sweep: one call into C per batch)."""
        cbuf = writable_buffer(buf)
        if len(offsets) * size > len(cbuf):
            raise ValueError(f"{len(offsets)} reads of {size} bytes need {len(offsets) * size} bytes of buffer")
        return self._batch(lib.UK_OP_READ, len(offsets), fd, cbuf, size, offsets, flags, wait)

    def write_batch(self, fd: int, buf, size: int, offsets: Sequence[int], *, flags: int = 0,
                    wait: bool = False) -> Batch:
        """``len(offsets)`` writes of ``size`` bytes: write i comes from ``buf[i*size:(i+1)*size]`` (offsets and
        ``wait`` as for ``read_batch``)."""
        cbuf = ffi.from_buffer(buf)
        if len(offsets) * size > len(cbuf):
            raise ValueError(f"{len(offsets)} writes of {size} bytes need {len(offsets) * size} bytes of buffer")
        return self._batch(lib.UK_OP_WRITE, len(offsets), fd, cbuf, size, offsets, flags, wait)
