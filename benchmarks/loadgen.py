"""Is uk.load ever the bottleneck? The load generator against wrk and ab, on one server (chapter 04).

Figures, each the median of --repeats interleaved runs against the same server process:

  keep-alive, c=100 and c=1,000    uk.load / wrk, same connections, threads and duration  (target >= 0.9)
  connection per request, c=100    uk.load / ab -c 100                                     (target >= 1.0)
  15,000 keep-alive connections    held 10 s: zero connect errors, generator RSS <= 200 MB

The server is the C epoll server when it is built, else the Python epoll server (then the server, not the
generator, sets the pace and the ratios say little), else the loopback server given with --url. Each figure ends
in a RESULT line. Loopback only; about three minutes with the defaults.

    python benchmarks/loadgen.py [--duration 5] [--repeats 3] [--url http://127.0.0.1:8080/]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import resource
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import uringkit
from uringkit.load import load

THREADS = 2                 # the machine's cores; wrk and uk.load get the same number
WRK_TIMEOUT_S = 12          # as uk.load's default per-request timeout
HOLD_CONNECTIONS = 15_000   # the 2019 benchmark's largest concurrency
HOLD_S = 10.0
RSS_LIMIT_MB = 200

# Run in a child process so that its peak RSS (VmHWM) is the generator's own, not this script's.
HOLD_CHILD = """
import json, sys
from uringkit.load import load
r = load(sys.argv[1], int(sys.argv[2]), duration=float(sys.argv[3]), threads=int(sys.argv[4]))
status = open("/proc/self/status").read()
hwm_kb = int(status.split("VmHWM:")[1].split()[0])
print(json.dumps(dict(peak=r.peak_connections, completed=r.completed, connect_errors=r.connect_errors,
                      timeouts=r.timeouts, read_errors=r.read_errors, slow_connects=r.slow_connects,
                      duration_s=r.duration_s, ramp_s=r.ramp_s, rps=r.rps, hwm_mb=hwm_kb / 1024)))
"""


def choose_server(url: str | None):
    """(context manager yielding the base URL, one line saying which server it is)."""
    if url:
        return contextlib.nullcontext(url.rstrip("/")), f"the server at {url} (--url)"
    from uringkit._native import lib
    from uringkit.servers import serve

    if hasattr(lib, "uk_serve_epoll"):
        return _url_of(serve("epoll", "c")), "the C epoll server (uk.serve('epoll', 'c'))"
    if (Path(uringkit.__file__).parent / "servers" / "epoll.py").exists():
        return _url_of(serve("epoll", "py")), ("the Python epoll server: the C one is not built, so the server "
                                              "sets the pace and these ratios cannot show a slow generator")
    sys.exit("no epoll server is built yet: start a loopback server and pass --url http://127.0.0.1:PORT/")


@contextlib.contextmanager
def _url_of(server):
    with server:
        yield server.url


def _child_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _tool(argv: list[str]) -> tuple[str, float]:
    """Run wrk or ab; its output and the CPU seconds it used (its own figure of cost, like uk.load's)."""
    before = _child_cpu_s()
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return out, _child_cpu_s() - before


def run_wrk(url: str, connections: int, duration: float) -> tuple[float, float]:
    out, cpu = _tool(["wrk", "-c", str(connections), "-t", str(THREADS), "-d", f"{duration:g}s",
                      "--timeout", f"{WRK_TIMEOUT_S}s", url])
    errors = re.search(r"Socket errors: (.*)", out)
    if errors:
        print(f"    wrk socket errors: {errors.group(1)}")
    done = int(re.search(r"(\d+) requests in", out).group(1))
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), cpu / done * 1e6


def run_ab(url: str, connections: int, duration: float) -> tuple[float, float]:
    # -t alone would cap the run at 50,000 requests; -n after it lifts the cap
    out, cpu = _tool(["ab", "-q", "-c", str(connections), "-t", f"{duration:g}", "-n", "100000000", url])
    failed = int(re.search(r"Failed requests:\s+(\d+)", out).group(1))
    if failed:
        print(f"    ab failed requests: {failed}")
    done = int(re.search(r"Complete requests:\s+(\d+)", out).group(1))
    return float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1)), cpu / done * 1e6


def run_uk(url: str, connections: int, duration: float, keepalive: bool) -> tuple[float, float]:
    r = load(url, connections, duration=duration, keepalive=keepalive, threads=THREADS)
    if r.errors or r.non_2xx:
        print(f"    uk.load: {r.summary()}")
    return r.rps, r.cpu_us_per_request


