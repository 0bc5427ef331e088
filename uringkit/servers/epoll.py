"""The epoll server: one thread registers each connection once with epoll(7) and is told only which are ready.
A wait costs O(ready), not O(watched), so thousands of idle clients cost nothing per wakeup; the price is a
system call per change of interest and a Linux-only API.

Try it::

    python -m uringkit.servers epoll --impl py --port 8080
    curl -i localhost:8080/

Facts about epoll that this server relies on: interest is kept in the kernel (epoll_ctl), so a wait passes no
list; level-triggered mode (the default, used here) reports a socket again while it stays readable, so a handler
may read only once per wakeup without losing data; EPOLLIN/EPOLLOUT have the values of POLLIN/POLLOUT.
"""

from __future__ import annotations

import select
import socket

from ._config import ServerConfig, SharedStats
from ._eventloop import ReadinessLoop


class EpollLoop(ReadinessLoop):
    """Interest lives in the kernel's epoll instance; a wait returns only the ready fds."""

    max_events = 1024   # ready fds taken per epoll_wait; more stay queued for the next call

    def __init__(self, *args):
        super().__init__(*args)
        self.epoll = select.epoll()

    def watch(self, fd: int, events: int, old: int) -> None:
        if not events:
            self.epoll.unregister(fd)
        elif old:
            self.epoll.modify(fd, events)
        else:
            self.epoll.register(fd, events)

    def wait(self, timeout: float) -> list:
        return self.epoll.poll(timeout, self.max_events)


def serve(listener: socket.socket, config: ServerConfig, stats: SharedStats) -> None:
    EpollLoop(listener, config, stats).serve_forever()
