"""The load generator every server is measured with (introduced in chapter 04, "The benchmark").

``uk.load(url, concurrency, ...)`` runs the C load generator (``native/loadgen.c``) against one loopback server
and returns a ``LoadResult``: requests per second, latency percentiles, every kind of failure, and the CPU the
generator itself burned (on a 2-core machine it shares the CPUs with the server, so that number matters)::

    with uk.serve("epoll", "c") as server:
        result = uk.load(server.url, concurrency=100, duration=5)
    print(result.summary())

Two ways to load a server:

- **closed loop** (default): each of ``concurrency`` connections sends its next request as soon as the previous
  response is complete - the 2019 benchmark, and ``wrk``/``ab``. Throughput is whatever the server sustains.
- **open loop** (``rate=R``): request k is due at ``k / R`` seconds, whether or not the server kept up. Latency
  runs from that *intended* moment, so a server that stalls for a second shows a second of latency on every
  request that should have been sent meanwhile (no coordinated omission). ``concurrency`` bounds the requests in
  flight (a connection is opened when a send first needs it); sends that were due but found no free connection
  by the end are reported as ``unsent``.

Latency runs from the start of a request (closed loop) or its intended send (open loop), including any connect
it needed, to the last byte of its response. ``keepalive=False`` opens a new connection per request and sends
``Connection: close``, as the 2019 benchmark did. Nothing is hidden: connect errors, timeouts (connect timeouts
among them), read errors, non-2xx responses, connects slowed by SYN retransmission (an overflowing accept
queue), requests still in flight at the end and clients never served are all counted.
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import os
import resource
import threading
import urllib.parse

from ._native import ffi, lib

__all__ = ["LoadResult", "load"]

DEFAULT_DURATION = 10.0       # seconds, when neither duration nor requests is given
REQUESTS_TIME_LIMIT = 300.0   # seconds: a requests=N run that cannot finish (server gone) still ends
DEFAULT_TIMEOUT = 12.0        # seconds per request: above the servers' longest /delay (10 s)
CONNECT_TIMEOUT = 5.0         # seconds: lets SYN retransmissions at 1 s and 3 s through, to be counted as slow
RAMP_WINDOW = 1000            # new connections awaiting accept at once: well under somaxconn (4096)
SPREAD_SOURCES = True         # bind IPv4 clients over 127.0.0.1-254: 254 x ~28k ports instead of ~28k
MAX_TIMEOUT = 86400.0         # seconds: the C side counts timeouts in int milliseconds
CANCEL_POLL_S = 0.1           # how often the waiting Python thread checks for KeyboardInterrupt


@dataclasses.dataclass(frozen=True)
class LoadResult:
    """What one ``uk.load`` run measured (chapter 04). Latencies in milliseconds; ``rps`` over ``duration_s``."""

    url: str
    concurrency: int
    keepalive: bool
    rate: float | None            # open loop: requests per second asked for; None: closed loop
    pipeline: int                 # requests sent back to back on a connection before reading the responses
    requests: int | None          # requests=N asked for
    threads: int
    cpus: tuple[int, ...] | None  # CPUs the load threads were pinned to
    duration_s: float             # measured: first connect to end of run
    ramp_s: float                 # closed loop: time until every connection had been accepted (see RAMP_WINDOW)
    completed: int                # responses read in full, any status
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float                 # exact, like mean_ms; percentiles are within 0.8 % (histogram buckets)
    mean_ms: float
    non_2xx: int
    connect_errors: int           # refused, reset, out of ports or fds...; connect_error names the latest
    timeouts: int                 # requests that ran out of time, connect_timeouts included
    connect_timeouts: int
    read_errors: int              # established connections that failed mid-request; read_error names the latest
    connects: int                 # connections established
    slow_connects: int            # of connects: took >= 1 s, i.e. a SYN was dropped (accept queue full) and resent
    connect_max_ms: float         # the slowest successful connect
    peak_connections: int         # most connections established at once
    unsent: int                   # open loop: sends due but never made (no free connection)
    in_flight: int                # requests still unanswered when the run ended (in no count above)
    unserved: int                 # connections that sent requests but never got a single response
    bytes_read: int
    connect_error: str            # e.g. "ECONNREFUSED: Connection refused"; "" if none
    read_error: str
    loadgen_cpu_s: float          # CPU time (user + system) of the load threads
    latency_histogram: tuple[tuple[float, float, int], ...] = dataclasses.field(repr=False, compare=False)
    """Non-empty latency buckets as (low_ms, width_ms, count), for plotting a distribution."""

    @property
    def errors(self) -> int:
        """Requests that failed for any reason (non-2xx responses are completed, not errors)."""
        return self.connect_errors + self.timeouts + self.read_errors

    @property
    def cpu_us_per_request(self) -> float:
        """Load-generator CPU time per completed request, in microseconds."""
        return self.loadgen_cpu_s / self.completed * 1e6 if self.completed else float("nan")

    def summary(self) -> str:
        """One line for a notebook: throughput, latency, and every failure count that is not zero."""
        line = (f"{self.completed:,} requests in {self.duration_s:.2f} s = {self.rps:,.0f} req/s; latency p50 "
                f"{self.p50_ms:.3g} ms, p99 {self.p99_ms:.3g} ms, max {self.max_ms:.3g} ms")
        counts = [(n, getattr(self, n)) for n in ("non_2xx", "connect_errors", "timeouts", "read_errors",
                                                   "slow_connects", "unsent", "unserved")]
        problems = ", ".join(f"{n.replace('_', ' ')} {v:,}" for n, v in counts if v)
        return line + (f"; {problems}" if problems else "; no errors")


def _errno_text(code: int, none: str = "") -> str:
    if code == 0:
        return none
    return f"{errno.errorcode.get(code, str(code))}: {os.strerror(code)}"


def _check(rc: int) -> None:
    """The one place a ``-errno`` from the C generator becomes an exception."""
    if rc < 0:
        raise OSError(-rc, os.strerror(-rc))


def _target(url: str) -> tuple[str, int, str, str]:
    """(address, port, Host header, request target) of a loopback http:// URL; ValueError for anything else."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"uk.load speaks plain http:// only, not {url!r}")
    host = parts.hostname or ""
    address = "127.0.0.1" if host == "localhost" else host
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        ip = None
    if ip is None or not ip.is_loopback:
        raise ValueError(f"uk.load only loads loopback servers (127.0.0.0/8 or ::1), not {host!r}: it is a "
                         f"benchmark tool and must not flood anyone's network")
    try:
        port = parts.port
    except ValueError as e:
        raise ValueError(f"bad port in {url!r}: {e}") from None
    if port is None:
        raise ValueError(f"give the server's port in the URL: {url!r}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not path.isascii() or any(ch in path for ch in " \t\r\n"):
        raise ValueError(f"percent-encode the path of {url!r}: it goes into the request line as it is")
    return address, port, parts.netloc, path


def _check_fd_limit(concurrency: int, threads: int) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    need = lib.uk_load_fds_needed(concurrency, threads) + len(os.listdir("/proc/self/fd"))
    if hard != resource.RLIM_INFINITY and need > hard:
        raise ValueError(
            f"concurrency={concurrency:,} needs about {need:,} file descriptors, but this process may open at most "
            f"{hard:,} (its hard RLIMIT_NOFILE, `ulimit -Hn`). Lower the concurrency, or raise the hard limit, "
            f"e.g. as root: prlimit --pid {os.getpid()} --nofile={need}:{need}")


def _positive(name: str, value, allow_none: bool = False, at_most: float = float("inf")) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= at_most:
        raise ValueError(f"{name} must be a number above 0 and at most {at_most:g}, not {value!r}")


def load(url: str, concurrency: int, duration: float | None = None, requests: int | None = None, *,
         keepalive: bool = True, rate: float | None = None, timeout: float = DEFAULT_TIMEOUT,
         connect_timeout: float = CONNECT_TIMEOUT, threads: int | None = None,
         cpus: tuple[int, ...] | list[int] | None = None, pipeline: int = 1) -> LoadResult:
    """Load the server at ``url`` (loopback only) with ``concurrency`` connections; see chapter 04.

    ``duration`` seconds (default 10), or until exactly ``requests`` responses have completed (then ``duration``
    is only a time limit; a failed attempt is retried, so N means N completions, never more). ``rate`` switches
    to an open loop of that many requests per second. ``keepalive=False``: a new connection per request.
    ``pipeline=k`` (closed loop, keep-alive) sends k requests back to back and then reads their k responses, each
    timed from the moment the batch started.
    ``timeout``/``connect_timeout`` in seconds. ``threads`` defaults to the number of ``cpus`` (the load threads
    are pinned to them, round robin) or of the CPUs this process may run on. Returns a ``LoadResult``; raises
    ValueError for bad arguments, before any connection is made.
    """
    address, port, host_header, path = _target(url)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be an int >= 1, not {concurrency!r}")
    if requests is not None and (isinstance(requests, bool) or not isinstance(requests, int) or requests < 1):
        raise ValueError(f"requests must be an int >= 1 or None, not {requests!r}")
    _positive("duration", duration, allow_none=True)
    _positive("rate", rate, allow_none=True)
    _positive("timeout", timeout, at_most=MAX_TIMEOUT)
    _positive("connect_timeout", connect_timeout, at_most=MAX_TIMEOUT)
    if cpus is not None:
        cpus = tuple(cpus)
        allowed = os.sched_getaffinity(0)
        if not cpus or any(isinstance(c, bool) or not isinstance(c, int) or c not in allowed for c in cpus):
            raise ValueError(f"cpus must be a non-empty list of CPUs this process may use {sorted(allowed)}, "
                             f"not {cpus!r}")
    if threads is None:
        threads = min(len(cpus) if cpus else len(os.sched_getaffinity(0)), concurrency)
    elif isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= concurrency:
        raise ValueError(f"threads must be an int from 1 to concurrency ({concurrency}), not {threads!r}")
    if isinstance(pipeline, bool) or not isinstance(pipeline, int) or not 1 <= pipeline <= lib.UK_PIPELINE_MAX:
        raise ValueError(f"pipeline must be an int from 1 to {lib.UK_PIPELINE_MAX}, not {pipeline!r}")
    if pipeline > 1 and (rate or not keepalive):
        raise ValueError("pipeline > 1 needs keep-alive and a closed loop (rate=None)")
    _check_fd_limit(concurrency, threads)
    if duration is None:
        duration = REQUESTS_TIME_LIMIT if requests else DEFAULT_DURATION

    keep = [ffi.new("char[]", s.encode()) for s in (address, host_header, path)]
    cpu_array = ffi.new("int[]", list(cpus)) if cpus else ffi.NULL
    cancel = ffi.new("int *")
    cfg = ffi.new("struct uk_load_config *", {
        "address": keep[0], "port": port, "host_header": keep[1], "path": keep[2],
        "connections": concurrency, "threads": threads, "cpus": cpu_array, "n_cpus": len(cpus) if cpus else 0,
        "duration_s": duration, "requests": requests or 0, "rate": rate or 0.0, "keepalive": bool(keepalive),
        "pipeline": pipeline,
        "timeout_ms": max(1, round(timeout * 1000)), "connect_timeout_ms": max(1, round(connect_timeout * 1000)),
        "ramp_window": RAMP_WINDOW, "spread_sources": SPREAD_SOURCES, "cancel": cancel,
    })
    out = ffi.new("struct uk_load_result *")
    _check(_run(cfg, out, cancel))
    return _result(out, url=url, concurrency=concurrency, keepalive=bool(keepalive), rate=rate,
                   pipeline=pipeline, requests=requests, threads=threads, cpus=cpus)


def _run(cfg, out, cancel) -> int:
    """Run the C generator in a thread, so that Ctrl-C in a notebook ends the run (within CANCEL_POLL_S)."""
    rc, done = [], threading.Event()

    def work():
        try:
            rc.append(lib.uk_load_run(cfg, out))
        finally:
            done.set()

    # Waiting on an Event, not on join(): an interrupted join() can leave a finished thread listed as alive.
    worker = threading.Thread(target=work, name="uringkit-load")
    worker.start()
    try:
        while not done.wait(CANCEL_POLL_S):
            pass
    except BaseException:
        cancel[0] = 1
        done.wait()
        raise
    finally:
        worker.join()
    return rc[0]


def _result(out, **asked) -> LoadResult:
    def ms(percent: float) -> float:
        return lib.uk_load_percentile(out, percent) / 1000

    counts = ffi.unpack(out.latency_us, len(out.latency_us))
    histogram = tuple((lib.uk_load_bucket_low(i) / 1000, lib.uk_load_bucket_width(i) / 1000, n)
                      for i, n in enumerate(counts) if n)
    elapsed = out.elapsed_s
    return LoadResult(
        **asked, duration_s=elapsed, ramp_s=out.ramp_s, completed=out.completed,
        rps=out.completed / elapsed if elapsed else 0.0,
        p50_ms=ms(50), p90_ms=ms(90), p99_ms=ms(99), p999_ms=ms(99.9), max_ms=out.latency_max_us / 1000,
        mean_ms=out.latency_mean_us / 1000, non_2xx=out.non_2xx, connect_errors=out.connect_errors,
        timeouts=out.timeouts, connect_timeouts=out.connect_timeouts, read_errors=out.read_errors,
        connects=out.connects, slow_connects=out.slow_connects, connect_max_ms=out.connect_max_us / 1000,
        peak_connections=out.peak_connections,
        unsent=out.unsent, in_flight=out.in_flight, unserved=out.unserved, bytes_read=out.bytes_read,
        connect_error=_errno_text(out.last_connect_errno),
        read_error=(_errno_text(out.last_read_errno, "EOF before the response was complete") if out.read_errors
                    else ""),
        loadgen_cpu_s=out.cpu_user_s + out.cpu_system_s, latency_histogram=histogram)
