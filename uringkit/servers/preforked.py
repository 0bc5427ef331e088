"""The preforked server: ``workers`` processes are forked up front and each blocks in accept(2) on the shared
listener, serving one client at a time. The fork is paid once instead of per connection, but at most
``workers`` clients are served at once and each worker is a whole process.

Try it::

    python -m uringkit.servers preforked --impl py --port 8080 --workers 8
    curl -i localhost:8080/
"""

from __future__ import annotations

import os
import socket
import time

from ._base import BlockingServer
from ._config import ServerConfig, SharedStats


class PreforkedServer(BlockingServer):
    """``serve_forever`` forks the pool and then only watches it; each worker runs the iterative accept loop."""

    respawn_backoff = 0.1  # seconds to wait before re-forking after a failed fork: never spin on EAGAIN

    def serve_forever(self) -> None:
        workers = set()
        while True:
            while len(workers) < self.config.workers:
                pid = self.spawn_worker()
                if pid < 0:
                    time.sleep(self.respawn_backoff)
                    break
                workers.add(pid)
            try:
                pid, _ = os.wait()  # a worker died (it should not): replace it
            except ChildProcessError:
                workers.clear()
                continue
            workers.discard(pid)

    def spawn_worker(self) -> int:
        try:
            pid = os.fork()
        except OSError:
            return -1
        if pid == 0:
            try:
                BlockingServer.serve_forever(self)  # accept, serve in place, repeat
            finally:
                os._exit(1)
        return pid


def serve(listener: socket.socket, config: ServerConfig, stats: SharedStats) -> None:
    PreforkedServer(listener, config, stats).serve_forever()
