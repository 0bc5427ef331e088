"""Blocking I/O, seen from the outside (introduced in chapter 01, "Blocking I/O").

A process blocked in ``read`` is not running: the kernel has put it to sleep (state ``S``) on a wait queue and
records where (``/proc/PID/wchan``). When data arrives it is woken, and each sleep counts as one *voluntary*
context switch. A process that never blocks is still switched out - *involuntarily* - whenever the scheduler
gives its CPU to someone else. These helpers let a chapter watch both happen, and time a switch.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time

from ._native import ffi, lib

__all__ = ["BlockedReader", "ProcState", "SwitchCost", "context_switch_cost", "preemption", "proc_state"]

STATES = {"R": "running", "S": "sleeping (interruptible)", "D": "sleeping (uninterruptible)", "T": "stopped",
          "Z": "zombie", "I": "idle"}


@dataclasses.dataclass(frozen=True)
class ProcState:
    """What the kernel says about one process: its state letter, where it sleeps, its switch counters."""

    pid: int
    state: str                # R, S, D, ...
    wchan: str                # the kernel function it sleeps in ("0" or "" when running)
    voluntary_switches: int
    involuntary_switches: int

    @property
    def state_name(self) -> str:
        return STATES.get(self.state, self.state)


def proc_state(pid: int) -> ProcState:
    """Read /proc/PID/stat, wchan and status for ``pid`` (chapter 01)."""
    with open(f"/proc/{pid}/stat") as f:
        state = f.read().rsplit(")", 1)[1].split()[0]
    try:
        with open(f"/proc/{pid}/wchan") as f:
            wchan = f.read().strip()
    except OSError:
        wchan = ""
    counts = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                name, value = line.split(":")
                counts[name] = int(value)
    return ProcState(pid, state, wchan, counts["voluntary_ctxt_switches"], counts["nonvoluntary_ctxt_switches"])


class BlockedReader:
    """A child process that loops on ``read(0, ...)`` from a pipe we hold: it sleeps until we ``feed`` it.

    Use it as a context manager; the child is reaped on exit.
    """

    # The child is deliberately tiny: os.read of one byte, forever, so every byte we write is one wake-up.
    CHILD = "import os\nwhile os.read(0, 1):\n    pass\n"

    def __init__(self):
        read_end, self._write_end = os.pipe()
        self._proc = subprocess.Popen([sys.executable, "-c", self.CHILD], stdin=read_end)
        os.close(read_end)
        self.pid = self._proc.pid

    def state(self) -> ProcState:
        return proc_state(self.pid)

    def wait_until_asleep(self, timeout: float = 5.0) -> ProcState:
        """Wait until the child is blocked in read (state S); return that state."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.state()
            if st.state == "S" and "pipe" in st.wchan or time.monotonic() > deadline:
                return st
            time.sleep(0.01)

    def feed(self, n: int, pause: float | None = None) -> None:
        """Write ``n`` bytes one at a time. By default wait, after each, until the child has read it and blocked
        again (its voluntary switch count moved on), so every byte is one wake-up even on a busy machine; with
        ``pause`` just sleep that long between bytes (``pause=0``: write them back to back)."""
        for _ in range(n):
            before = self.state().voluntary_switches if pause is None else 0
            os.write(self._write_end, b"x")
            if pause is None:
                self._wait_for_block_after(before)
            elif pause:
                time.sleep(pause)

    def _wait_for_block_after(self, switches: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.state()
            if st.voluntary_switches > switches and st.state == "S":
                return
            time.sleep(0.0002)

    def close(self) -> None:
        if self._write_end >= 0:
            os.close(self._write_end)  # EOF: the child's loop ends
            self._write_end = -1
            self._proc.wait(timeout=10)

    def __enter__(self) -> "BlockedReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_HOG = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


def preemption(seconds: float = 1.0, hogs: int = 2, cpu: int = 0) -> list[ProcState]:
    """Run ``hogs`` CPU-bound processes pinned to one CPU for ``seconds``; return their final states.

    None of them ever blocks, so their voluntary switch counts stay near zero while the scheduler preempts them
    (involuntary switches) to share the CPU fairly.
    """
    procs = [subprocess.Popen([sys.executable, "-c", _HOG.format(seconds=seconds)]) for _ in range(hogs)]
    try:
        for p in procs:
            os.sched_setaffinity(p.pid, {cpu})
        time.sleep(seconds * 0.95)
        return [proc_state(p.pid) for p in procs]
    finally:
        for p in procs:
            p.wait(timeout=seconds + 30)


@dataclasses.dataclass(frozen=True)
class SwitchCost:
    """One ping-pong measurement: round trips, time, and the switches the measuring task saw."""

    partner: str               # "process" or "thread"
    round_trips: int
    seconds: float
    voluntary_switches: int
    involuntary_switches: int

    @property
    def us_per_switch(self) -> float:
        """Time per context switch, including the pipe read and write that cause it."""
        return self.seconds / self.round_trips / 2 * 1e6


def context_switch_cost(partner: str = "process", round_trips: int = 100_000, cpu: int = 0) -> SwitchCost:
    """Pass a byte back and forth between two tasks pinned to one CPU (in C, so Python's own cost is out of the
    picture): two switches per round trip. ``partner`` is ``"process"`` (fork) or ``"thread"``."""
    if partner not in ("process", "thread"):
        raise ValueError("partner must be 'process' or 'thread'")
    out = ffi.new("struct uk_pingpong_result *")
    res = lib.uk_pingpong(partner == "thread", cpu, round_trips, out)
    if res < 0:
        raise OSError(-res, os.strerror(-res))
    return SwitchCost(partner, out.round_trips, out.seconds, out.voluntary_switches, out.involuntary_switches)
