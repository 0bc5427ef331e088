"""Requests/second of every server (model x impl) beside uvloop and plain asyncio, measured in the same run.

Scenarios (all ``GET /``, the same 146-byte response everywhere):
    wrk-c100     wrk, 100 keep-alive connections
    wrk-c1000    wrk, 1,000 keep-alive connections
    ab-c100      ab, 100 concurrent clients, a new connection per request (HTTP/1.0, no keep-alive)

The servers run pinned to CPU 0 (``uk.serve(..., cpus=(0,))``), the load generator to CPU 1 (``taskset -c 1``),
so neither steals the other's core. Each (server, scenario) is measured ``--runs`` times with the servers
interleaved (run 1 of every server, then run 2 ...), and the median is reported, because this machine is shared
and noisy. Besides requests/second it reports the server's CPU time per request (``Server.statistics()``
before/after: user + system of every process of the server), how busy the server was, and two ratios to
uvloop: of requests/second, and of CPU time per request (the steadier one on a shared machine). The references are
asyncio.Protocol servers written below that answer the same bytes without parsing more than they must; uvloop
runs the very same protocol on libuv.

Run it: ``.venv/bin/python benchmarks/servers.py --quick`` (about a minute), or without ``--quick`` for the
full run (prints its expected duration first). Lines ``RESULT <name> <value>`` are for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from uringkit import http  # noqa: E402
from uringkit._native import lib  # noqa: E402
from uringkit.servers import MODELS, serve  # noqa: E402

SERVER_CPU, LOAD_CPU = 0, 1
SCENARIOS = {   # name -> (tool, connections, keep-alive)
    "wrk-c100": ("wrk", 100, True),
    "wrk-c1000": ("wrk", 1000, True),
    "ab-c100": ("ab", 100, False),
}
REFERENCES = ("uvloop", "asyncio")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
AB_REQUESTS = 20_000   # connections per ab run: below the ~28k ephemeral ports of one source address
SETTLE = 0.3   # seconds between runs, so TIME_WAIT sockets and exiting children do not overlap the next run


# --- the reference servers: a raw asyncio.Protocol, on uvloop or on plain asyncio ----------------------------
RESPONSE = http.head(200, "text/plain; charset=utf-8", len(http.HELLO), False) + http.HELLO
RESPONSE_CLOSE = http.head(200, "text/plain; charset=utf-8", len(http.HELLO), True) + http.HELLO


class HelloProtocol(asyncio.Protocol):
    """Answers every request head with the contract's ``GET /`` response; HTTP/1.0 (ab) closes after it."""

    def connection_made(self, transport):
        self.transport, self.buf = transport, b""

    def data_received(self, data):
        buf = self.buf + data if self.buf else data
        n = buf.count(b"\r\n\r\n")
        if not n:
            self.buf = buf
            return
        self.buf = buf[buf.rfind(b"\r\n\r\n") + 4:]
        if b" HTTP/1.0\r\n" in buf:
            self.transport.write(RESPONSE_CLOSE)
            self.transport.close()
        else:
            self.transport.write(RESPONSE * n if n > 1 else RESPONSE)


def run_reference(kind: str) -> None:
    if kind == "uvloop":
        import uvloop
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(HelloProtocol, "127.0.0.1", 0, backlog=4096))
    print("LISTENING 127.0.0.1", server.sockets[0].getsockname()[1], flush=True)
    loop.run_forever()


