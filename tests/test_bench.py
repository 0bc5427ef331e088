"""Sweeps as data (uringkit/bench.py), driven by a real but tiny stand-in: a threaded Python HTTP server in this
process and a client loop that measures it. No canned numbers: every record here was measured."""

from __future__ import annotations

import dataclasses
import http.client
import http.server
import os
import sys
import threading
import time
from urllib.parse import urlsplit

import pytest

from uringkit import bench
from uringkit import _records
from uringkit._records import MEDIAN
from uringkit.bench import GRID_2019, Record, Results, sweep

pytestmark = pytest.mark.timeout(60)
POINT_S = 0.15   # seconds per measured point: enough for hundreds of requests on loopback


# --- the stand-in server ----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class StandInStatistics:
    requests: int
    open_connections: int
    cpu_user_s: float
    cpu_system_s: float
    voluntary_switches: int
    involuntary_switches: int
    pss_bytes: int


def _self_status() -> dict[str, int]:
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return {"vol": int(fields["voluntary_ctxt_switches"]), "invol": int(fields["nonvoluntary_ctxt_switches"]),
            "rss": int(fields["VmRSS"].split()[0]) * 1024}  # the stand-in reports RSS as its pss_bytes


class StandInServer:
    """A ThreadingHTTPServer on loopback with the surface sweep() uses (url, running, statistics, stop, log).
    With ``die_after=N`` it shuts itself down after its Nth request, like a server that crashes under load."""

    def __init__(self, model, impl, die_after=None, **_):
        self.model, self.impl, self.requests, self.open = model, impl, 0, 0
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 2

            def setup(self):
                super().setup()
                with outer.lock:
                    outer.open += 1

            def finish(self):
                super().finish()
                with outer.lock:
                    outer.open -= 1

            def do_GET(self):
                body = b"Hello from a stand-in\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with outer.lock:
                    outer.requests += 1
                    dying = die_after is not None and outer.requests == die_after
                if dying:
                    threading.Thread(target=outer.stop).start()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = False   # server_close() joins the handler threads: nothing left behind
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02})
        self.thread.start()
        self.running = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def statistics(self) -> StandInStatistics:
        times, status = os.times(), _self_status()
        return StandInStatistics(self.requests, self.open, times.user, times.system, status["vol"],
                                 status["invol"], status["rss"])

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.httpd.shutdown()
            self.httpd.server_close()
        if threading.current_thread() is not self.thread:
            self.thread.join()

    def log(self) -> str:
        return "" if self.running else f"stand-in {self.model} stopped after {self.requests} requests\n"


class Factory:
    """server_factory for sweep(): records every start; per-model options apply to its first start only."""

    def __init__(self, **options):
        self.options, self.started = options, []

    def __call__(self, model, impl, **kw):
        server = StandInServer(model, impl, **self.options.pop(model, {}), **kw)  # options: first start only
        self.started.append(server)
        return server


# --- the stand-in load generator ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class StandInResult:
    completed: int
    rps: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    p999_ms: float | None
    max_ms: float | None
    mean_ms: float | None
    non_2xx: int
    connect_errors: int
    timeouts: int
    read_errors: int
    duration_s: float
    loadgen_cpu_s: float
    url: str
    concurrency: int
    keepalive: bool


