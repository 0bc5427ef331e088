"""Experiments as data: sweeps of server models over concurrency (introduced in chapter 04, "The benchmark").

``sweep(["epoll", "prethreaded"])`` starts one server per model, drives it with the load generator at every
concurrency of the grid, and returns ``Results``: tidy ``Record`` rows (one per model x concurrency x repeat) with
what was measured, what it cost the server, and where it was measured. Plots read only records; ``to_csv`` and
``Results.from_csv`` keep them, and ``reference()`` / ``digitized_2019()`` load the recorded ones from ``data/``
(``Record``, ``Results`` and the recorded data live in ``_records.py``; this file runs sweeps).

Record a sweep from a shell (resumable: re-running skips the points already in the file)::

    python -m uringkit.bench epoll prethreaded --repeats 3 --server-cpus 0 --load-cpus 1 --path sweep.csv
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ._notebook import quick
from ._records import FIELDS, PARAMETERS, Record, Results, csv_row, digitized_2019, reference

__all__ = ["GRID_2019", "QUICK_GRID", "Record", "Results", "digitized_2019", "reference", "sweep"]

# The concurrencies the 2019 charts plot, 20 ... 15,000 clients.
GRID_2019 = (20, 50, *range(100, 1001, 100), 1500, 2000, 2500, 3000, 5000, 8000, *range(10000, 15001, 1000))
QUICK_GRID = (20, 100, 1000, 2000)  # one point on each side of each chart's edge, so every chart has a line
DURATION_S = 10.0        # per point: long enough that 1 s and 3 s SYN retries show up in the rate, not only the tail
QUICK_DURATION_S = 0.5
SETTLE_TIMEOUT_S = 5.0   # after a point, wait at most this long for the server to close its leftover connections
SETTLE_POLL_S = 0.05
START_ATTEMPTS = 2       # a model whose server fails to start this many times in a row is not started again


# --- sweeping --------------------------------------------------------------------------------------------------
def _cpus_text(cpus) -> str:
    return ",".join(str(c) for c in cpus) if cpus else ""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}: {text}"[:300]


def _provenance() -> dict:
    import uringkit
    from . import env

    caps = env.probe()
    return dict(kernel=caps.kernel, cpu_model=caps.cpu_model, cpu_count=caps.cpu_count,
                uringkit_version=uringkit.__version__)


class _Servers:
    """The running servers of a sweep, one per model, started at the model's first point and restarted after a
    failed point. Leaving the ``with`` block stops them all (KeyboardInterrupt included)."""

    def __init__(self, factory, impl, server_cpus, server_kw):
        self.factory, self.impl, self.server_kw = factory, impl, dict(server_kw)
        if server_cpus:
            self.server_kw["cpus"] = tuple(server_cpus)
        self.running: dict[str, object] = {}
        self.start_failures: dict[str, tuple[int, str]] = {}

    def get(self, model: str):
        """The model's server, started if need be; raises RuntimeError saying why it cannot be had."""
        failures, why = self.start_failures.get(model, (0, ""))
        if failures >= START_ATTEMPTS:
            # a missing feature (io_uring refused, say) fails every start alike: do not pay for it at every point
            raise RuntimeError(f"server did not start ({failures} attempts, not retried): {why}")
        if model not in self.running:
            try:
                self.running[model] = self.factory(model, self.impl, **self.server_kw)
            except Exception as exc:
                self.start_failures[model] = (failures + 1, _one_line(exc))
                raise RuntimeError(f"server did not start: {_one_line(exc)}") from exc
            self.start_failures.pop(model, None)
        return self.running[model]

    def discard(self, model: str) -> None:
        server = self.running.pop(model, None)
        if server is not None:
            server.stop()

    def __enter__(self) -> "_Servers":
        return self

    def __exit__(self, *exc) -> None:
        errors = []
        for model in list(self.running):
            try:
                self.discard(model)
            except Exception as error:  # stop the others all the same, then report the first failure
                errors.append(error)
        if errors:
            raise errors[0]


