"""Run one server model: ``python -m uringkit.servers MODEL --impl c|py [--port 0] ...``.

It binds (loopback by default), prints ``LISTENING <host> <port>`` once the socket accepts connections, then
serves until it is killed (SIGTERM from a Server handle, Ctrl-C from a terminal).
"""

from __future__ import annotations

import argparse
import importlib
import os
import resource
import signal
import socket
import sys

from .._native import ffi, lib
from ._config import IMPLS, MODELS, ServerConfig, SharedStats


def bind_listener(config: ServerConfig) -> socket.socket:
    """The listening socket every model shares: SO_REUSEADDR (restart without waiting out TIME_WAIT)."""
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((config.host, config.port))
    sock.listen(config.backlog)
    return sock


def raise_nofile_limit() -> None:
    """Thousands of clients need thousands of fds: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_c(model: str, listener: socket.socket, config: ServerConfig, stats: SharedStats) -> int:
    serve_c = getattr(lib, f"uk_serve_{model}", None)
    if serve_c is None:
        print(f"the C {model} server is not built into uringkit._native", file=sys.stderr)
        return 2
    docroot = ffi.new("char[]", config.docroot.encode())
    cfg = ffi.new("struct uk_server_config *", {
        "workers": config.workers, "idle_timeout_ms": int(config.idle_timeout * 1000), "docroot": docroot,
        "stats": stats.ptr})
    # The C loop never returns to Python, so Python's SIGINT handler would only set a flag nobody reads:
    # restore the default so Ctrl-C in a terminal stops the server.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    res = serve_c(listener.fileno(), cfg)
    print(f"the C {model} server stopped: {os.strerror(-res) if res < 0 else res}", file=sys.stderr)
    return 1


def run_py(model: str, listener: socket.socket, config: ServerConfig, stats: SharedStats) -> int:
    module = importlib.import_module(f"uringkit.servers.{model}")
    try:
        module.serve(listener, config, stats)
    except KeyboardInterrupt:
        return 0
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m uringkit.servers", description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=MODELS)
    parser.add_argument("--impl", choices=IMPLS, default="c")
    defaults = ServerConfig()
    parser.add_argument("--host", default=defaults.host)
    parser.add_argument("--port", type=int, default=defaults.port)
    parser.add_argument("--backlog", type=int, default=defaults.backlog)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--idle-timeout", type=float, default=defaults.idle_timeout)
    parser.add_argument("--docroot", default=defaults.docroot)
    parser.add_argument("--stats", help="file holding the shared counters (a Server handle passes one)")
    parser.add_argument("--cpus", help="comma-separated CPUs to pin the server to, e.g. 0")
    args = parser.parse_args(argv)
    try:
        config = ServerConfig(host=args.host, port=args.port, backlog=args.backlog, workers=args.workers,
                              idle_timeout=args.idle_timeout, docroot=args.docroot)
    except ValueError as exc:
        parser.error(str(exc))
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    stats = SharedStats(args.stats) if args.stats else SharedStats.anonymous()
    raise_nofile_limit()
    try:
        listener = bind_listener(config)
    except OSError as exc:
        print(f"cannot listen on {config.host}:{config.port}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"LISTENING {config.host} {listener.getsockname()[1]}", flush=True)
    # Nobody reads stdout after the announcement; a server that printed later would block on a full pipe.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    run = run_c if args.impl == "c" else run_py
    return run(args.model, listener, config, stats)


if __name__ == "__main__":
    sys.exit(main())
