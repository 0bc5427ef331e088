"""Server: a server model running as a child process, and what it costs (introduced in chapter 02).

The server runs in its own session (process group), never inside the notebook's kernel: stopping it signals the
whole group, so a forking server's children go with it. Nothing is left behind - on ``stop()``, on leaving a
``with`` block (KeyboardInterrupt included) and at interpreter exit.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path

from ._config import IMPLS, MODELS, STAT_FIELDS, ServerConfig, SharedStats, _shm_dir

START_TIMEOUT = 20.0   # seconds for the child to bind and announce (a preforked pool of 100 forks first)
STOP_GRACE = 3.0       # seconds between SIGTERM and SIGKILL
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

_LIVE: "weakref.WeakSet[Server]" = weakref.WeakSet()


@dataclasses.dataclass(frozen=True)
class ServerStatistics:
    """A snapshot of a running server: its own counters plus what the kernel says about its processes."""

    requests: int
    accepted: int
    open_connections: int
    refused: int
    bad_requests: int
    timeouts: int
    cpu_user_s: float             # every live process of the server, plus reaped children (see _process_cpu)
    cpu_system_s: float
    voluntary_switches: int       # summed over live threads (a reaped child's switches are gone with it)
    involuntary_switches: int
    pss_bytes: int                # proportional set size summed over live processes: shared pages split
    processes: int
    threads: int

    @property
    def cpu_s(self) -> float:
        return self.cpu_user_s + self.cpu_system_s


def _session_stats(sid: int) -> dict[int, list[str]]:
    """/proc/PID/stat fields (see _stat_fields) of every live process in session ``sid``, read once each."""
    members = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and int(fields[3]) == sid:
                members[int(entry)] = fields
    return members


def _session_members(sid: int) -> list[int]:
    return list(_session_stats(sid))


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (so index 0 is the state, field 3 of proc(5))."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(")") + 2:].split()


def _process_cpu(pid: int, fields: list[str]) -> tuple[float, float]:
    """(user, system) seconds of one process, as precisely as /proc allows.

    /proc/PID/stat reports utime/stime in clock ticks (10 ms), truncated per process: for a pool of 100 worker
    processes that could lose a second. /proc/PID/task/*/schedstat has nanoseconds but only for live threads. Both
    undercount, never overcount, so the larger is the better figure; stat's ticks give the user/system split.
    """
    user_ticks, system_ticks = int(fields[11]), int(fields[12])
    ticks = (user_ticks + system_ticks) / CLOCK_TICKS
    live_ns = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                live_ns += int(f.read().split()[0])
    except (OSError, ValueError):
        pass
    total = max(ticks, live_ns / 1e9)
    user_share = user_ticks / (user_ticks + system_ticks) if user_ticks + system_ticks else 0.5
    return total * user_share, total * (1 - user_share)


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _switches(pid: int) -> tuple[int, int]:
    voluntary = involuntary = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0, 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        voluntary += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        involuntary += int(line.split()[1])
        except OSError:
            continue
    return voluntary, involuntary


class Server:
    """A running server (model x impl): ``url``, ``pid``, ``statistics()``, ``stop()``; a context manager."""

    def __init__(self, model: str, impl: str = "c", config: ServerConfig | None = None, *,
                 cpus: tuple[int, ...] | None = None):
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
        if impl not in IMPLS:
            raise ValueError(f"impl must be 'c' or 'py', not {impl!r}")
        self.model, self.impl = model, impl
        self.config = config or ServerConfig()
        self.cpus = tuple(cpus) if cpus else None
        self.host, self.port = self.config.host, None
        self._proc: subprocess.Popen | None = None
        self._stats_path = self._log = None
        self._stats: SharedStats | None = None

    # --- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> "Server":
        fd, self._stats_path = tempfile.mkstemp(prefix="uringkit-stats-", dir=_shm_dir())
        os.close(fd)
        self._stats = SharedStats(self._stats_path)
        self._log = tempfile.TemporaryFile(prefix="uringkit-server-log-")
        c = self.config
        cmd = [sys.executable, "-m", "uringkit.servers", self.model, "--impl", self.impl, "--host", c.host,
               "--port", str(c.port), "--backlog", str(c.backlog), "--workers", str(c.workers),
               "--idle-timeout", str(c.idle_timeout), "--docroot", c.docroot, "--stats", self._stats_path]
        if self.cpus:
            cmd += ["--cpus", ",".join(map(str, self.cpus))]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log,
                                      start_new_session=True, cwd=Path(__file__).resolve().parent.parent.parent)
        _LIVE.add(self)
        try:
            self.port = self._wait_for_announce()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_announce(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        out = self._proc.stdout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.model}/{self.impl} did not announce its port in {START_TIMEOUT:.0f} s")
            ready, _, _ = select.select([out], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(out.fileno(), 256)
                if not chunk:
                    self._proc.wait(timeout=5)
                    raise RuntimeError(f"{self.model}/{self.impl} server exited with status "
                                       f"{self._proc.returncode}: {self.log().strip()[-2000:]}")
                line += chunk
        words = line.split()
        if len(words) != 3 or words[0] != b"LISTENING":
            raise RuntimeError(f"unexpected announcement from the server: {line!r}")
        return int(words[2])

    def stop(self) -> None:
        """SIGTERM to the server's whole process group, SIGKILL after a grace period; reaps it. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _LIVE.discard(self)
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_GRACE)
                except subprocess.TimeoutExpired:
                    pass
            _signal_group(proc.pid, signal.SIGKILL)  # children of a forking server that outlived their parent
            proc.wait()
            proc.stdout.close()
        if self._stats is not None:
            self._stats.close()
            self._stats = None
        if self._stats_path:
            os.unlink(self._stats_path)
            self._stats_path = None
        if self._log is not None:
            self._final_log = self.log()
            self._log.close()
            self._log = None

    def __enter__(self) -> "Server":
        return self if self._proc else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self):
        if getattr(self, "_proc", None) is not None:
            self.stop()

    # --- what it is doing ------------------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        return self._proc.pid if self._proc else -1

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        """What the server wrote to stderr so far (errors, warnings)."""
        if self._log is None:
            return getattr(self, "_final_log", "")
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def statistics(self) -> ServerStatistics:
        """Counters from the server plus CPU, context switches, RSS, processes and threads from /proc."""
        if self._stats is None or self._proc is None:
            raise RuntimeError("the server is not running")
        counts = self._stats.snapshot()
        user = system = 0.0
        pss = procs = threads = vol = invol = 0
        for pid, fields in _session_stats(self._proc.pid).items():
            u, s = _process_cpu(pid, fields)
            user, system = user + u, system + s
            if pid == self._proc.pid:  # reaped children's CPU lands in their parent's cutime/cstime
                user += int(fields[13]) / CLOCK_TICKS
                system += int(fields[14]) / CLOCK_TICKS
            threads += int(fields[17])
            pss += _pss(pid)
            procs += 1
            v, i = _switches(pid)
            vol, invol = vol + v, invol + i
        return ServerStatistics(**{k: counts[k] for k in STAT_FIELDS}, cpu_user_s=user, cpu_system_s=system,
                                voluntary_switches=vol, involuntary_switches=invol, pss_bytes=pss,
                                processes=procs, threads=threads)

    def __repr__(self) -> str:
        state = f"running at {self.url}, pid {self.pid}" if self.running else "stopped"
        return f"<Server {self.model}/{self.impl} {state}>"


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def serve(model: str, impl: str = "c", *, cpus: tuple[int, ...] | None = None, **tunables) -> Server:
    """Start server ``model`` (``"epoll"``...) in ``impl`` ``"c"`` or ``"py"``; tunables are ``ServerConfig``
    fields (port, backlog, workers, idle_timeout, docroot). Use it as a context manager (chapter 02)."""
    return Server(model, impl, ServerConfig(**tunables), cpus=cpus).start()


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()