def _settle(server) -> None:
    """Wait (bounded) until the server has closed what the last point left open, so its draining does not
    land in the next point's measurement of another server."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline and getattr(server, "running", True):
        try:
            if getattr(server.statistics(), "open_connections", 0) == 0:
                return
        except (OSError, RuntimeError):  # it died meanwhile: the next point finds out and restarts it
            return
        time.sleep(SETTLE_POLL_S)


def _measure(servers: _Servers, load, model: str, concurrency: int, base: dict, load_kw: dict) -> Record:
    """One point. Never raises an Exception: a failure becomes the record's ``error`` and the server restarts."""
    try:
        server = servers.get(model)
    except RuntimeError as exc:
        return Record(**base, error=str(exc))
    try:
        before = server.statistics()
        result = load(server.url + base["route"], concurrency, **load_kw)
        alive = getattr(server, "running", True)
        after = server.statistics() if alive else None
    except Exception as exc:
        servers.discard(model)
        return Record(**base, error=_one_line(exc))
    measured = {name: getattr(result, name) for name in ("rps", "p50_ms", "p90_ms", "p99_ms", "p999_ms",
                "max_ms", "mean_ms", "completed", "non_2xx", "connect_errors", "timeouts", "read_errors",
                "duration_s", "loadgen_cpu_s")}
    # Optional in a stand-in load function; the book's load generator always reports them.
    measured.update({name: getattr(result, name, None) for name in ("unserved", "slow_connects")})
    if after is not None:
        cpu = (after.cpu_user_s + after.cpu_system_s) - (before.cpu_user_s + before.cpu_system_s)
        measured.update(server_cpu_s=cpu, pss_bytes=after.pss_bytes,
                        cpu_us_per_request=cpu / result.completed * 1e6 if result.completed else None,
                        voluntary_switches=after.voluntary_switches - before.voluntary_switches,
                        involuntary_switches=after.involuntary_switches - before.involuntary_switches)
    error = ""
    if after is None:
        log = server.log().strip().splitlines() if hasattr(server, "log") else []
        error = "server died during the point" + (f": {log[-1]}" if log else "")
    elif not result.completed:
        error = (f"no request completed ({result.timeouts} timeouts, {result.connect_errors} connect errors, "
                 f"{result.read_errors} read errors)")
    if error:
        servers.discard(model)
    else:
        _settle(server)
    return Record(**base, **measured, error=error)


