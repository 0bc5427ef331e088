"""The forking server: the parent accepts, and fork(2) gives every connection a child process of its own.
Clients are isolated and a slow one stalls nobody, but every connection pays for a fork and an exit, and
thousands of clients mean thousands of processes.

Try it::

    python -m uringkit.servers forking --impl py --port 8080
    curl -i localhost:8080/
"""

from __future__ import annotations

import os
import signal
import socket

from ._base import BlockingServer
from ._config import ServerConfig, SharedStats


class ForkingServer(BlockingServer):
    """``process_connection`` forks; the child serves and ends in ``os._exit``, the parent goes back to accept."""

    def serve_forever(self) -> None:
        # Reap exited children as they end, so none lingers as a zombie. The handler runs between bytecodes of
        # the main thread; accept(2) interrupted by SIGCHLD is retried by Python (PEP 475).
        signal.signal(signal.SIGCHLD, self.reap_children)
        super().serve_forever()

    @staticmethod
    def reap_children(signum=None, frame=None) -> None:
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass  # no children left

    def process_connection(self, conn: socket.socket) -> None:
        try:
            pid = os.fork()
        except OSError:  # EAGAIN (process limit) or ENOMEM: refuse this client, keep serving
            self.refuse(conn)
            return
        if pid == 0:
            status = 1
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                self.listener.close()  # the child serves one client; only the parent accepts
                self.handle(conn)
                status = 0
            finally:
                os._exit(status)  # never return into the parent's accept loop, never run its atexit handlers
        conn.close()  # the child has its own copy of the descriptor


def serve(listener: socket.socket, config: ServerConfig, stats: SharedStats) -> None:
    ForkingServer(listener, config, stats).serve_forever()
