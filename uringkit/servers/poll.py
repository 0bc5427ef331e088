"""The poll server: one thread watches every connection with poll(2) and serves whichever is ready.
Unlike select it has no fd limit, but every call still hands the kernel the whole list of watched fds and
the kernel still checks each one (O(n) per wakeup, however few are ready).

Try it::

    python -m uringkit.servers poll --impl py --port 8080
    curl -i localhost:8080/
"""

from __future__ import annotations

import select
import socket

from ._config import ServerConfig, SharedStats
from ._eventloop import ReadinessLoop


class PollLoop(ReadinessLoop):
    """Interest lives in a ``select.poll`` object, which rebuilds its pollfd array after each change."""

    def __init__(self, *args):
        super().__init__(*args)
        self.poller = select.poll()

    def watch(self, fd: int, events: int, old: int) -> None:
        if not events:
            self.poller.unregister(fd)
        elif old:
            self.poller.modify(fd, events)
        else:
            self.poller.register(fd, events)

    def wait(self, timeout: float) -> list:
        return self.poller.poll(timeout * 1000)   # poll(2) counts milliseconds


def serve(listener: socket.socket, config: ServerConfig, stats: SharedStats) -> None:
    PollLoop(listener, config, stats).serve_forever()
