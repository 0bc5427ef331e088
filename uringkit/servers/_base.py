"""What every blocking Python server shares (chapter 02, "Process models").

``BlockingServer`` owns the accept loop and the per-connection request loop; the five blocking models differ
only in ``process_connection``: where an accepted connection is handed off (served in place, in a forked child,
in a new thread) - or, for the pre-spawned pools, in ``serve_forever``: who runs the accept loop. It is CPython
``socketserver``'s ``process_request`` hook, with the HTTP of ``uringkit.http``.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time

from ..http import Site
from ._config import ServerConfig, SharedStats

# accept(2) failures that mean "a limit was hit, the listener is fine": survive them.
LIMIT_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# accept(2) failures that concern only the connection being accepted (it was reset while queued).
TRANSIENT_ERRORS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EAGAIN, errno.EINTR})


def prepare_listener(listener: socket.socket) -> None:
    """TCP_NODELAY on the listener is inherited by every accepted socket (Linux): one setsockopt per server,
    and no response waits 40 ms for a delayed ACK when a header and a file leave in two sends."""
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class SpareFd:
    """The classic answer to EMFILE on accept (libev, nginx): keep one fd in reserve; when the process runs out,
    free it, accept the waiting connection, close that at once, and take the reserve back. The client gets a
    clean close instead of hanging in the backlog, and an event loop does not spin on a listener that stays
    readable."""

    def __init__(self, listener: socket.socket):
        self.fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self.poller = select.poll()
        self.poller.register(listener, select.POLLIN)

    def refuse_one(self, listener: socket.socket, stats: SharedStats) -> bool:
        """Drop one waiting connection; True if one was dropped (counted in ``refused``). Linux reports EMFILE
        before it looks at the backlog, so first ask whether a client is waiting at all: a blocking accept here
        would otherwise sit until the next client arrives, only to refuse it. (In a pool, another worker may
        take that client between the two calls; this worker then waits in accept as it would anyway.)"""
        if not self.poller.poll(0):
            return False
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        try:
            conn, _ = listener.accept()
            conn.close()
            stats.add("refused", 1)
            return True
        except OSError:
            return False
        finally:
            try:
                self.fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                self.fd = -1  # still out of fds: the next refusal tries again


class BlockingServer:
    """Accept, hand off, serve requests until the client leaves, the idle timeout fires or the response closes."""

    recv_size = 65536          # one recv takes a whole pipelined burst or a 64 KiB chunk of a discarded body
    limit_backoff = 0.05       # seconds to sleep when a limit (EMFILE...) persists: never die, never spin

    def __init__(self, listener: socket.socket, config: ServerConfig, stats: SharedStats):
        prepare_listener(listener)
        self.listener, self.config, self.stats = listener, config, stats
        self.site = Site(config.docroot)
        self.spare = SpareFd(listener)

    # --- the accept loop -------------------------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Accept connections and hand each to ``process_connection``, until the process is killed."""
        while True:
            self.accept_one()

    def accept_one(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError as exc:
            if exc.errno in LIMIT_ERRORS:
                if not self.spare.refuse_one(self.listener, self.stats):
                    time.sleep(self.limit_backoff)
            elif exc.errno not in TRANSIENT_ERRORS:
                raise
            return
        self.stats.add("accepted", 1)
        self.process_connection(conn)

    def process_connection(self, conn: socket.socket) -> None:
        """THE hook: where a connection is served. Here: in place, so the next accept waits for this client."""
        self.handle(conn)

    def refuse(self, conn: socket.socket) -> None:
        """A connection we cannot serve (fork or thread creation failed): close it and count it."""
        conn.close()
        self.stats.add("refused", 1)

    # --- one connection --------------------------------------------------------------------------------------
    def handle(self, conn: socket.socket) -> None:
        """Serve ``conn`` until it ends, then close it. A client's misbehaviour ends only its own connection."""
        stats = self.stats
        stats.add("open_connections", 1)
        try:
            with conn:
                self.request_loop(conn)
        except OSError:
            pass  # reset by the peer, broken pipe: that client is gone, nobody else is affected
        finally:
            stats.add("open_connections", -1)

    def request_loop(self, conn: socket.socket) -> None:
        idle, respond, stats = self.config.idle_timeout, self.site.respond, self.stats
        conn.settimeout(idle)
        buf = b""       # bytes, not bytearray: the parser remembers answers to whole buffers it has seen
        deadline = None  # set while a request is incomplete: bounds a client that dribbles its headers
        while True:
            answer = respond(buf) if buf else None
            if answer is None:
                if buf:
                    deadline = deadline or time.monotonic() + idle
                    left = deadline - time.monotonic()
                    if left <= 0:
                        stats.add("timeouts", 1)
                        return
                    conn.settimeout(left)
                try:
                    chunk = conn.recv(self.recv_size)
                except TimeoutError:
                    stats.add("timeouts", 1)
                    return
                if not chunk:
                    return
                buf = buf + chunk if buf else chunk
                continue
            response, end = answer
            buf = buf[end:]
            if deadline is not None:
                deadline = None
                conn.settimeout(idle)
            self.send_response(conn, response)
            if response.close:
                return

    def send_response(self, conn: socket.socket, response) -> None:
        """Headers (and any small body) in one send; then the file, if any, with sendfile(2); then count it."""
        if response.delay:
            time.sleep(response.delay)  # the blocking models' simulated backend: this worker waits
        if response.fd >= 0:
            with open(response.fd, "rb") as file:  # closes the fd whatever happens
                conn.sendall(response.data)
                conn.sendfile(file)
        else:
            conn.sendall(response.data)
        self.stats.add("requests", 1)
        if response.bad:
            self.stats.add("bad_requests", 1)
