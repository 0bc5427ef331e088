"""Ring: io_uring from Python, over liburing (introduced in chapter 06, "Inside io_uring"; links, timeouts,
cancellation, fixed buffers and files, SQPOLL and multishot are chapter 08, "io_uring advanced").

A Ring owns one io_uring instance. Each operation method prepares one submission queue entry (SQE) and returns
its *token*; ``submit()`` hands the queued entries to the kernel; completions come back as ``Completion``
tuples ``(user_data, res, flags, token)``. Anything the kernel may touch - the buffer of a read, the path of an
openat, the timespec of a timeout - is kept alive by the ring until that operation's last completion is reaped,
so ``del buf; gc.collect()`` while a read is in flight is safe.

The operation methods live in ``_ring_ops.py`` (``Ring`` inherits them); this file is the ring itself: setting
up, reaping, waiting, closing. The per-batch fast paths (``nop_batch``, ``read_batch``, ``write_batch``) prepare
many SQEs in one call into C and deliver their results straight into a ``Batch``, which ``requeue`` runs again
without converting or allocating anything; Python then pays per batch, not per operation (see
``benchmarks/ring.py`` for what that buys). A request/response server has two more: ``send_recv`` prepares a
whole turn (send the answer, then receive the next request) in one call with one completion, and ``dispatch``
calls each completion's callable ``user_data`` without building ``Completion`` tuples (chapter 08's server).

user_data codec (``native/ring.h`` owns it: C hands out the tokens)::

     63 62 61       48 47            32 31                              0
    +--+--+-----------+----------------+--------------------------------+
    | 1| 0| reserved  |   batch slot   |        index within batch      |   batch operation
    +--+--+-----------+----------------+--------------------------------+
    | 0| S| T|                  token (61 bits)                         |   single operation
    +--+--+--+----------------------------------------------------------+

Tokens count up from 1 and are never reused within a ring, so a late completion cannot be mistaken for a newer
operation. S is set when the operation carries ``SqeFlags.CQE_SKIP_SUCCESS``: it completes silently if it
succeeds. T marks the send half of a ``send_recv`` turn (its failure is reported under the turn's token). Try it::

    with Ring() as ring:
        ring.nop(user_data="hello")
        ring.submit()
        print(ring.wait_cqe())      # Completion(user_data='hello', res=0, flags=0, token=1)
"""

from __future__ import annotations

import enum
import errno
import os
import time
from collections import deque
from typing import Callable, Iterable, Sequence

from . import _availability
from ._native import ffi, lib
from ._native.lib import uk_prep_cancel, uk_reap, uk_reap_one, uk_wait_one  # by name: see _ring_ops
from ._ring_ops import Operations
from ._ring_types import (
    F_MORE, MAX_BATCHES, SKIP_BIT, Batch, Completion, PreparedBuffer, RingClosedError, StatxResult, check, iovecs,
    nanoseconds, new_completion,
)

__all__ = [
    "Batch", "Completion", "PreparedBuffer", "Ring", "RingClosedError", "SqeFlags", "StatxResult", "UringUnavailable",
    "check", "probe", "supports",
]

FOREVER = -1              # uk_reap's timeout_ns for 'no timeout'
CLOSE_DRAIN_SECONDS = 1.0  # how long close() waits for cancelled operations before it stops waiting


class UringUnavailable(OSError):
    """io_uring cannot be used here; the message says why in one line (sysctl, seccomp, old kernel)."""


class SqeFlags(enum.IntFlag):
    """Per-SQE flags (``flags=`` of every operation; chapter 08, "io_uring advanced"). Values come from the kernel
    header, not from this file."""

    NONE = 0
    LINK = lib.IOSQE_IO_LINK            # the next SQE starts only if this one succeeds
    HARDLINK = lib.IOSQE_IO_HARDLINK    # the next SQE starts when this one ends, whatever its result
    DRAIN = lib.IOSQE_IO_DRAIN          # start only after every earlier SQE has completed
    FIXED_FILE = lib.IOSQE_FIXED_FILE   # ``fd`` is an index into the registered files
    ASYNC = lib.IOSQE_ASYNC             # skip the inline attempt; go straight to an io-wq worker
    CQE_SKIP_SUCCESS = lib.IOSQE_CQE_SKIP_SUCCESS  # post no completion if it succeeds


