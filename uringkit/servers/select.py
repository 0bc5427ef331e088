"""The select server: one thread watches every connection with select(2) and serves whichever is ready.
It needs no processes or threads per client, but every call copies and scans three bitmaps of all watched fds
(O(n) per wakeup), and no fd may be 1024 (FD_SETSIZE) or more.

Try it::

    python -m uringkit.servers select --impl py --port 8080
    curl -i localhost:8080/
"""

from __future__ import annotations

import select
import socket

from ._config import ServerConfig, SharedStats
from ._eventloop import READ, WRITE, ReadinessLoop


class SelectLoop(ReadinessLoop):
    """Interest is two Python sets, handed whole to select(2) on every wait."""

    max_fd = 1024   # FD_SETSIZE: glibc's fd_set is a fixed 1024-bit array; a larger fd would overflow it

    def __init__(self, *args):
        super().__init__(*args)
        self.readers: set[int] = set()
        self.writers: set[int] = set()

    def watch(self, fd: int, events: int, old: int) -> None:
        (self.readers.add if events & READ else self.readers.discard)(fd)
        (self.writers.add if events & WRITE else self.writers.discard)(fd)

    def wait(self, timeout: float) -> list:
        readable, writable, _ = select.select(self.readers, self.writers, (), timeout)
        return [(fd, READ) for fd in readable] + [(fd, WRITE) for fd in writable]


def serve(listener: socket.socket, config: ServerConfig, stats: SharedStats) -> None:
    SelectLoop(listener, config, stats).serve_forever()
