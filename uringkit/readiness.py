"""Readiness: what select, poll and epoll cost, and what they promise (introduced in chapter 03, "Event loops").

``wait_cost`` times one wait with N idle connections and one active one. select and poll hand the kernel the whole
list on every call and the kernel checks every entry, so the cost grows with N; epoll keeps the interest list in
the kernel and a ready list beside it, so a wait costs the same for 10 or 10,000 idle connections.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import select
import socket
import statistics
import subprocess
import sys
import time

__all__ = ["WaitCost", "fd_setsize_wall", "idle_connections", "trigger_modes", "wait_cost"]

FD_SETSIZE = 1024  # glibc's fixed size of fd_set: select cannot watch an fd numbered 1024 or above

# Holds the server side of every connection in another process, so only the client ends count against our fds.
_HOLDER = r"""
import socket, sys
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(4096)
print(listener.getsockname()[1], flush=True)
held = []
while True:
    held.append(listener.accept()[0])
"""


class idle_connections:
    """``n`` connected, idle TCP client sockets (the peers live in a child process). A context manager."""

    def __init__(self, n: int):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if n + 64 > hard:
            raise ValueError(f"{n} connections need more file descriptors than the hard limit {hard} allows")
        if n + 64 > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self._holder = subprocess.Popen([sys.executable, "-c", _HOLDER], stdout=subprocess.PIPE,
                                        stdin=subprocess.DEVNULL)
        self.socks: list[socket.socket] = []
        try:
            port = int(self._holder.stdout.readline())
            for _ in range(n):
                self.socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for s in self.socks:
            s.close()
        self.socks = []
        self._holder.kill()
        self._holder.wait()
        self._holder.stdout.close()

    def __enter__(self) -> "idle_connections":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclasses.dataclass(frozen=True)
class WaitCost:
    """Median time of one wait call that finds the one active fd among ``idle`` idle ones."""

    mechanism: str
    idle: int
    us_per_wait: float


def _waiter(mechanism: str, fds: list[int], active: int):
    """(wait, close): a zero-timeout wait over ``fds`` + ``active``, and how to release what it holds."""
    if mechanism == "select":
        everything = fds + [active]
        return (lambda: select.select(everything, [], [], 0)), (lambda: None)
    if mechanism == "poll":
        p = select.poll()
        for fd in fds + [active]:
            p.register(fd, select.POLLIN)
        return (lambda: p.poll(0)), (lambda: None)
    if mechanism == "epoll":
        ep = select.epoll()
        for fd in fds + [active]:
            ep.register(fd, select.EPOLLIN)
        return (lambda: ep.poll(0)), ep.close
    raise ValueError(f"mechanism must be select, poll or epoll, not {mechanism!r}")


def wait_cost(mechanism: str, conns: idle_connections, calls: int = 200, repeats: int = 5) -> WaitCost:
    """Time ``mechanism``'s wait over every connection in ``conns`` plus one readable socket (chapter 03)."""
    fds = [s.fileno() for s in conns.socks]
    if mechanism == "select" and max(fds, default=0) >= FD_SETSIZE:
        raise ValueError(f"select cannot watch fds >= FD_SETSIZE ({FD_SETSIZE})")
    a, b = socket.socketpair()
    try:
        b.send(b"!")  # never read: `a` stays readable, so every wait returns at once with one event
        wait, release = _waiter(mechanism, fds, a.fileno())
        samples = []
        try:
            for _ in range(repeats):
                start = time.perf_counter()
                for _ in range(calls):
                    ready = wait()
                samples.append((time.perf_counter() - start) / calls)
                assert len(ready[0] if mechanism == "select" else ready) == 1, "exactly one fd is ready"
        finally:
            release()
        return WaitCost(mechanism, len(fds), statistics.median(samples) * 1e6)
    finally:
        a.close()
        b.close()


def fd_setsize_wall() -> str:
    """Ask select() to watch an fd numbered >= FD_SETSIZE; return the error Python raises instead of
    overflowing the fixed-size fd_set (in C, FD_SET on such an fd writes past the end of the set)."""
    a, b = socket.socketpair()
    high = os.dup2(a.fileno(), FD_SETSIZE + 10)
    try:
        select.select([high], [], [], 0)
        return "no error"
    except ValueError as exc:
        return str(exc)
    finally:
        os.close(high)
        a.close()
        b.close()


def trigger_modes(reads_between_waits: int = 0) -> dict[str, list[int]]:
    """Write 3 bytes once, then wait 3 times (reading ``reads_between_waits`` bytes after each): how many events
    does each wait report, level-triggered vs edge-triggered?"""
    result = {}
    for name, flags in (("level-triggered", select.EPOLLIN), ("edge-triggered", select.EPOLLIN | select.EPOLLET)):
        a, b = socket.socketpair()
        ep = select.epoll()
        try:
            ep.register(a.fileno(), flags)
            b.send(b"abc")
            counts = []
            for _ in range(3):
                counts.append(len(ep.poll(0)))
                if reads_between_waits:
                    a.recv(reads_between_waits)
            result[name] = counts
        finally:
            ep.close()
            a.close()
            b.close()
    return result
