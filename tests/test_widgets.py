"""The explorer and the live sweep view (uringkit/widgets.py): their logic, kernel-side, without a browser."""

from __future__ import annotations

import pytest

from uringkit import _records, bench, plots, widgets
from uringkit.bench import Record, Results

from test_bench import Calls, Factory, POINT_S


def rec(model, impl, concurrency, rps, **kw):
    return Record(model=model, impl=impl, concurrency=concurrency, keepalive=False, repeat=0, rps=rps,
                  completed=int(rps), p50_ms=concurrency / 100, p99_ms=concurrency / 10, **kw)


@pytest.fixture(scope="module", autouse=True)
def _fonts_loaded():
    """The first PNG matplotlib renders opens its font for good (a cache, not a leak): open it before the
    per-test file descriptor check starts counting."""
    import io

    plots.concurrency_chart(Results(), overlay_2019=False).savefig(io.BytesIO(), format="png")


@pytest.fixture(scope="module")
def results():
    return Results(rec(m, i, c, base / (1 + c / 5000)) for m, base in (("epoll", 9000.0), ("poll", 7000.0))
                   for i in ("c", "py") for c in (20, 200, 1000, 3000, 12000))


def test_defaults_are_the_first_seed_chart_with_everything_measured(results):
    ex = widgets.Explorer(results, static=True)
    assert ex.state.models == ("poll", "epoll") and ex.state.impls == ("c", "py")
    assert ex.state.metric == "rps" and ex.state.range == "small" and ex.state.overlay_2019
    assert set(ex.figure.uk_series) == {"poll (C)", "poll (Python)", "poll (2019)", "epoll (C)", "epoll (Python)",
                                        "epoll (2019)"}
    assert "prethreaded" in ex.available_models          # a 2019 model can be added to compare


def test_each_control_changes_the_figure(results):
    ex = widgets.Explorer(results, static=True)
    fig = ex.set(metric="p99_ms")
    assert fig is ex.figure and ex.state.metric == "p99_ms"
    assert fig.uk_series["epoll (C)"] == ((20, 200, 1000), (2.0, 20.0, 100.0))
    fig = ex.set(range="large", impls=["py"], models=["epoll"])
    assert list(fig.uk_series) == ["epoll (Python)"] and fig.uk_series["epoll (Python)"][0] == (1000, 3000, 12000)
    fig = ex.set(metric="rps", overlay_2019=True)
    assert fig.uk_series["epoll (2019)"][0][-1] == 15000
    assert ex.set(overlay_2019=False).uk_series.keys() == {"epoll (Python)"}
    assert ex.set(scale="log").axes[0].get_xscale() == "log"
    assert ex.set(scale="linear", range="all").axes[0].get_xscale() == "linear"
    assert "epoll (Python)" in ex.alt()


def test_bad_changes_are_refused_and_leave_the_state_alone(results):
    ex = widgets.Explorer(results, static=True)
    with pytest.raises(ValueError, match="metric='p42' is not available"):
        ex.set(metric="p42")
    with pytest.raises(ValueError, match="models='select' is not available"):
        ex.set(models=["select"])
    with pytest.raises(TypeError, match="takes a list"):
        ex.set(models="epoll")
    with pytest.raises(TypeError, match="no control 'colour'"):
        ex.set(colour="red")
    assert ex.state.metric == "rps" and ex.state.models == ("poll", "epoll")


def test_widget_controls_drive_the_same_logic(results, capsys):
    ex = widgets.Explorer(results)
    box = ex.widget()
    assert ex.output in box.children
    before = ex.figure
    ex.controls["metric"].value = "p50_ms"
    assert ex.state.metric == "p50_ms" and ex.figure is not before
    assert "median latency" in ex.figure.axes[0].get_ylabel()
    ex.controls["range"].value = "all"
    ex.controls["models"].value = ("poll",)
    assert set(ex.figure.uk_series) == {"poll (C)", "poll (Python)"}
    assert ex.figure.axes[0].get_xscale() == "log"
    ex.controls["overlay_2019"].value = False
    assert ex.state.overlay_2019 is False
    box.close_all()


def test_explore_falls_back_to_the_2019_curves_without_a_reference(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(_records, "REFERENCE_CSV", tmp_path / "missing.csv")
    ex = widgets.explore(static=True)
    assert "showing the curves digitized from the 2019 charts" in capsys.readouterr().out
    assert len(ex.figure.uk_series) == 7 and ex.static
    ex._ipython_display_()                            # the static fallback: one figure with its alt text
    assert "IPython.core.display.HTML" in capsys.readouterr().out


def test_live_sweep_redraws_as_points_arrive():
    seen = []

    class Watching(widgets.LiveView):
        def update(self, results):
            super().update(results)
            seen.append(dict(self.figure.uk_series))

    view = Watching(range="small", static=True, overlay_2019=False)
    results = bench.sweep(("alpha", "beta"), "py", (1, 2), duration=POINT_S, progress=False,
                          server_factory=Factory(), load=Calls(), on_record=view.update)
    assert view.redraws == len(results) == 4
    assert [sum(len(xs) for xs, _ in s.values()) for s in seen] == [1, 2, 3, 4]
    assert seen[-1]["alpha (Python)"][0] == (1, 2)


def test_live_sweep_returns_the_results(capsys):
    results = widgets.live_sweep("alpha", "py", range="small", static=True, concurrency=(1,), duration=POINT_S,
                                 progress=False, server_factory=Factory(), load=Calls())
    assert len(results) == 1 and results[0].ok
    assert "IPython.core.display.HTML" in capsys.readouterr().out   # the final chart, shown once
