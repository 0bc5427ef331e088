"""The io_uring server: one thread asks the kernel to *do* the I/O (accept, recv, send, file reads, timers) and
learns from completions what is done. There is no readiness step and one system call submits a whole batch and
waits for the next, but every buffer must stay alive until the kernel is finished with it.

Try it::

    python -m uringkit.servers io_uring --impl py --port 8080
    curl -i localhost:8080/

Facts about io_uring that this server relies on: a multishot accept (Linux 5.19) posts one completion per new
connection until it ends (its last completion lacks IORING_CQE_F_MORE; an older kernel answers -EINVAL and we
fall back to one accept per connection); recv and send on a socket that is not ready are parked inside the
kernel and completed when it is, so the loop never sees EAGAIN; a read of a page-cached file completes inline;
a timeout completes with -ETIME when it fires; a cancelled operation completes with -ECANCELED.

The usual turn of a keep-alive connection - send the answer, then receive the next request - is one
``Ring.send_recv``: a send (MSG_WAITALL: the kernel finishes a short send itself) linked to the recv, the send
flagged CQE_SKIP_SUCCESS, so a request costs one call into C and one completion. The ring is created with
``defer_taskrun``: the kernel finishes completions in one go when the loop enters it to wait, which it always does.
"""

from __future__ import annotations

import errno
import functools
import math
import os
import socket
import time

from .._native import lib
from ..http import Site
from ..ring import PreparedBuffer, Ring
from ._base import LIMIT_ERRORS, SpareFd, prepare_listener
from ._config import ServerConfig, SharedStats
from ._eventloop import Connection, FileSend

EINVAL = errno.EINVAL
F_MORE = lib.IORING_CQE_F_MORE  # more completions of this (multishot) request will follow


class UringConnection(Connection):
    """A ``Connection`` plus the buffers the kernel writes into and one bound callback per kind of operation
    (the completion's ``user_data``: dispatching a completion is calling it)."""

    __slots__ = ("rbuf", "rview", "rprep", "fbuf", "on_recv", "on_send", "on_file_read", "on_delay")


