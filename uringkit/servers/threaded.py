"""The threaded server: the main thread accepts, and every connection gets a new thread that serves it.
Threads are cheaper to start than processes and share memory, but each still costs a stack and a context switch,
and in CPython only one thread runs Python code at a time (the GIL).

Try it::

    python -m uringkit.servers threaded --impl py --port 8080
    curl -i localhost:8080/
"""

from __future__ import annotations

import socket
import threading

from ._base import BlockingServer
from ._config import ServerConfig, SharedStats


class ThreadedServer(BlockingServer):
    """``process_connection`` starts a thread; the accept loop goes on at once."""

    # 256 KiB instead of the default 8 MiB of address space per thread: the request loop needs little stack,
    # and 15,000 clients x 8 MiB would exhaust a 32-bit or overcommit-limited address space.
    thread_stack_size = 256 * 1024

    def serve_forever(self) -> None:
        threading.stack_size(self.thread_stack_size)
        super().serve_forever()

    def process_connection(self, conn: socket.socket) -> None:
        try:
            # daemon: SIGTERM ends the process without waiting for clients that are still connected
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()
        except RuntimeError:  # "can't start new thread": a thread or memory limit
            self.refuse(conn)


def serve(listener: socket.socket, config: ServerConfig, stats: SharedStats) -> None:
    ThreadedServer(listener, config, stats).serve_forever()