class Reference:
    """A reference server in a child process pinned like the others, with the same few methods we use."""

    def __init__(self, kind: str):
        self.name = kind
        self.proc = subprocess.Popen(["taskset", "-c", str(SERVER_CPU), sys.executable, __file__, "--reference",
                                      kind], stdout=subprocess.PIPE, text=True)
        words = self.proc.stdout.readline().split()
        if len(words) != 3:
            self.stop()
            raise RuntimeError(f"the {kind} reference did not start (is it installed? pip install uvloop)")
        self.host, self.port = words[1], int(words[2])

    def cpu_s(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        self.proc.stdout.close()


class UkServer:
    """A uringkit server (``uk.serve``) behind the same interface as ``Reference``."""

    def __init__(self, model: str, impl: str):
        self.name = f"{model}-{impl}"
        self.server = serve(model, impl, cpus=(SERVER_CPU,))
        self.host, self.port = self.server.host, self.server.port

    def cpu_s(self) -> float:
        return self.server.statistics().cpu_s

    def stop(self) -> None:
        self.server.stop()


# --- the load generators -------------------------------------------------------------------------------------
def run_load(tool: str, connections: int, duration: float, host: str, port: int) -> tuple[int, float, int]:
    """(completed requests, seconds, errors) of one load run pinned to LOAD_CPU."""
    url = f"http://{host}:{port}/"
    pin = ["taskset", "-c", str(LOAD_CPU)]
    if tool == "wrk":
        cmd = pin + ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "2s", url]
    else:
        # -t then -n: stop at the time limit or after AB_REQUESTS, whichever comes first (ab's -t alone would
        # imply -n 50000). Fewer connections than ephemeral ports: a port reused while the server still holds
        # that 4-tuple in TIME_WAIT gets its SYN refused and retried a second later, which measures TCP, not us.
        cmd = pin + ["ab", "-q", "-r", "-s", "5", "-c", str(connections), "-t", str(duration), "-n",
                     str(AB_REQUESTS), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    if tool == "wrk":
        m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
        if not m:
            return 0, duration, 1
        secs = float(m[2]) * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60}[m[3]]
        errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
        errors += int(m2[1]) if (m2 := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
        return int(m[1]), secs, errors
    done = re.search(r"Complete requests:\s+(\d+)", out)
    took = re.search(r"Time taken for tests:\s+([\d.]+)", out)
    failed = re.search(r"Failed requests:\s+(\d+)", out)
    if not (done and took):
        return 0, duration, 1
    return int(done[1]), float(took[1]), int(failed[1]) if failed else 0


def measure(server, scenario: str, duration: float) -> dict:
    tool, connections, _ = SCENARIOS[scenario]
    cpu0 = server.cpu_s()
    requests, secs, errors = run_load(tool, connections, duration, server.host, server.port)
    cpu = server.cpu_s() - cpu0
    return {"rps": requests / secs if secs else 0.0, "cpu_us": 1e6 * cpu / requests if requests else float("nan"),
            "busy": cpu / secs if secs else 0.0, "errors": errors}


def implemented(model: str, impl: str) -> bool:
    if impl == "c":
        return hasattr(lib, f"uk_serve_{model}")
    return (Path(__file__).resolve().parent.parent / "uringkit" / "servers" / f"{model}.py").exists()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1-second runs, one run each (about a minute)")
    parser.add_argument("--duration", type=int, default=3, help="seconds per load run (default 3)")
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs per measurement (median)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--impls", default="c,py")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--reference", choices=REFERENCES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference:
        run_reference(args.reference)
        return 0
    if args.quick:
        args.duration, args.runs = 1, 1
    missing = [tool for tool in ("wrk", "ab", "taskset") if not shutil.which(tool)]
    if missing:
        print(f"missing {', '.join(missing)}: run `make setup` (apt-get install wrk apache2-utils)")
        return 2
    if len(os.sched_getaffinity(0)) < 2:
        print("note: fewer than 2 CPUs: server and load share a core")
    scenarios = args.scenarios.split(",")
    names = list(REFERENCES) + [(m, i) for i in args.impls.split(",") for m in args.models.split(",")
                                if implemented(m, i)]
    budget = len(names) * args.runs * (len(scenarios) * (args.duration + SETTLE + 0.2) + 1)
    print(f"{len(names)} servers x {len(scenarios)} scenarios x {args.runs} runs of {args.duration:g} s; "
          f"server on CPU {SERVER_CPU}, load on CPU {LOAD_CPU}; about {budget / 60:.1f} min")
    results: dict = {}
    for run in range(args.runs):
        order = names[run % len(names):] + names[:run % len(names)]  # rotate, so no server always goes first
        for name in order:
            server = Reference(name) if isinstance(name, str) else UkServer(*name)
            try:
                for scenario in scenarios:
                    results.setdefault((server.name, scenario), []).append(measure(server, scenario, args.duration))
                    time.sleep(SETTLE)
            finally:
                server.stop()
    report(results, [n if isinstance(n, str) else f"{n[0]}-{n[1]}" for n in names], scenarios)
    return 0


def report(results: dict, names: list[str], scenarios: list[str]) -> None:
    """One table per scenario. ``busy`` is the server's CPU time over the run's wall time: below ~90 % the
    server was not the bottleneck (the load generator, or another process on its CPU, was), and its req/s says
    less than its CPU time per request, which is why both ratios to uvloop are shown."""
    keys = ("rps", "cpu_us", "busy", "errors")
    med = {key: {k: statistics.median(r[k] for r in runs) for k in keys} for key, runs in results.items()}
    for scenario in scenarios:
        tool, connections, keepalive = SCENARIOS[scenario]
        ref = med["uvloop", scenario]
        mode = "keep-alive" if keepalive else "a connection per request"
        runs = len(results["uvloop", scenario])
        print(f"\n{scenario}: {tool}, {connections} connections, {mode}; medians of {runs} runs")
        print(f"{'server':<16}{'req/s':>10}{'busy':>7}{'µs CPU/req':>12}{'req/s ÷ uvloop':>16}"
              f"{'uvloop CPU ÷ CPU':>18}")
        for name in names:
            m = med[name, scenario]
            speed = m["rps"] / ref["rps"] if ref["rps"] else float("nan")
            efficiency = ref["cpu_us"] / m["cpu_us"] if m["cpu_us"] else float("nan")
            flag = "!" if m["errors"] else " "
            print(f"{name:<16}{m['rps']:>9,.0f}{flag}{m['busy']:>6.0%}{m['cpu_us']:>12.1f}{speed:>16.2f}"
                  f"{efficiency:>18.2f}")
            m["vs_uvloop"], m["cpu_vs_uvloop"] = speed, efficiency
    print("\n! = the load generator counted errors (timeouts, resets, non-2xx) in the median run")
    for (name, scenario), m in sorted(med.items()):
        print(f"RESULT {name}.{scenario}.rps {m['rps']:.0f}")
        print(f"RESULT {name}.{scenario}.cpu_us_per_request {m['cpu_us']:.2f}")
        print(f"RESULT {name}.{scenario}.vs_uvloop {m['vs_uvloop']:.3f}")
        print(f"RESULT {name}.{scenario}.cpu_efficiency_vs_uvloop {m['cpu_vs_uvloop']:.3f}")
        print(f"RESULT {name}.{scenario}.errors {m['errors']:.0f}")


if __name__ == "__main__":
    sys.exit(main())
