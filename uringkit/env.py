"""What this machine can do for the book: kernel, io_uring, limits (introduced in chapter 00, "Welcome").

``probe()`` asks the kernel rather than reading version strings: it sets up a small ring, reads the opcode
probe, and tries a multishot accept on a loopback socket. ``environment_report()`` prints it as one table, and
chapters use ``probe().io_uring`` to decide between a live experiment and the recorded reference data.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import resource
import socket

from . import _availability
from . import ring as _ring
from ._native import ffi, lib

__all__ = ["Capabilities", "environment_report", "probe"]

# The operations the book's chapters use, in the order the report lists them.
BOOK_OPCODES = ("nop", "read", "write", "readv", "writev", "read_fixed", "write_fixed", "openat", "close",
                "fsync", "statx", "accept", "connect", "recv", "send", "timeout", "link_timeout", "async_cancel",
                "poll_add", "send_zc")


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """One snapshot of the machine, as ``probe()`` found it."""

    kernel: str
    machine: str
    cpu_model: str
    cpu_count: int
    io_uring: bool
    io_uring_reason: str            # why not, in one line ("" when available)
    liburing_version: str
    opcodes: frozenset[str]
    multishot_accept: bool
    sqpoll: bool
    nofile_soft: int
    nofile_hard: int
    somaxconn: int | None
    ephemeral_ports: tuple[int, int] | None
    io_uring_disabled_sysctl: int | None

    def supports(self, op: str) -> bool:
        return op in self.opcodes

    def rows(self) -> list[tuple[str, str]]:
        """The report as (what, value) rows."""
        ports = self.ephemeral_ports
        return [
            ("kernel", f"{self.kernel} ({self.machine})"),
            ("CPU", f"{self.cpu_model}, {self.cpu_count} logical CPUs"),
            ("io_uring", "available" if self.io_uring else f"unavailable: {self.io_uring_reason}"),
            ("kernel.io_uring_disabled", _or_dash(self.io_uring_disabled_sysctl)),
            ("liburing (built against)", self.liburing_version),
            ("opcodes supported", f"{len(self.opcodes)} (of the book's: "
                                  f"{sum(op in self.opcodes for op in BOOK_OPCODES)}/{len(BOOK_OPCODES)})"),
            ("missing opcodes the book uses", ", ".join(op for op in BOOK_OPCODES if op not in self.opcodes)
             or "none"),
            ("multishot accept", _yes_no(self.multishot_accept)),
            ("SQPOLL permitted", _yes_no(self.sqpoll)),
            ("RLIMIT_NOFILE (soft/hard)", f"{self.nofile_soft} / {self.nofile_hard}"),
            ("net.core.somaxconn", _or_dash(self.somaxconn)),
            ("ephemeral ports", f"{ports[0]}-{ports[1]} ({ports[1] - ports[0] + 1} per destination)" if ports
             else "-"),
        ]


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _or_dash(value) -> str:
    return "-" if value is None else str(value)


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _ephemeral_ports() -> tuple[int, int] | None:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
        return low, high
    except (OSError, ValueError):
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _io_uring_status() -> tuple[bool, str, frozenset[str]]:
    try:
        with _ring.Ring(4) as r:
            return True, "", r.probe()
    except _ring.UringUnavailable as exc:
        return False, exc.strerror, frozenset()
    except OSError as exc:
        return False, f"io_uring_setup failed: {exc.strerror}", frozenset()


def _multishot_accept_works() -> bool:
    """Submit a multishot accept on a loopback listener, connect once, and see whether it stays armed."""
    with socket.socket() as listener, _ring.Ring(8) as r:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        r.accept(listener.fileno(), multishot=True)
        r.submit()
        with socket.create_connection(listener.getsockname(), timeout=1):
            c = r.wait_cqe(timeout=1.0)
        if c is None:
            return False
        if c.res >= 0:
            os.close(c.res)
        return c.res >= 0 and c.more


def _sqpoll_works() -> bool:
    try:
        with _ring.Ring(4, sqpoll=True, sq_thread_idle_ms=10) as r:
            r.nop()
            return r.wait_cqe(timeout=1.0) is not None
    except OSError:
        return False


def probe() -> Capabilities:
    """Ask the kernel what works here. Never raises for a missing feature: the answer says what is missing."""
    available, reason, opcodes = _io_uring_status()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return Capabilities(
        kernel=platform.release(),
        machine=platform.machine(),
        cpu_model=_cpu_model(),
        cpu_count=os.cpu_count() or 1,
        io_uring=available,
        io_uring_reason=reason,
        liburing_version=ffi.string(lib.uk_liburing_version()).decode(),
        opcodes=opcodes,
        multishot_accept=available and "accept" in opcodes and _multishot_accept_works(),
        sqpoll=available and _sqpoll_works(),
        nofile_soft=soft,
        nofile_hard=hard,
        somaxconn=_read_int("/proc/sys/net/core/somaxconn"),
        ephemeral_ports=_ephemeral_ports(),
        io_uring_disabled_sysctl=_read_int(_availability.SYSCTL),
    )


def environment_report(caps: Capabilities | None = None) -> Capabilities:
    """Print what this machine can do for the book as one table; returns the ``Capabilities`` it printed."""
    caps = caps or probe()
    rows = caps.rows()
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    return caps