def compare(name: str, url: str, connections: int, duration: float, repeats: int, keepalive: bool,
            other: str, target: float) -> None:
    runner = run_wrk if other == "wrk" else run_ab
    runs = {"uk.load": [], other: []}
    for rep in range(repeats):
        # interleaved, alternating who goes first: drift in the machine's load hits both sides alike
        for who in ("uk.load", other) if rep % 2 == 0 else (other, "uk.load"):
            rps, cpu_us = (run_uk(url, connections, duration, keepalive) if who == "uk.load"
                           else runner(url, connections, duration))
            runs[who].append((rps, cpu_us))
            print(f"    {who:8s} {rps:>10,.0f} req/s, {cpu_us:5.2f} us of its own CPU per request")
    (a, a_cpu), (b, b_cpu) = [(statistics.median(r for r, _ in v), statistics.median(c for _, c in v))
                              for v in runs.values()]
    verdict = "ok" if a / b >= target else "MISSED"
    print(f"{name}: uk.load {a:,.0f} req/s at {a_cpu:.2f} us CPU/request, {other} {b:,.0f} req/s at {b_cpu:.2f} "
          f"us CPU/request (medians of {repeats})")
    print(f"RESULT {name}_ratio_vs_{other} {a / b:.3f} (target >= {target}) {verdict}")
    print(f"RESULT {name}_cpu_per_request_vs_{other} {a_cpu / b_cpu:.3f} (lower is cheaper)")


def hold(url: str) -> None:
    # the ramp (RAMP_WINDOW connections awaiting accept at a time) comes first; the hold is what follows it.
    # ~2 s here when the machine is quiet, longer when the server is starved of CPU and accepts slowly
    allowance = 10.0
    out = subprocess.run([sys.executable, "-c", HOLD_CHILD, url, str(HOLD_CONNECTIONS), str(HOLD_S + allowance),
                          str(THREADS)], capture_output=True, text=True, timeout=HOLD_S + 120)
    if out.returncode:
        sys.exit(f"the {HOLD_CONNECTIONS:,}-connection run failed: {out.stderr.strip()[-2000:]}")
    r = json.loads(out.stdout)
    held = r["duration_s"] - r["ramp_s"]
    print(f"{HOLD_CONNECTIONS:,} keep-alive connections: peak {r['peak']:,} open, ramp {r['ramp_s']:.2f} s, held "
          f"{held:.1f} s, {r['rps']:,.0f} req/s, connect errors {r['connect_errors']}, timeouts {r['timeouts']}, "
          f"read errors {r['read_errors']}, slow connects {r['slow_connects']}, generator peak RSS "
          f"{r['hwm_mb']:.1f} MB")
    for figure, value, target, ok in [
            ("connect_errors", r["connect_errors"], "0", r["connect_errors"] == 0),
            ("peak_connections", r["peak"], f"{HOLD_CONNECTIONS}", r["peak"] == HOLD_CONNECTIONS),
            ("held_s", f"{held:.1f}", f">= {HOLD_S:g}", held >= HOLD_S),
            ("generator_rss_mb", f"{r['hwm_mb']:.1f}", f"<= {RSS_LIMIT_MB}", r["hwm_mb"] <= RSS_LIMIT_MB)]:
        print(f"RESULT hold_{HOLD_CONNECTIONS}_{figure} {value} (target {target}) {'ok' if ok else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run (default 5)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per figure (default 3)")
    parser.add_argument("--url", help="a loopback server to use instead of uk.serve('epoll', ...)")
    a = parser.parse_args()
    missing = [tool for tool in ("wrk", "ab") if not shutil.which(tool)]
    if missing:
        sys.exit(f"{' and '.join(missing)} not found: apt-get install wrk apache2-utils (make setup does it)")
    server, what = choose_server(a.url)
    with server as base:
        url = base + "/"
        print(f"server: {what}; {THREADS} load threads; {a.duration:g} s per run; loopback {url}")
        compare("keepalive_c100", url, 100, a.duration, a.repeats, True, "wrk", 0.9)
        compare("keepalive_c1000", url, 1000, a.duration, a.repeats, True, "wrk", 0.9)
        compare("close_c100", url, 100, a.duration, a.repeats, False, "ab", 1.0)
        hold(url)


if __name__ == "__main__":
    main()