def standin_load(url, concurrency, duration=POINT_S, keepalive=True, timeout=2.0, **_):
    """A closed loop of ``concurrency`` client threads for ``duration`` seconds, measured for real."""
    parts = urlsplit(url)
    latencies, counts, lock = [], {"non_2xx": 0, "connect": 0, "timeout": 0, "read": 0}, threading.Lock()
    deadline = time.monotonic() + duration

    def client():
        conn = None
        while time.monotonic() < deadline:
            start = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
                    conn.connect()
                conn.request("GET", parts.path or "/", headers={} if keepalive else {"Connection": "close"})
                response = conn.getresponse()
                response.read()
                ok = 200 <= response.status < 300
                if not keepalive:
                    conn.close()
                    conn = None
            except ConnectionRefusedError:
                kind, ok = "connect", None
            except TimeoutError:
                kind, ok = "timeout", None
            except (OSError, http.client.HTTPException):
                kind, ok = "read", None
            with lock:
                if ok is None:
                    counts[kind] += 1
                elif ok:
                    latencies.append((time.perf_counter() - start) * 1000)
                else:
                    counts["non_2xx"] += 1
            if ok is None:
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.01)
        if conn is not None:
            conn.close()

    cpu0, t0 = time.process_time(), time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    lat = sorted(latencies)

    def pct(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None

    return StandInResult(completed=len(lat), rps=len(lat) / elapsed, p50_ms=pct(0.5), p90_ms=pct(0.9),
                         p99_ms=pct(0.99), p999_ms=pct(0.999), max_ms=lat[-1] if lat else None,
                         mean_ms=sum(lat) / len(lat) if lat else None, non_2xx=counts["non_2xx"],
                         connect_errors=counts["connect"], timeouts=counts["timeout"], read_errors=counts["read"],
                         duration_s=elapsed, loadgen_cpu_s=time.process_time() - cpu0, url=url,
                         concurrency=concurrency, keepalive=keepalive)


class Calls:
    """Wraps standin_load, remembering each (model-url, concurrency) it measured."""

    def __init__(self, load=standin_load):
        self.load, self.calls = load, []

    def __call__(self, url, concurrency, **kw):
        self.calls.append((url, concurrency))
        return self.load(url, concurrency, **kw)


def run(models=("alpha", "beta"), grid=(1, 2), factory=None, load=None, **kw):
    kw.setdefault("duration", POINT_S)
    kw.setdefault("progress", False)
    factory = factory or Factory()
    load = load or Calls()
    return sweep(models, "py", grid, server_factory=factory, load=load, **kw), factory, load


# --- GRID_2019 and Record ---------------------------------------------------------------------------------------
def test_grid_is_the_2019_charts_concurrencies():
    assert GRID_2019[:3] == (20, 50, 100) and GRID_2019[-1] == 15000
    assert set(range(100, 1001, 100)) <= set(GRID_2019) and set(range(10000, 15001, 1000)) <= set(GRID_2019)
    assert {1500, 2000, 2500, 3000, 5000, 8000} <= set(GRID_2019)
    assert list(GRID_2019) == sorted(set(GRID_2019)) and len(GRID_2019) == 24


def test_records_round_trip_through_csv(tmp_path):
    measured, _, _ = run(models=("alpha",), grid=(1,))
    odd = Record(model='odd, "quoted"', impl="c", concurrency=3, keepalive=True, repeat=2, rps=1 / 3,
                 p99_ms=1e-9, completed=0, error="line one, with a comma", cpu_count=2, date="2026-01-01T00:00:00")
    results = measured + [odd]
    results.to_csv(tmp_path / "r.csv")
    back = Results.from_csv(tmp_path / "r.csv")
    assert back == results
    assert back[1].rps == 1 / 3 and back[1].keepalive is True and back[1].p50_ms is None
    first = back[0]
    assert type(first.concurrency) is int and type(first.completed) is int and type(first.rps) is float
    assert first.keepalive is False and first.impl == "py" and first.kernel and first.date


def test_to_pandas_says_how_to_get_pandas(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)   # import pandas now raises ImportError
    with pytest.raises(ImportError, match="pip install pandas"):
        Results().to_pandas()


def _rec(model="m", concurrency=10, repeat=0, rps=None, error="", **kw):
    return Record(model=model, impl="c", concurrency=concurrency, keepalive=False, repeat=repeat, rps=rps,
                  error=error, **kw)


def test_median_over_repeats_keeps_failures_visible():
    results = Results([_rec(repeat=0, rps=100.0, completed=10), _rec(repeat=1, rps=300.0, completed=31),
                       _rec(repeat=2, rps=200.0, completed=20), _rec(repeat=3, error="server died"),
                       _rec(concurrency=20, repeat=0, error="no request completed"),
                       _rec(concurrency=20, repeat=1, error="server died")])
    by_c = {r.concurrency: r for r in results.median()}
    assert len(by_c) == 2
    assert by_c[10].rps == 200.0 and by_c[10].completed == 20 and type(by_c[10].completed) is int
    assert by_c[10].repeat == MEDIAN and by_c[10].repeats == 4
    assert by_c[10].error == "1 of 4 repeats failed: server died"
    assert by_c[20].rps is None and by_c[20].error == "no request completed"


def test_where_takes_values_collections_and_predicates():
    results = Results([_rec(model=m, concurrency=c) for m in ("a", "b", "c") for c in (10, 100, 1000)])
    assert len(results.where(model="a")) == 3
    assert len(results.where(model=("a", "b"), concurrency=lambda c: c >= 100)) == 4
    assert results.where(model="b").models == ("b",)
    with pytest.raises(TypeError, match="no field 'modle'"):
        results.where(modle="a")


# --- sweep -----------------------------------------------------------------------------------------------------
def test_sweep_measures_each_point_once_with_one_server_per_model():
    results, factory, load = run(models=("alpha", "beta"), grid=(1, 2), repeats=2)
    assert len(results) == 8 and all(r.ok for r in results)
    assert [s.model for s in factory.started] == ["alpha", "beta"]          # one start per model
    assert not any(s.running for s in factory.started)                      # and all stopped at the end
    servers = {s.url: s.model for s in factory.started}
    order = [(servers[url.rstrip("/")], c) for url, c in load.calls]
    # at each point the models take turns, rotating who goes first; repeats are whole passes
    assert order == [("alpha", 1), ("beta", 1), ("beta", 2), ("alpha", 2)] * 2
    for r in results:
        assert r.completed > 0 and r.rps > 0 and r.p50_ms <= r.p99_ms <= r.max_ms
        assert r.server_cpu_s >= 0 and r.cpu_us_per_request == pytest.approx(r.server_cpu_s / r.completed * 1e6)
        assert r.voluntary_switches >= 0 and r.pss_bytes > 0
        assert r.target_duration_s == POINT_S and r.duration_s >= POINT_S
        assert r.cpu_count == os.cpu_count() and r.uringkit_version and r.date.startswith("20")
    assert sum(s.requests for s in factory.started) >= sum(r.completed for r in results)


def test_resumable_sweep_appends_and_skips_points_already_measured(tmp_path):
    path = tmp_path / "sweep.csv"
    first, _, _ = run(grid=(1,), path=path)
    assert Results.from_csv(path) == first
    second, factory, load = run(grid=(1, 2), path=path)
    assert [c for _, c in load.calls] == [2, 2]                  # only the new concurrency was measured
    assert second[:2] == first and len(second) == 4
    assert Results.from_csv(path) == second
    third, factory, load = run(grid=(1, 2), path=path)
    assert load.calls == [] and factory.started == [] and third == second


def test_interrupted_sweep_keeps_what_it_measured_and_resumes(tmp_path):
    path = tmp_path / "sweep.csv"
    calls = Calls()

    def interrupted(url, concurrency, **kw):
        if len(calls.calls) == 3:
            raise KeyboardInterrupt
        return calls(url, concurrency, **kw)

    factory = Factory()
    with pytest.raises(KeyboardInterrupt):
        run(grid=(1, 2), path=path, factory=factory, load=interrupted)
    assert not any(s.running for s in factory.started)
    assert len(Results.from_csv(path)) == 3
    results, _, load = run(grid=(1, 2), path=path)
    assert len(load.calls) == 1 and len(results) == 4 and all(r.ok for r in results)


def test_a_server_that_dies_is_recorded_and_restarted():
    factory = Factory(alpha={"die_after": 5})
    results, _, _ = run(models=("alpha",), grid=(1, 2), factory=factory)
    died, after = results
    first = factory.started[0]
    assert died.error == f"server died during the point: stand-in alpha stopped after {first.requests} requests"
    assert 5 <= died.completed <= first.requests and died.server_cpu_s is None
    assert after.ok and after.completed > 0
    assert len(factory.started) == 2


def test_nothing_completed_and_exceptions_are_recorded_not_raised():
    def refusing(url, concurrency, **kw):            # a real measurement of a port nobody listens on
        return standin_load("http://127.0.0.1:9/", concurrency, **kw)

    results, factory, _ = run(models=("alpha",), grid=(1,), load=refusing)
    assert results[0].error.startswith("no request completed (0 timeouts, ")
    assert results[0].connect_errors > 0 and results[0].rps == 0

    def exploding(url, concurrency, **kw):
        raise OSError(24, "Too many open files")

    results, factory, _ = run(models=("alpha",), grid=(1, 2), load=exploding)
    assert [r.error for r in results] == ["OSError: [Errno 24] Too many open files"] * 2
    assert results[0].rps is None and len(factory.started) == 2   # restarted after each failure

    starts = []

    def no_server(model, impl, **kw):
        starts.append(model)
        raise RuntimeError("alpha/py server exited with status 1:\nbind failed")

    results, _, load = run(models=("alpha",), grid=(1, 2, 3), factory=no_server)
    why = "RuntimeError: alpha/py server exited with status 1: bind failed"
    assert [r.error for r in results] == [f"server did not start: {why}"] * 2 + [
        f"server did not start (2 attempts, not retried): {why}"]
    assert load.calls == [] and len(starts) == bench.START_ATTEMPTS


def test_server_keywords_reach_the_server_and_the_record():
    seen = {}

    def factory(model, impl, **kw):
        seen.update(kw)
        return StandInServer(model, impl)

    results, _, _ = run(models=("alpha",), grid=(1,), factory=factory, backlog=10, workers=7,
                        server_cpus=(0,), load_cpus=(0,))
    assert seen == {"backlog": 10, "workers": 7, "cpus": (0,)}
    r = results[0]
    assert (r.backlog, r.workers, r.server_cpus, r.load_cpus) == (10, 7, "0", "0")


def test_quick_mode_shrinks_the_default_grid_and_duration(monkeypatch):
    monkeypatch.setenv("URINGKIT_QUICK", "1")
    asked = []

    def capped(url, concurrency, duration, **kw):   # measure for real, with at most 2 clients
        asked.append((concurrency, duration))
        return standin_load(url, min(concurrency, 2), duration=min(duration, POINT_S), **kw)

    sweep("alpha", "py", server_factory=Factory(), load=capped, progress=False)
    assert asked == [(c, bench.QUICK_DURATION_S) for c in bench.QUICK_GRID]
    assert max(bench.QUICK_GRID) >= 1000 and len(bench.QUICK_GRID) < len(GRID_2019)


def test_progress_line_in_a_terminal_has_an_eta(capsys):
    run(models=("alpha",), grid=(1, 2), progress=True)
    err = capsys.readouterr().err
    assert err.count("\r") >= 3 and "ETA" in err and "2/2 points in" in err


def test_a_csv_with_other_columns_is_refused(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("model,impl,flavour\n")
    with pytest.raises(ValueError, match="other columns"):
        run(path=path)


# --- recorded data ---------------------------------------------------------------------------------------------
def test_digitized_2019_is_records_with_impl_2019():
    d = bench.digitized_2019()
    assert set(d.models) == {"iterative", "forking", "preforked", "threaded", "prethreaded", "poll", "epoll"}
    assert d.impls == ("2019",)
    assert d.where(model="prethreaded", concurrency=12000)[0].rps == 968
    assert d.where(model="epoll", concurrency=15000)[0].rps == 1277
    assert max(r.rps for r in d.where(model="forking")) == 484


def test_reference_explains_a_missing_file(monkeypatch, tmp_path):
    monkeypatch.setattr(_records, "REFERENCE_CSV", tmp_path / "reference_sweep.csv")
    with pytest.raises(FileNotFoundError, match="no reference sweep recorded yet"):
        bench.reference()
    recorded = Results([_rec(rps=1.5)])
    recorded.to_csv(tmp_path / "reference_sweep.csv")
    assert bench.reference() == recorded


def test_sweep_of_a_real_server_with_the_real_load_generator():
    load = pytest.importorskip("uringkit.load", reason="the load generator is not on this branch yet")
    from uringkit._native import lib

    if not hasattr(lib, "uk_serve_epoll"):
        pytest.skip("the C epoll server is not on this branch yet")
    results = sweep("epoll", "c", (2, 20), duration=0.3, progress=False, load=load.load, workers=4)
    assert all(r.ok and r.completed > 0 and r.server_cpu_s > 0 for r in results), results


@pytest.mark.parametrize("modname", ["uringkit.bench", "uringkit.plots", "uringkit.widgets"])
def test_public_helpers_are_documented_and_name_their_chapter(modname):
    import importlib
    import inspect

    mod = importlib.import_module(modname)
    assert "chapter 04" in mod.__doc__
    for name in mod.__all__:
        obj = getattr(mod, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert "chapter 04" in (inspect.getdoc(obj) or ""), f"{modname}.{name}"
        if inspect.isclass(obj):
            for member, value in vars(obj).items():
                func = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
                if not member.startswith("_") and inspect.isfunction(func):
                    assert inspect.getdoc(func), f"{modname}.{name}.{member} has no docstring"


def test_to_pandas_gives_one_column_per_field():
    pd = pytest.importorskip("pandas")
    frame = Results([_rec(rps=1.0), _rec(concurrency=20, error="x")]).to_pandas()
    assert list(frame.columns) == list(bench.FIELDS) and len(frame) == 2
    assert isinstance(frame, pd.DataFrame)