class _Progress:
    """Points done, the last result and an ETA: a widget in a notebook, a line updated in place in a terminal."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.started = total, 0, time.monotonic()
        self.mode = "off" if not enabled or not total else "notebook" if _in_notebook() else "terminal"
        if self.mode == "notebook":
            self._notebook_view()

    def _notebook_view(self) -> None:
        from IPython.display import display

        try:
            import ipywidgets as w
        except ImportError:  # a text line updated in place
            handle = display(f"sweep: 0/{self.total} points", display_id=True)
            self._show = handle.update
            return
        bar, label = w.IntProgress(value=0, max=self.total, description="sweep"), w.Label()
        display(w.HBox([bar, label]))

        def show(text: str) -> None:
            bar.value, label.value = self.done, text
        self._show = show

    def show(self, text: str) -> None:
        if self.mode == "terminal":
            print(f"\r{text:<110}", end="", file=sys.stderr, flush=True)
        elif self.mode == "notebook":
            self._show(text)

    def step(self, record: Record) -> None:
        self.done += 1
        per_point = (time.monotonic() - self.started) / self.done
        what = record.error[:60] if record.error else f"{record.rps or 0:,.0f} req/s"
        self.show(f"{self.done}/{self.total}  {record.model} c={record.concurrency} repeat {record.repeat}: "
                  f"{what}  ETA {_duration((self.total - self.done) * per_point)}")

    def close(self) -> None:
        if self.done:
            self.show(f"{self.done}/{self.total} points in {_duration(time.monotonic() - self.started)}")
        if self.mode == "terminal" and self.done:
            print(file=sys.stderr)


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _plan(models: Sequence[str], grid: Sequence[int], repeats: int) -> list[tuple[int, int, str]]:
    """(repeat, concurrency, model) in measuring order: repeats are whole passes over the grid, and at each
    point every model is measured in turn (rotating who goes first), so machine noise that drifts over minutes
    lands on all models alike instead of on whichever was measured last."""
    plan, turn = [], 0
    for repeat in range(repeats):
        for c in grid:
            order = list(models[turn % len(models):]) + list(models[:turn % len(models)])
            plan += [(repeat, c, m) for m in order]
            turn += 1
    return plan


def _server_parameters(server_factory, server_kw) -> dict:
    defaults = {}
    if server_factory is None:
        from .servers import ServerConfig
        defaults = {f.name: f.default for f in dataclasses.fields(ServerConfig)}
    return {k: server_kw.get(k, defaults.get(k)) for k in ("backlog", "workers")}


def sweep(models: str | Sequence[str], impl: str = "c", concurrency: Sequence[int] | None = None,
          duration: float | None = None, keepalive: bool = False, repeats: int = 1,
          path: str | os.PathLike | None = None, progress: bool = True, server_factory=None, load=None, *,
          route: str = "/", timeout: float | None = None, threads: int | None = None,
          server_cpus: Sequence[int] | None = None, load_cpus: Sequence[int] | None = None,
          on_record: Callable[[Results], None] | None = None, **server_kw) -> Results:
    """Measure ``models`` (served by ``impl``) at every ``concurrency``: the book's benchmark (chapter 04).

    Defaults: the 2019 grid (``GRID_2019``; ``QUICK_GRID`` in quick mode), 10 s a point (0.5 s quick), one
    connection per request as in 2019 (``keepalive=False``). Each model's server starts once and serves every
    point; at each point the models take turns. CPU time and context switches are deltas of
    ``Server.statistics()`` around the point. A point that fails (the server died, nothing completed, an
    exception) is recorded with its ``error`` and its server is restarted for the next point.

    ``path``: append each record to this CSV as it is measured; re-running skips points already there.
    ``server_factory(model, impl, **server_kw)`` and ``load(url, concurrency, duration=, keepalive=, ...)``
    default to ``uringkit.servers.serve`` and ``uringkit.load.load``. ``on_record(results)`` is called after
    each new record (``uringkit.widgets.live_sweep`` draws with it). Other keywords go to the server
    (``backlog=10``, ``workers=100``, ...).
    """
    models = (models,) if isinstance(models, str) else tuple(models)
    grid = tuple(concurrency) if concurrency is not None else (QUICK_GRID if quick() else GRID_2019)
    duration = duration if duration is not None else (QUICK_DURATION_S if quick() else DURATION_S)
    if not models or not grid or repeats < 1:
        raise ValueError("a sweep needs at least one model, one concurrency and one repeat")
    if load is None:
        from .load import load
    params = dict(impl=impl, keepalive=keepalive, route=route, server_cpus=_cpus_text(server_cpus),
                  load_cpus=_cpus_text(load_cpus), target_duration_s=float(duration),
                  **_server_parameters(server_factory, server_kw))
    if server_factory is None:
        from .servers import serve as server_factory
    load_kw = dict(duration=duration, keepalive=keepalive)
    load_kw.update({k: v for k, v in dict(timeout=timeout, threads=threads,
                                          cpus=tuple(load_cpus) if load_cpus else None).items() if v is not None})

    store = _Store(path)
    key = ("repeat",) + PARAMETERS
    done = {tuple(getattr(r, k) for k in key): r for r in store.existing}
    results = Results()
    todo = []
    for repeat, c, model in _plan(models, grid, repeats):
        point = dict(model=model, concurrency=c, repeat=repeat, **params)
        found = done.get(tuple(point[k] for k in key))
        if found is not None:
            results.append(found)
        else:
            todo.append(point)

    provenance = _provenance() if todo else {}
    bar = _Progress(len(todo), progress)
    try:
        with _Servers(server_factory, impl, server_cpus, server_kw) as servers:
            for point in todo:
                date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
                record = _measure(servers, load, point["model"], point["concurrency"],
                                  dict(point, **provenance, date=date), load_kw)
                store.append(record)
                results.append(record)
                bar.step(record)
                if on_record is not None:
                    on_record(results)
    finally:
        bar.close()
    return results


class _Store:
    """The CSV a resumable sweep appends to: each record is on disk (flushed) before the next point starts."""

    def __init__(self, path):
        self.path = Path(path) if path is not None else None
        self.existing = Results()
        if self.path is not None and self.path.exists() and self.path.stat().st_size:
            with open(self.path, newline="") as f:
                header = next(csv.reader(f), [])
            if tuple(header) != FIELDS:
                raise ValueError(f"{self.path} was written with other columns than this uringkit's Record: "
                                 f"give sweep() a new path")
            self.existing = Results.from_csv(self.path)

    def append(self, record: Record) -> None:
        if self.path is None:
            return
        new = not self.path.exists() or not self.path.stat().st_size
        with open(self.path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(FIELDS)
            writer.writerow(csv_row(record))


def _main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m uringkit.bench", description=sweep.__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--impl", default="c")
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=None,
                        help="comma-separated; default the 2019 grid")
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--keepalive", action="store_true")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--backlog", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--server-cpus", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--load-cpus", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--path", required=True, help="CSV to append to (resumable)")
    a = parser.parse_args(argv)
    server_kw = {k: v for k, v in dict(backlog=a.backlog, workers=a.workers).items() if v is not None}
    results = sweep(a.models, a.impl, a.concurrency, a.duration, a.keepalive, a.repeats, a.path,
                    server_cpus=a.server_cpus, load_cpus=a.load_cpus, **server_kw)
    failed = [r for r in results if not r.ok]
    print(f"{len(results)} records in {a.path}; {len(failed)} failed points")


if __name__ == "__main__":
    _main()
