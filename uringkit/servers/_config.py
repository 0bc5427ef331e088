"""The server tunables and the shared statistics block, as both implementations see them."""

from __future__ import annotations

import dataclasses
import mmap
import os
from pathlib import Path

from .._native import ffi, lib

BLOCKING_MODELS = ("iterative", "forking", "preforked", "threaded", "prethreaded")
EVENT_MODELS = ("select", "poll", "epoll", "io_uring")
MODELS = BLOCKING_MODELS + EVENT_MODELS
IMPLS = ("c", "py")

DEFAULT_DOCROOT = Path(__file__).resolve().parent.parent.parent / "data" / "www"


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Every tunable of every server, with why it has its default."""

    host: str = "127.0.0.1"         # loopback only unless asked: the book's servers are experiments
    port: int = 0                   # 0: the kernel picks a free port; the server announces it
    backlog: int = 4096             # the kernel caps listen() at net.core.somaxconn (4096 since Linux 5.4)
    workers: int = 100              # preforked/prethreaded pool size: the 2019 benchmark used 100
    idle_timeout: float = 10.0      # seconds without a complete request before the server closes the connection
    docroot: str = str(DEFAULT_DOCROOT)

    def __post_init__(self):
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, not {self.port}")
        if self.backlog < 1 or self.workers < 1 or self.idle_timeout <= 0:
            raise ValueError("backlog and workers must be >= 1 and idle_timeout > 0")
        root = Path(self.docroot)
        if not root.is_dir():
            raise ValueError(f"docroot {self.docroot!r} is not a directory")
        object.__setattr__(self, "docroot", os.path.realpath(root))


STAT_FIELDS = ("requests", "accepted", "open_connections", "refused", "bad_requests", "timeouts")


class SharedStats:
    """The ``struct uk_server_stats`` block in a MAP_SHARED file mapping (see native/servers/stats.h).

    The server process maps it to count; the parent maps the same file to read. ``add`` is atomic (one call into
    C), so forked children and threads may all count into it.
    """

    SIZE = ffi.sizeof("struct uk_server_stats")

    def __init__(self, path: str | os.PathLike):
        fd = os.open(path, os.O_RDWR)
        try:
            if os.fstat(fd).st_size < self.SIZE:
                os.ftruncate(fd, self.SIZE)
            self._map = mmap.mmap(fd, self.SIZE, mmap.MAP_SHARED)
        finally:
            os.close(fd)
        self._view = ffi.from_buffer(self._map)  # holds the mapping's buffer until close() releases it
        self.ptr = ffi.cast("struct uk_server_stats *", self._view)
        self._fields = {name: ffi.cast("uint64_t *", ffi.addressof(self.ptr, name)) for name in STAT_FIELDS}

    @classmethod
    def anonymous(cls) -> "SharedStats":
        """A block nobody else reads (a server started by hand, without a Server handle)."""
        import tempfile

        with tempfile.NamedTemporaryFile(prefix="uringkit-stats-", dir=_shm_dir()) as f:
            return cls(f.name)

    def add(self, field: str, delta: int = 1) -> None:
        lib.uk_stat_add(self._fields[field], delta)

    def close(self) -> None:
        """Unmap (Python's mmap holds a duplicate of the file's fd until then). Idempotent."""
        if self._map.closed:
            return
        self._fields = {}
        self.ptr = None
        ffi.release(self._view)
        self._map.close()

    def snapshot(self) -> dict[str, int]:
        return {name: getattr(self.ptr, name) for name in STAT_FIELDS}


def _shm_dir() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