class Ring(Operations):
    """One io_uring instance: prepare operations, ``submit()``, then reap ``Completion``s (chapter 06, "Inside
    io_uring"; SQPOLL, links, timeouts, cancellation and registration are chapter 08, "io_uring advanced").

    ``entries`` is the submission queue size (the completion queue is twice that). ``sqpoll=True`` starts a kernel
    thread that polls the submission queue, so ``submit()`` needs no system call while that thread is awake; it
    sleeps after ``sq_thread_idle_ms`` without work. ``coop_taskrun`` (kernel 5.19+, dropped silently if refused)
    lets completions be posted when we next enter the kernel instead of by interrupting us: cheaper, and this
    ring always enters the kernel to wait anyway. ``defer_taskrun=True`` (opt-in; kernel 6.1+, dropped silently if
    refused, see ``self.defer_taskrun``) goes further: the kernel finishes completions only when this ring enters
    it to wait or reap, in one go, which makes each cheaper. The price: only the thread that created the ring may
    use it (the kernel answers others with ``-EEXIST``), and ``completions_nowait()`` must enter the kernel to
    collect completions (one system call) instead of just reading the completion queue.
    """

    def __init__(self, entries: int = 256, *, sqpoll: bool = False, sq_thread_idle_ms: int = 1000,
                 coop_taskrun: bool = True, defer_taskrun: bool = False):
        self._r = _CLOSED
        reason = _availability.disabled_reason()
        if reason:
            raise UringUnavailable(errno.ENOSYS, reason)
        # The kernel refuses COOP_TASKRUN with SQPOLL: the poller thread, not an interrupt, runs the task work.
        coop_taskrun = coop_taskrun and not sqpoll
        if defer_taskrun and sqpoll:
            raise ValueError("defer_taskrun needs the submitting thread to run the task work: not with sqpoll")
        flags = (lib.IORING_SETUP_SQPOLL if sqpoll else 0) | (lib.IORING_SETUP_COOP_TASKRUN if coop_taskrun else 0)
        if defer_taskrun:
            flags |= _DEFER_TASKRUN
        err = ffi.new("int *")
        r = lib.uk_ring_new(entries, flags, sq_thread_idle_ms, err)
        if r == ffi.NULL and err[0] == -errno.EINVAL and defer_taskrun:  # kernel < 6.1
            flags &= ~_DEFER_TASKRUN
            r = lib.uk_ring_new(entries, flags, sq_thread_idle_ms, err)
        if r == ffi.NULL and err[0] == -errno.EINVAL and coop_taskrun:  # kernel < 5.19
            r = lib.uk_ring_new(entries, flags & ~lib.IORING_SETUP_COOP_TASKRUN, sq_thread_idle_ms, err)
        if r == ffi.NULL:
            raise _setup_error(-err[0], sqpoll)
        self._r = r
        self._io = lib.uk_ring_io(r)
        out = lib.uk_ring_out(r)
        # memoryviews onto uk_reap's output arrays: indexing them costs a third of indexing the cdata arrays.
        self._out_user_data = memoryview(ffi.buffer(out.user_data)).cast("Q")
        self._out_res = memoryview(ffi.buffer(out.res)).cast("i")
        self._out_flags = memoryview(ffi.buffer(out.flags)).cast("I")
        self._out_counts = memoryview(ffi.buffer(ffi.addressof(out, "n"), 8)).cast("I")  # [n, n_batches_done]
        self._out_batches_done = memoryview(ffi.buffer(out.batches_done)).cast("I")
        self._batches_in_flight = 0
        self._cq_entries = lib.uk_cq_entries(r)
        self.sqpoll = sqpoll
        self.defer_taskrun = bool(flags & _DEFER_TASKRUN)  # what the kernel accepted, not what was asked
        self.features = self._io.features
        self._inflight: dict[int, tuple] = {}       # token -> (user_data, keepalive)
        self._batches: list[Batch | None] = [None] * MAX_BATCHES
        self._free_slots = list(range(MAX_BATCHES - 1, -1, -1))
        self._ready: deque[Completion] = deque()    # reaped but not yet handed out (wait_cqe takes one)
        self._registered_buffers = None
        self._registered_files = None

    # --- lifecycle -------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Cancel what is in flight, wait briefly for it to finish, then tear the ring down. Idempotent."""
        if self._r == _CLOSED:
            return
        if self._awaiting_completions():
            self._cancel_everything()
        if self._inflight or self._batches_in_flight:
            # The kernel may still write into these buffers (an uncancellable read in an io-wq worker, or a
            # CQE_SKIP_SUCCESS operation we cannot see finish): keep them alive for the rest of the process
            # rather than risk a use-after-free.
            _ORPHANED.append((list(self._inflight.values()), [b for b in self._batches if b]))
        r, self._r = self._r, _CLOSED  # every later call into C sees NULL and answers -EBADFD
        self._io = None
        self._ready.clear()  # a closed ring hands out nothing, not even what it reaped before
        for view in (self._out_user_data, self._out_res, self._out_flags, self._out_counts,
                     self._out_batches_done):
            view.release()
        lib.uk_ring_free(r)
        self._registered_buffers = self._registered_files = None

    def _awaiting_completions(self) -> bool:
        """Whether a completion is still due (a CQE_SKIP_SUCCESS operation owes none if it succeeds)."""
        return self._batches_in_flight > 0 or any(not token & SKIP_BIT for token in self._inflight)

    def _cancel_everything(self) -> None:
        # The cancel's own completion is dropped by _reap: its token is in no table.
        uk_prep_cancel(self._r, 0, 0, lib.IORING_ASYNC_CANCEL_ANY | lib.IORING_ASYNC_CANCEL_ALL)
        deadline = time.monotonic() + CLOSE_DRAIN_SECONDS
        while self._awaiting_completions() and time.monotonic() < deadline:
            self._reap(1, 1, nanoseconds(deadline - time.monotonic()))
        self._ready.clear()

    @property
    def closed(self) -> bool:
        """True once ``close()`` ran: every further call raises ``RingClosedError``."""
        return self._r == _CLOSED

    def __enter__(self) -> "Ring":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        if getattr(self, "_r", _CLOSED) != _CLOSED:
            self.close()

    def fileno(self) -> int:
        """The ring's own file descriptor (for poll/epoll on the ring, as chapter 08 does)."""
        return self._live_io().ring_fd

    def _live_io(self):
        if self._r == _CLOSED:
            raise RingClosedError("this Ring is closed")
        return self._io

    # --- submitting and reaping ------------------------------------------------------------------------------
    def submit(self) -> int:
        """Hand every queued SQE to the kernel; returns how many it took."""
        return check(lib.io_uring_submit(self._live_io()))

    def submit_and_wait(self, wait_nr: int = 1) -> int:
        """Submit, then sleep in the kernel (GIL released) until ``wait_nr`` completions are ready; reap them
        with ``completions_nowait()``. Returns how many entries were submitted."""
        io = self._live_io()
        submitted = check(lib.io_uring_submit(io))
        wanted = min(wait_nr, self._cq_entries)
        # Submitting first means a signal ends the sleep with -EINTR: Python runs its handler (Ctrl-C raises
        # here), then we sleep on. (One enter that submits and sleeps reports the submissions instead.)
        while lib.io_uring_cq_ready(io) < wanted:
            res = lib.io_uring_submit_and_wait(io, wanted)
            if res < 0 and res != -errno.EINTR:
                check(res)
        return submitted

    def _reap(self, submit: int, wait_nr: int, timeout_ns: int) -> None:
        """One call into uk_reap (GIL released while it waits), then settle what it returned."""
        self._settle_reaped(uk_reap(self._r, submit, wait_nr, timeout_ns))

    def _settle_reaped(self, n: int) -> None:
        """Settle uk_reap's output: finished batches are released; its ``n`` single-op completions are queued in
        ``self._ready`` with their user_data."""
        if n < 0:
            return self._reap_failed(n)
        if self._batches_in_flight:
            self._release_done_batches()
        if not n:
            return
        tokens, results, cqe_flags, ready = self._out_user_data, self._out_res, self._out_flags, self._ready
        for i in range(n):
            completion = self._settle(tokens[i], results[i], cqe_flags[i])
            if completion is not None:
                ready.append(completion)

    def _settle(self, token: int, res: int, cflags: int) -> Completion | None:
        """The Completion for one CQE of a single operation; None for our own close-time cancel request."""
        entry = self._inflight.pop(token, None)
        if entry is None:
            return None
        if cflags & F_MORE:  # multishot: registered until its last completion (the one without F_MORE)
            self._inflight[token] = entry
        return new_completion(Completion, (entry[0], res, cflags, token))

    def _reap_failed(self, err: int) -> None:
        if err == -errno.EINTR:  # a signal: Python runs its handler now (Ctrl-C raises here); callers loop
            return
        if err == -errno.EBADFD and self.closed:
            raise RingClosedError("this Ring is closed")
        check(err)

    def _release_done_batches(self) -> None:
        batches, done = self._batches, self._out_batches_done
        for i in range(self._out_counts[1]):
            slot = done[i]
            batch, batches[slot] = batches[slot], None
            self._free_slots.append(slot)
            self._batches_in_flight -= 1
            batch.done = True

    def _reap_until(self, missing: Callable[[], int], timeout: float | None) -> None:
        """Submit and reap until ``missing()`` (how many completions are still wanted) is 0, or ``timeout``
        seconds passed. Reaps at least once, so a timeout of 0 still submits and looks."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wanted = missing()
            self._reap(1, wanted, FOREVER if deadline is None else nanoseconds(deadline - time.monotonic()))
            if not missing() or (deadline is not None and time.monotonic() >= deadline):
                return

    def completions_nowait(self) -> list[Completion]:
        """Every single-operation completion that is ready now, without submitting or waiting (batch results go
        into their ``Batch`` instead). With ``defer_taskrun`` this enters the kernel once, to let it finish them."""
        self._reap(0, 0, FOREVER)
        return self._take_ready()

    def wait_completions(self, wait_nr: int = 1, timeout: float | None = None) -> list[Completion]:
        """Submit what is queued, wait until ``wait_nr`` single-operation completions are ready (or ``timeout``
        seconds passed), and return every one that is ready."""
        self._reap_until(lambda: max(0, wait_nr - len(self._ready)), timeout)
        return self._take_ready()

    def dispatch(self, before: Callable[[], None] | None = None) -> int:
        """The event loop's turn: submit what is queued, wait for a completion, call ``before()`` once (a server
        reads its clock there), then call ``user_data(res, flags)`` for every ready single-operation completion,
        in order; ``user_data`` must be callable. Returns how many were called (0 after a signal). Completions
        reaped earlier by another method go first, without waiting.

        Per completion it skips what ``wait_completions`` builds for its caller (a ``Completion`` tuple, a queue
        entry, a list slot): in the io_uring server that was about an eighth of its Python time per request
        (wrk, 100 connections). If a callback raises, the completions after it stay queued for the next call, so
        none is lost."""
        ready = self._ready
        if ready:
            if before is not None:
                before()
            n = len(ready)
            for _ in range(n):
                completion = ready.popleft()
                completion[0](completion[1], completion[2])
            return n
        n = uk_reap_one(self._r)  # submit, wait for one, reap every ready one
        if n <= 0 or self._batches_in_flight:
            self._settle_reaped(n)
            return self.dispatch(before) if ready else 0
        if before is not None:
            before()
        # copies, not the views: a callback that reaps (completions_nowait, say) overwrites the output arrays
        tokens, results = self._out_user_data[:n].tolist(), self._out_res[:n].tolist()
        cqe_flags, inflight = self._out_flags[:n].tolist(), self._inflight
        i = called = 0
        try:
            while i < n:
                token = tokens[i]
                entry = inflight.pop(token, None)
                i += 1  # before the call: if it raises, this completion was handed out
                if entry is not None:  # (None: our own close-time cancel request, as in _settle)
                    cflags = cqe_flags[i - 1]
                    if cflags & F_MORE:  # multishot: registered until its last completion
                        inflight[token] = entry
                    called += 1
                    entry[0](results[i - 1], cflags)
        except BaseException:
            for j in range(i, n):
                completion = self._settle(tokens[j], results[j], cqe_flags[j])
                if completion is not None:
                    ready.append(completion)
            raise
        return called

    def _take_ready(self) -> list[Completion]:
        ready = list(self._ready)
        self._ready.clear()
        return ready

    def wait_cqe(self, timeout: float | None = None) -> Completion | None:
        """The next single-operation completion, submitting what is queued if it has to wait; ``None`` after
        ``timeout`` seconds."""
        ready = self._ready
        if ready:
            return ready.popleft()
        if timeout is not None:
            self._reap_until(lambda: not ready, timeout)
            return ready.popleft() if ready else None
        inflight = self._inflight
        while True:  # the hot path of a request/response loop: no clock, no closure, no queue, no helper call
            token = uk_wait_one(self._r)  # submit, wait for one, reap: the token when it reaped just that one
            if token > 0:
                entry = inflight.pop(token, None)
                if entry is not None:  # (None: our own close-time cancel request, as in _settle)
                    cflags = self._out_flags[0]
                    if cflags & F_MORE:  # multishot: registered until its last completion
                        inflight[token] = entry
                    return new_completion(Completion, (entry[0], self._out_res[0], cflags, token))
            else:
                self._settle_reaped(token or self._out_counts[0])  # -errno, or several (batches included)
                if ready:
                    return ready.popleft()

    def wait_batch(self, batch: Batch, timeout: float | None = None) -> bool:
        """Wait until ``batch`` is done; False after ``timeout`` seconds. Completions of single operations that
        arrive meanwhile are kept for the next ``wait_cqe``/``wait_completions``."""
        if timeout is None:  # the hot path of a queue-depth loop: no clock, no closure
            while not batch.done:
                self._reap(1, 1, FOREVER)
            return True
        self._reap_until(lambda: not batch.done, timeout)
        return batch.done

    # --- registration ----------------------------------------------------------------------------------------
    def register_buffers(self, bufs: Sequence) -> None:
        """Pin ``bufs`` once so ``read_fixed``/``write_fixed`` skip per-I/O page pinning; kept alive until
        ``unregister_buffers`` or close (chapter 08)."""
        iov, keep = iovecs(bufs, writable=True)
        check(lib.io_uring_register_buffers(self._live_io(), iov, len(bufs)))
        self._registered_buffers = (keep[0], keep[1], iov)

    def unregister_buffers(self) -> None:
        """Unpin the registered buffers (no fixed read or write may be in flight)."""
        check(lib.io_uring_unregister_buffers(self._live_io()))
        self._registered_buffers = None

    def register_files(self, fds: Iterable[int]) -> None:
        """Register ``fds``; then pass an index with ``flags=SqeFlags.FIXED_FILE`` to skip the fd lookup
        (chapter 08)."""
        fds = list(fds)
        check(lib.io_uring_register_files(self._live_io(), ffi.new("int[]", fds), len(fds)))
        self._registered_files = fds

    def unregister_files(self) -> None:
        """Drop the registered files (the fds themselves stay open: they are the caller's)."""
        check(lib.io_uring_unregister_files(self._live_io()))
        self._registered_files = None

    # --- introspection ---------------------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """Operations submitted or queued whose final completion has not been reaped yet (not counting
        CQE_SKIP_SUCCESS operations: they owe no completion if they succeed)."""
        singles = sum(1 for token in self._inflight if not token & SKIP_BIT)
        return singles + sum(b.n for b in self._batches if b is not None)

    def sq_space_left(self) -> int:
        """Free submission queue entries (preparing more than this submits the queued ones first)."""
        return lib.io_uring_sq_space_left(self._live_io())

    def probe(self) -> frozenset[str]:
        """Names of the operations this kernel supports (``IORING_OP_READ`` -> ``"read"``; chapter 08)."""
        p = lib.io_uring_get_probe_ring(self._live_io())
        if p == ffi.NULL:
            return frozenset()
        try:
            return frozenset(name for name, op in OPCODES.items() if lib.io_uring_opcode_supported(p, op))
        finally:
            lib.io_uring_free_probe(p)


OPCODES = {name[len("IORING_OP_"):].lower(): getattr(lib, name)
           for name in dir(lib) if name.startswith("IORING_OP_") and name != "IORING_OP_LAST"}
_CLOSED = ffi.cast("struct uk_ring *", 0)  # what a closed Ring holds instead of its pointer
_DEFER_TASKRUN = lib.uk_defer_taskrun_flags()  # SINGLE_ISSUER | DEFER_TASKRUN: the kernel wants both
_ORPHANED: list = []  # buffers of operations that outlived their ring's close(); see Ring.close


def _setup_error(err: int, sqpoll: bool) -> OSError:
    if err == errno.EPERM and sqpoll:
        return PermissionError(err, "SQPOLL is not permitted here (needs CAP_SYS_NICE on kernels before 5.11)")
    reason = _availability.explain_setup_errno(err)
    return UringUnavailable(err, reason) if reason else OSError(err, f"io_uring_setup failed: {os.strerror(err)}")


_PROBE_CACHE: frozenset[str] | None = None


def probe() -> frozenset[str]:
    """The operations this kernel's io_uring supports (empty if io_uring is unavailable; chapter 08). Cached."""
    global _PROBE_CACHE
    if _PROBE_CACHE is None:
        try:
            with Ring(4) as ring:
                _PROBE_CACHE = ring.probe()
        except OSError:
            _PROBE_CACHE = frozenset()
    return _PROBE_CACHE


def supports(op: str) -> bool:
    """Whether the kernel supports io_uring operation ``op`` (``"read"``, ``"accept"``, ``"send_zc"`` ...;
    chapter 08: ask the kernel, not the version string)."""
    if op.lower() not in OPCODES:
        raise ValueError(f"unknown io_uring operation {op!r}; known: {', '.join(sorted(OPCODES))}")
    return op.lower() in probe()