class UringServer:
    """The state machine of ``_eventloop.Connection`` driven by completions: each connection has exactly one
    operation in flight (recv, send, send_recv turn, file read or delay timer), so its fd is closed only from a
    completion (a turn completes once: with the recv's result, or with the send's error)."""

    ring_entries = 4096       # submission queue slots: a burst of accepts and answers submitted in one call
    recv_size = 8192          # per-connection receive buffer: 15,000 clients x 8 KiB = 120 MiB; requests are small
    file_chunk = 256 * 1024   # bytes per file read through the ring, then sent
    sweep_interval = 0.25     # seconds between idle-timeout sweeps (a ring timeout, re-armed each time)
    limit_pause = 0.05        # seconds without accepting after EMFILE persists: never spin

    def __init__(self, listener: socket.socket, config: ServerConfig, stats: SharedStats):
        prepare_listener(listener)
        self.listener, self.stats, self.idle = listener, stats, config.idle_timeout
        site = Site(config.docroot)
        self.respond, self.memo = site.respond, site.memo
        self.spare = SpareFd(listener)
        self.ring = Ring(self.ring_entries, defer_taskrun=True)  # we always wait in the kernel: see Ring
        self.conns: dict[int, UringConnection] = {}
        self.multishot = True
        self.now = time.monotonic()
        self.counts = [0, 0]  # requests, bad_requests since the last flush to the shared counters

    def serve_forever(self) -> None:
        ring, stats, counts = self.ring, self.stats, self.counts
        with ring:
            self.arm_accept()
            ring.timeout(self.sweep_interval, user_data=self.on_sweep)
            while True:
                ring.dispatch(self.tick)   # submits what the last batch queued, sleeps, calls user_data(res, flags)
                if counts[0] or counts[1]:  # one atomic add per batch, not one per request
                    stats.add("requests", counts[0])
                    stats.add("bad_requests", counts[1])
                    counts[0] = counts[1] = 0

    def tick(self) -> None:
        """Once per batch of completions, before the first: the clock the deadlines are measured against."""
        self.now = time.monotonic()

    # --- accept ----------------------------------------------------------------------------------------------
    def arm_accept(self, *_) -> None:
        self.ring.accept(self.listener.fileno(), multishot=self.multishot, user_data=self.on_accept)

    def on_accept(self, res: int, flags: int) -> None:
        if res >= 0:
            self.stats.add("accepted", 1)
            self.stats.add("open_connections", 1)
            self.conns[res] = conn = UringConnection(None, res, self.now + self.idle)
            conn.rbuf = bytearray(self.recv_size)
            conn.rview = memoryview(conn.rbuf)
            conn.rprep = PreparedBuffer(conn.rbuf, writable=True)  # converted for C once, not per request
            conn.fbuf = None
            # partial objects are called in C: no extra Python frame per completion
            conn.on_recv = functools.partial(self.on_recv, conn)
            conn.on_send = functools.partial(self.on_send, conn)
            conn.on_file_read = functools.partial(self.on_file_read, conn)
            conn.on_delay = functools.partial(self.on_delay, conn)
            self.recv(conn)
        elif res == -EINVAL and self.multishot:
            self.multishot = False  # kernel < 5.19: one accept per connection from now on
        elif -res in LIMIT_ERRORS:
            refused = self.spare.refuse_one(self.listener, self.stats)
            if not refused and not flags & F_MORE:
                self.ring.timeout(self.limit_pause, user_data=self.arm_accept)
                return
        if not flags & F_MORE:  # single-shot, or the multishot accept ended: ask again
            self.arm_accept()

    # --- one connection --------------------------------------------------------------------------------------
    def recv(self, conn: UringConnection) -> None:
        conn.token = self.ring.recv(conn.fd, conn.rbuf, user_data=conn.on_recv)

    def on_recv(self, conn: UringConnection, res: int, flags: int) -> None:
        if res <= 0:   # 0: the peer closed; -ECANCELED: the idle sweep; -EPIPE, -ECONNRESET...: the peer is gone
            return self.close(conn)
        data = conn.rview[:res].tobytes()  # a copy: rbuf is reused by the next recv
        if not conn.buf and conn.delayed is None:
            # The hot path: one whole request seen before. Site.respond remembers those (its memo) with their
            # ready-made in-memory answer, so answer it here: one dict lookup and one send_recv turn.
            hit = self.memo.get(data)
            if hit is not None and not hit[0].close:
                self.counts[0] += 1
                conn.deadline = self.now + self.idle
                conn.token = self.ring.send_recv(conn.fd, hit[0].data, conn.rprep, user_data=conn.on_recv)
                return
        conn.buf = conn.buf + data if conn.buf else data
        if conn.delayed is None:
            self.counts[1] += conn.take_answers(self.respond)
            if conn.out:  # a request was answered (nothing was queued before: we only recv when all is sent)
                conn.deadline = self.now + self.idle
        self.send_next(conn)

    def send_next(self, conn: UringConnection) -> None:
        """Start the next operation of ``conn``: send queued output, read the next file chunk, arm the /delay
        timer, close, or receive the next request."""
        out = conn.out
        if out:
            item = out[0]
            if item.__class__ is FileSend:
                if conn.fbuf is None:
                    conn.fbuf = bytearray(self.file_chunk)
                conn.token = self.ring.read(item.fd, conn.fbuf, item.offset, nbytes=item.remaining,
                                            user_data=conn.on_file_read)
            elif len(out) == 1 and not conn.closing and conn.delayed is None:
                # the last answer, and after it the next request: one linked send+recv, one completion (on_recv)
                del out[0]
                self.counts[0] += conn.answered
                conn.answered = 0
                conn.token = self.ring.send_recv(conn.fd, item, conn.rprep, user_data=conn.on_recv)
            else:
                conn.token = self.ring.send(conn.fd, item, user_data=conn.on_send)
            return
        self.counts[0] += conn.answered
        conn.answered = 0
        if conn.closing:
            self.close(conn)
        elif conn.delayed is not None:
            conn.deadline = math.inf  # the timer, not the idle sweep, owns this connection now
            conn.token = self.ring.timeout(conn.delayed.delay, user_data=conn.on_delay)
        else:
            self.recv(conn)

    def on_send(self, conn: UringConnection, res: int, flags: int) -> None:
        if res < 0:
            return self.close(conn)
        item = conn.out[0]
        if res < len(item):
            conn.out[0] = memoryview(item)[res:]  # a short send: the rest goes next
            conn.deadline = self.now + self.idle
        else:
            del conn.out[0]
        self.send_next(conn)

    def on_file_read(self, conn: UringConnection, res: int, flags: int) -> None:
        if res <= 0:   # an I/O error, or the file shrank: the promised Content-Length cannot be kept
            return self.close(conn)
        item = conn.out[0]
        item.offset += res
        item.remaining -= res
        if not item.remaining:
            os.close(item.fd)
            del conn.out[0]
        conn.out.insert(0, memoryview(conn.fbuf)[:res])  # sent before the next read reuses fbuf
        conn.deadline = self.now + self.idle
        self.send_next(conn)

    def on_delay(self, conn: UringConnection, res: int, flags: int) -> None:
        if self.conns.get(conn.fd) is not conn:
            return
        response, conn.delayed = conn.delayed, None
        conn.queue(response)
        conn.deadline = self.now + self.idle
        self.counts[1] += conn.take_answers(self.respond)  # requests pipelined behind the delayed one
        self.send_next(conn)

    def on_sweep(self, res: int, flags: int) -> None:
        """Cancel the operation of every connection past its deadline; its completion (-ECANCELED) closes it."""
        for conn in self.conns.values():
            if conn.deadline <= self.now:
                conn.deadline = math.inf  # cancel once
                self.stats.add("timeouts", 1)
                for token in conn.token if conn.token.__class__ is tuple else (conn.token,):
                    self.ring.cancel(token, user_data=_ignore)  # a send_recv turn: its send or its recv
        self.ring.timeout(self.sweep_interval, user_data=self.on_sweep)

    def close(self, conn: UringConnection) -> None:
        del self.conns[conn.fd]
        conn.discard_output()
        os.close(conn.fd)   # no operation of conn is in flight: this completion was its only one
        self.stats.add("open_connections", -1)


def _ignore(res: int, flags: int) -> None:
    """The completion of a cancel request: the cancelled operation's own completion does the work."""



def serve(listener: socket.socket, config: ServerConfig, stats: SharedStats) -> None:
    UringServer(listener, config, stats).serve_forever()
