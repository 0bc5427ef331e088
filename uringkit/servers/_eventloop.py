"""What every event-driven Python server shares (chapter 03, "Event loops").

One process, one thread, every socket non-blocking: the server never waits for one client, it waits for *any*
of them to become ready and then does only what will not block. ``Connection`` is the state of one client and
the logic of answering it (used by the io_uring server too); ``ReadinessLoop`` drives connections from readiness
events. select, poll and epoll subclass it and differ in a few attributes and one ``wait`` method, like CPython's
``selectors._PollLikeSelector``.
"""

from __future__ import annotations

import heapq
import math
import os
import select
import socket
import time

from ..http import Site
from ._base import LIMIT_ERRORS, TRANSIENT_ERRORS, SpareFd, prepare_listener
from ._config import ServerConfig, SharedStats

READ, WRITE = select.POLLIN, select.POLLOUT   # the same bits as EPOLLIN/EPOLLOUT
FILE_CHUNK = 1 << 20                          # bytes per sendfile(2): big enough to be cheap, small enough to be fair

class FileSend:
    """The part of a file still to be sent (sendfile(2) resumes at ``offset``)."""

    __slots__ = ("fd", "offset", "remaining")

    def __init__(self, fd: int, size: int):
        self.fd, self.offset, self.remaining = fd, 0, size


# The connection state machine (one per client; no arrow ever blocks):
#
#                +--------------------------- all sent, keep-alive ---------------------------+
#                v                                                                             |
#   accept --> READING ---- complete request(s) in the buffer: queue their answers ------> WRITING
#                |   \                                                                    ^     |
#                |    +---- /delay?ms=N: arm a timer ----> DELAYING ---- timer fires -----+     |
#                |                                                                             |
#                +---- EOF, error, idle timeout ----> CLOSED <---- all sent, and the answer closes
#
# READING waits for READ readiness (io_uring: a recv in flight), WRITING for WRITE readiness (io_uring: a send
# in flight) - usually not at all, because the kernel takes a small answer at once - and DELAYING for a timer.
# Pipelined requests are answered in one pass and their answers coalesced into one send.


class Connection:
    """One client: its socket, unparsed input, queued output (bytes and ``FileSend``s), and its deadline."""

    __slots__ = ("sock", "fd", "buf", "out", "answered", "closing", "delayed", "deadline", "interest", "token",
                 "__weakref__")

    def __init__(self, sock, fd: int, deadline: float):
        self.sock, self.fd, self.deadline = sock, fd, deadline
        self.buf = b""
        self.out: list = []        # bytes and FileSend, in order
        self.answered = 0          # responses queued and not yet counted (counted once written in full)
        self.closing = False       # close once ``out`` is sent
        self.delayed = None        # the Response a /delay timer will release
        self.interest = 0
        self.token = 0             # the io_uring server's operation in flight

    def take_answers(self, respond) -> int:
        """Answer every complete request in ``buf`` (pipelining), queueing the responses; stop at a /delay
        (its Response waits in ``delayed``) or at a response that closes. Returns how many were bad requests."""
        buf, start, bad = self.buf, 0, 0
        while start < len(buf):
            answer = respond(buf, start)
            if answer is None:
                break
            response, start = answer
            if response.bad:
                bad += 1
            if response.delay:
                self.delayed = response
                break
            self.queue(response)
            if response.close:
                start = len(buf)
                break
        self.buf = buf[start:] if start else buf
        return bad

    def queue(self, response) -> None:
        out = self.out
        if out and out[-1].__class__ is bytes:   # coalesce pipelined answers into one send
            out[-1] += response.data
        else:
            out.append(response.data)
        if response.fd >= 0:
            out.append(FileSend(response.fd, response.size))
        self.answered += 1
        self.closing = response.close

    def discard_output(self) -> None:
        for item in self.out:
            if item.__class__ is FileSend:
                os.close(item.fd)
        self.out.clear()


