"""The prethreaded server: ``workers`` threads are started up front and each blocks in accept(2), serving one
client at a time. Thread creation is paid once, but at most ``workers`` clients are served at once and, in
CPython, the threads take turns holding the GIL.

Try it::

    python -m uringkit.servers prethreaded --impl py --port 8080 --workers 8
    curl -i localhost:8080/
"""

from __future__ import annotations

import socket
import threading

from ._base import BlockingServer
from ._config import ServerConfig, SharedStats


class PrethreadedServer(BlockingServer):
    """``serve_forever`` starts the pool; each thread runs the iterative accept loop on the shared listener."""

    thread_stack_size = 256 * 1024  # the request loop needs little stack (see threaded.py)

    def serve_forever(self) -> None:
        threading.stack_size(self.thread_stack_size)
        pool = [threading.Thread(target=BlockingServer.serve_forever, args=(self,), daemon=True)
                for _ in range(self.config.workers)]
        for thread in pool:
            thread.start()
        for thread in pool:  # the workers never return; SIGTERM ends the process (they are daemons)
            thread.join()


def serve(listener: socket.socket, config: ServerConfig, stats: SharedStats) -> None:
    PrethreadedServer(listener, config, stats).serve_forever()
