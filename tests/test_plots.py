"""Charts (uringkit/plots.py): each figure plots the series its records say, with the 2019 curves beside them."""

from __future__ import annotations

import pytest

from uringkit import plots
from uringkit.bench import Record, Results, digitized_2019


def rec(model, concurrency, rps=None, impl="c", repeat=0, error="", **kw):
    return Record(model=model, impl=impl, concurrency=concurrency, keepalive=False, repeat=repeat, rps=rps,
                  error=error, **kw)


@pytest.fixture(scope="module")
def results():
    """Two models at five concurrencies, three repeats each (the chart must draw the median)."""
    out = []
    for model, base in (("epoll", 9000.0), ("prethreaded", 8000.0)):
        for c in (20, 500, 1000, 5000, 15000):
            for repeat, wobble in enumerate((1.0, 1.1, 0.9)):
                rps = base * wobble - c / 10
                out.append(rec(model, c, rps, repeat=repeat, completed=int(rps), p50_ms=c / 100, p90_ms=c / 50,
                               p99_ms=c / 10, non_2xx=0, connect_errors=c // 1000, timeouts=c // 5000,
                               read_errors=0, duration_s=1.0, cpu_us_per_request=20.0 + c / 1000,
                               voluntary_switches=int(rps) * 2, involuntary_switches=int(rps)))
    return Results(out)


def test_small_range_plots_medians_up_to_1000_with_the_2019_overlay(results):
    fig = plots.concurrency_chart(results, range="small")
    assert set(fig.uk_series) == {"epoll (C)", "epoll (2019)", "prethreaded (C)", "prethreaded (2019)"}
    assert fig.uk_series["epoll (C)"] == ((20, 500, 1000), (8998.0, 8950.0, 8900.0))
    xs, ys = fig.uk_series["epoll (2019)"]
    assert xs[0] == 20 and max(xs) == 1000 and ys[xs.index(700)] == 2610
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear" and ax.get_xlim() == (0, 1000)
    assert "req/s" in ax.get_ylabel() and "clients" in ax.get_xlabel() and fig._suptitle.get_text()
    assert "digitized from" in fig.legends[0].get_title().get_text()
    assert fig.get_facecolor()[3] == 1 and ax.get_facecolor()[3] == 1       # opaque in dark mode


def test_large_range_has_the_prethreaded_collapse_at_12000(results):
    fig = plots.concurrency_chart(results, range="large")
    xs, ys = fig.uk_series["prethreaded (2019)"]
    assert min(xs) == 1000 and dict(zip(xs, ys))[12000] == 968 and dict(zip(xs, ys))[11000] == 2195
    assert fig.uk_series["epoll (C)"][0] == (1000, 5000, 15000)
    assert fig.axes[0].get_xlim() == (1000, 15000)


def test_all_range_is_log_log_and_2019_only_shows_every_2019_model(results):
    fig = plots.concurrency_chart(results, range="all")
    assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_yscale() == "log"
    assert fig.uk_series["epoll (C)"][0] == (20, 500, 1000, 5000, 15000)
    fig = plots.concurrency_chart(digitized_2019(), range="all")
    assert len(fig.uk_series) == 7 and fig.uk_series["iterative (2019)"][1][0] == 6.5


def test_overlay_can_be_left_out_and_models_chosen(results):
    fig = plots.concurrency_chart(results, overlay_2019=False, models=["epoll"])
    assert list(fig.uk_series) == ["epoll (C)"]
    fig = plots.concurrency_chart(results, metric="p99_ms", range="all")
    assert "epoll (2019)" not in fig.uk_series                     # 2019 has only the rate
    assert fig.uk_series["epoll (C)"] == ((20, 500, 1000, 5000, 15000), (2.0, 50.0, 100.0, 500.0, 1500.0))


def test_one_colour_per_model_in_every_chart(results):
    figs = [plots.concurrency_chart(results, range="all"), plots.latency_chart(results),
            plots.cost_chart(results), plots.errors_chart(results)]
    colours = {}
    for fig in figs:
        for ax in fig.axes:
            for line in ax.get_lines():
                model = line.get_label().split(" (")[0]
                colours.setdefault(model, set()).add(line.get_color())
    assert colours["epoll"] == {plots.MODEL_STYLE["epoll"][0]}
    assert colours["prethreaded"] == {plots.MODEL_STYLE["prethreaded"][0]}
    assert len({c for c, _ in plots.MODEL_STYLE.values()}) == len(plots.MODEL_STYLE)


def test_latency_errors_and_cost_charts_plot_their_metrics(results):
    lat = plots.latency_chart(results)
    assert [ax.get_title() for ax in lat.axes] == ["median latency", "90th percentile latency",
                                                    "99th percentile latency"]
    assert lat.uk_series["p90 · epoll (C)"][1][-1] == 300.0
    err = plots.errors_chart(results)
    xs, ys = err.uk_series["errors · epoll (C)"]
    # c=15,000: 15 connect errors and 3 timeouts against 7,500 completed (the median repeat)
    assert ys[-1] == pytest.approx(100 * 18 / (18 + 7500))
    assert err.uk_series["timeouts · prethreaded (C)"][1][-1] == 3.0
    cost = plots.cost_chart(results)
    assert cost.uk_series["CPU · epoll (C)"][1] == (20.02, 20.5, 21.0, 25.0, 35.0)
    assert cost.uk_series["switches · epoll (C)"][1][0] == pytest.approx(3.0, abs=0.001)
    assert "µs" in cost.axes[0].get_ylabel()


def test_failed_points_are_marked_not_dropped():
    data = Results([rec("poll", 100, 2000.0), rec("poll", 1000, error="no request completed"),
                    rec("poll", 1500, error="server died during the point")])
    fig = plots.concurrency_chart(data, range="all")
    assert fig.uk_failed == {"poll (C)": (1000, 1500)}
    assert "poll (C): failed at c=1,000, 1,500." in plots.alt_text(fig)


def test_alt_text_describes_the_data(results):
    fig = plots.concurrency_chart(results, range="large")
    alt = plots.alt_text(fig)
    assert "prethreaded (2019): 2,490 req/s at c=1,000, peaks at 2,615 at c=1,500, 529 at c=15,000." in alt
    assert "Requests per second, 1,000 to 15,000 clients" in alt and "digitized from the 2019 charts" in alt
    lat = plots.alt_text(plots.latency_chart(results))
    assert "p99 · epoll (C): 2 ms at c=20, 1,500 at c=15,000." in lat


def test_empty_range_and_bad_arguments():
    fig = plots.concurrency_chart(Results([rec("epoll", 20, 100.0)]), range="large", overlay_2019=False)
    assert fig.uk_series == {} and "No data" in plots.alt_text(fig)
    with pytest.raises(ValueError, match="range must be one of"):
        plots.concurrency_chart(Results(), range="medium")
    with pytest.raises(ValueError, match="unknown metric 'rpm'"):
        plots.concurrency_chart(Results(), metric="rpm")