class ReadinessLoop:
    """Drives ``Connection``s through the state machine from readiness events; subclasses say how to wait."""

    max_fd = None               # select(2) cannot watch fds >= FD_SETSIZE; the others have no such limit
    recv_size = 65536           # one recv takes a whole pipelined burst or a 64 KiB chunk of a discarded body
    accept_batch = 64           # connections accepted per readiness of the listener, so clients get a turn too
    sweep_interval = 0.25       # seconds between idle-timeout sweeps (the timeout fires up to this late)
    limit_pause = 0.05          # seconds to stop watching the listener when a limit persists: never spin

    def __init__(self, listener: socket.socket, config: ServerConfig, stats: SharedStats):
        prepare_listener(listener)
        listener.setblocking(False)
        self.listener, self.listen_fd, self.stats = listener, listener.fileno(), stats
        self.idle = config.idle_timeout
        self.respond = Site(config.docroot).respond
        self.spare = SpareFd(listener)
        self.conns: dict[int, Connection] = {}
        self.timers: list = []        # heap of (when, seq, callback, arg): /delay timers and the listener pause
        self.seq = 0
        self.now = time.monotonic()
        self.counts = [0, 0]          # requests, bad_requests since the last flush to the shared counters

    # --- subclasses: how interest is recorded and how the loop waits ---------------------------------------
    def watch(self, fd: int, events: int, old: int) -> None: raise NotImplementedError
    def wait(self, timeout: float) -> list: raise NotImplementedError

    # --- the loop ------------------------------------------------------------------------------------------
    def serve_forever(self) -> None:
        self.watch(self.listen_fd, READ, 0)
        next_sweep = self.now + self.sweep_interval
        conns, stats, counts = self.conns, self.stats, self.counts
        while True:
            deadline = min(next_sweep, self.timers[0][0]) if self.timers else next_sweep
            events = self.wait(max(0.0, deadline - self.now))
            self.now = time.monotonic()
            for fd, ev in events:
                conn = conns.get(fd)
                if conn is not None:
                    self.on_event(conn, ev)
                elif fd == self.listen_fd:
                    self.on_acceptable()
            while self.timers and self.timers[0][0] <= self.now:
                _, _, callback, arg = heapq.heappop(self.timers)
                callback(arg)
            if self.now >= next_sweep:
                self.sweep()
                next_sweep = self.now + self.sweep_interval
            if counts[0] or counts[1]:  # one atomic add per loop pass, not one per request
                stats.add("requests", counts[0])
                stats.add("bad_requests", counts[1])
                counts[0] = counts[1] = 0

    def call_later(self, delay: float, callback, arg) -> None:
        self.seq += 1
        heapq.heappush(self.timers, (self.now + delay, self.seq, callback, arg))

    def on_acceptable(self) -> None:
        for _ in range(self.accept_batch):
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in LIMIT_ERRORS:
                    if not self.spare.refuse_one(self.listener, self.stats):
                        self.watch(self.listen_fd, 0, READ)     # out of fds even after the spare: pause
                        self.call_later(self.limit_pause, self.resume_accepting, None)
                    return
                if exc.errno in TRANSIENT_ERRORS:
                    continue
                raise
            fd = sock.fileno()
            if self.max_fd is not None and fd >= self.max_fd:
                sock.close()   # select(2) could not watch it: refuse the client instead of corrupting memory
                self.stats.add("refused", 1)
                continue
            sock.setblocking(False)
            self.conns[fd] = conn = Connection(sock, fd, self.now + self.idle)
            self.stats.add("accepted", 1)
            self.stats.add("open_connections", 1)
            conn.interest = READ
            self.watch(fd, READ, 0)

    def resume_accepting(self, _) -> None:
        self.watch(self.listen_fd, READ, 0)

    def on_event(self, conn: Connection, ev: int) -> None:
        try:
            if conn.interest == READ:
                data = conn.sock.recv(self.recv_size)
                if not data:
                    return self.close(conn)
                conn.buf = conn.buf + data if conn.buf else data
                self.advance(conn)
            elif conn.interest == WRITE:
                self.advance(conn)
            else:   # DELAYING watches nothing, so this is an error or hang-up: the client is gone
                self.close(conn)
        except BlockingIOError:
            pass    # a spurious wakeup: wait again
        except OSError:
            self.close(conn)  # reset by the peer, broken pipe: only this client is affected

    def advance(self, conn: Connection) -> None:
        """Answer what can be answered, send what the kernel takes, then choose what to wait for."""
        if conn.delayed is None and not conn.closing:
            answered = conn.answered
            self.counts[1] += conn.take_answers(self.respond)
            if conn.answered != answered:
                conn.deadline = self.now + self.idle
        if conn.out and not self.flush(conn):
            want = WRITE
            conn.deadline = self.now + self.idle  # a client that reads its answers slowly is not idle
        elif conn.closing:
            return self.close(conn)
        elif conn.delayed is not None:
            if conn.interest:   # first time here: arm the timer (the deadline is the timer's business now)
                conn.deadline = math.inf
                self.call_later(conn.delayed.delay, self.delay_done, conn)
            want = 0
        else:
            want = READ
        if want != conn.interest:
            self.watch(conn.fd, want, conn.interest)
            conn.interest = want

    def delay_done(self, conn: Connection) -> None:
        if conn.fd in self.conns and self.conns[conn.fd] is conn:
            response, conn.delayed = conn.delayed, None
            conn.queue(response)
            try:
                self.advance(conn)
            except OSError:
                self.close(conn)

    def flush(self, conn: Connection) -> bool:
        """Send queued output until done (True) or the kernel would block (False)."""
        out, sock = conn.out, conn.sock
        while out:
            item = out[0]
            if item.__class__ is FileSend:
                try:
                    sent = os.sendfile(conn.fd, item.fd, item.offset, min(item.remaining, FILE_CHUNK))
                except BlockingIOError:
                    return False
                if sent == 0:
                    raise OSError("the file shrank while it was being sent")
                item.offset += sent
                item.remaining -= sent
                if item.remaining:
                    continue
                os.close(item.fd)
                del out[0]
            else:
                try:
                    sent = sock.send(item)
                except BlockingIOError:
                    return False
                if sent < len(item):
                    out[0] = item[sent:]
                    return False
                del out[0]
        self.counts[0] += conn.answered
        conn.answered = 0
        return True

    def sweep(self) -> None:
        """Close every connection past its deadline (idle, or a request dribbling in for too long)."""
        now = self.now
        for conn in [c for c in self.conns.values() if c.deadline <= now]:
            self.stats.add("timeouts", 1)
            self.close(conn)

    def close(self, conn: Connection) -> None:
        if self.conns.pop(conn.fd, None) is None:
            return
        if conn.interest:
            self.watch(conn.fd, 0, conn.interest)
        conn.discard_output()
        conn.sock.close()
        self.stats.add("open_connections", -1)
