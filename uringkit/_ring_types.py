"""The values a Ring hands back - Completion, Batch, StatxResult - and the one error choke point, ``check``.

Private: ``uringkit.ring`` re-exports every public name (introduced in chapter 06, "Inside io_uring").
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from ._native import ffi, lib

F_MORE = lib.IORING_CQE_F_MORE


def check(res: int) -> int:
    """The one place a negative io_uring result becomes an exception: ``-errno`` -> ``OSError(errno, strerror)``
    (``OSError`` picks the subclass, so ``-ENOENT`` raises ``FileNotFoundError``)."""
    if res < 0:
        raise OSError(-res, os.strerror(-res))
    return res


class RingClosedError(ValueError):
    """The ring was closed; no operation can be prepared, submitted or reaped on it."""


class Completion(NamedTuple):
    """One completion queue entry: the caller's ``user_data`` object, the result, the CQE flags, the token
    (chapter 06; ``more`` is chapter 08's multishot)."""

    user_data: Any
    res: int
    flags: int
    token: int

    @property
    def more(self) -> bool:
        """True if the operation is multishot and further completions will follow."""
        return bool(self.flags & F_MORE)

    def result(self) -> int:
        """The result, or ``OSError`` if the operation failed (the checked form of ``res``)."""
        return check(self.res)


# Builds a Completion without NamedTuple's Python-level __new__: about half the cost, on every reaped completion.
new_completion = tuple.__new__


class Batch:
    """Many operations of one kind prepared in one call into C (chapter 06's queue-depth experiment);
    ``results[i]`` is operation i's result once ``done``."""

    __slots__ = ("n", "results", "done", "_keepalive", "_slot")

    def __init__(self, n: int, keepalive: Any):
        self.n = n
        self._keepalive = keepalive          # the buffer (and offsets) the kernel reads or writes
        self.results = ffi.new("int32_t[]", max(n, 1))
        self.done = False
        self._slot = -1

    def check(self) -> list[int]:
        """Every result, or ``OSError`` for the first failed operation."""
        if not self.done:
            raise RuntimeError("batch still in flight: reap its completions first")
        return [check(r) for r in ffi.unpack(self.results, self.n)]

    def __repr__(self) -> str:
        return f"<Batch n={self.n} {'done' if self.done else 'in flight'}>"


class StatxResult:
    """Where ``Ring.statx`` writes (chapter 06); read the fields after the completion arrives."""

    def __init__(self):
        self._buf = ffi.new("struct statx *")

    size = property(lambda self: self._buf.stx_size)
    mode = property(lambda self: self._buf.stx_mode)
    ino = property(lambda self: self._buf.stx_ino)
    nlink = property(lambda self: self._buf.stx_nlink)
    uid = property(lambda self: self._buf.stx_uid)
    gid = property(lambda self: self._buf.stx_gid)
    blocks = property(lambda self: self._buf.stx_blocks)
    mtime_ns = property(lambda self: self._buf.stx_mtime.tv_sec * 10**9 + self._buf.stx_mtime.tv_nsec)
