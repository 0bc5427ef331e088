"""What a process model costs before it serves anyone (introduced in chapter 02, "Process models").

``fork_cost`` reproduces the seed's footnote: fork(2) copies the parent's page tables (the pages themselves are
shared copy-on-write), so its cost grows with the parent's resident memory, while creating a thread copies nothing.
``backlog_overflow`` shows what a full listen queue does to clients: the kernel drops their SYNs and they retry a
second later.
"""

from __future__ import annotations

import dataclasses
import json
import select
import socket
import subprocess
import sys
import time

__all__ = ["BacklogResult", "ForkCost", "backlog_overflow", "fork_cost"]

# Runs in a fresh interpreter so the notebook's own memory does not count and 1 GB comes back when it exits.
_FORK_PROBE = r"""
import json, os, statistics, sys, threading, time
mb, repeats = int(sys.argv[1]), int(sys.argv[2])
buf = bytearray(mb << 20)
buf[::4096] = b"\x01" * len(range(0, len(buf), 4096))   # touch every page: resident, not just reserved
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
fork_s, thread_s = [], []
for _ in range(repeats):
    t = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    fork_s.append(time.perf_counter() - t)       # the parent's side: until fork() returned
    os.waitpid(pid, 0)
    t = time.perf_counter()
    th = threading.Thread(target=int)
    th.start()
    thread_s.append(time.perf_counter() - t)
    th.join()
print(json.dumps({"rss": rss(), "fork": statistics.median(fork_s), "thread": statistics.median(thread_s)}))
"""


@dataclasses.dataclass(frozen=True)
class ForkCost:
    """Median time to fork a process and to start a thread, for a parent of ``rss_bytes`` resident memory."""

    requested_mb: int
    rss_bytes: int
    fork_ms: float
    thread_ms: float


def fork_cost(mb: int, repeats: int = 7) -> ForkCost:
    """Fork (and start a thread in) a fresh Python process holding ``mb`` MiB of touched memory."""
    out = subprocess.run([sys.executable, "-c", _FORK_PROBE, str(mb), str(repeats)], capture_output=True,
                         text=True, timeout=300, check=True).stdout
    r = json.loads(out)
    return ForkCost(mb, r["rss"], r["fork"] * 1e3, r["thread"] * 1e3)


@dataclasses.dataclass(frozen=True)
class BacklogResult:
    """Connect times of a burst of clients against a listener that did not accept for a while."""

    backlog: int
    clients: int
    connect_s: tuple[float, ...]   # per client, sorted; inf for those that never connected
    pause_s: float                 # how long the listener did not accept

    def connected_within(self, seconds: float) -> int:
        return sum(t <= seconds for t in self.connect_s)


def backlog_overflow(backlog: int = 10, clients: int = 30, pause: float = 0.3, limit: float = 5.0) -> BacklogResult:
    """Open ``clients`` connections at once to a listener with ``backlog`` that accepts nothing for ``pause`` s.

    Linux completes the handshake for ``backlog + 1`` of them at once (they wait in the accept queue); the SYNs of
    the others are dropped, and their kernels retransmit after about 1 s (then 3 s, 7 s ...).
    """
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(backlog)
        listener.setblocking(False)
        socks, done, accepted = [], {}, []
        start = time.monotonic()
        try:
            for _ in range(clients):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(listener.getsockname())
                socks.append(s)
            while len(done) < clients and time.monotonic() - start < limit:
                pending = [s for s in socks if s not in done]
                _, writable, _ = select.select([listener], pending, [], 0.01)
                now = time.monotonic() - start
                for s in writable:
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                        done[s] = now
                if now >= pause:  # the server wakes up and drains its accept queue
                    while True:
                        try:
                            accepted.append(listener.accept()[0])
                        except BlockingIOError:
                            break
        finally:
            for s in socks + accepted:
                s.close()
    times = sorted(done.get(s, float("inf")) for s in socks)
    return BacklogResult(backlog, clients, tuple(times), pause)
