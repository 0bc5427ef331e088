"""Charts of sweep records: pure functions, records in, matplotlib Figure out (introduced in chapter 04).

``concurrency_chart`` draws the book's three benchmark charts (up to 1,000 clients; 1,000 to 15,000; log-log over
all) with the 2019 curves dashed beside this machine's; ``latency_chart``, ``errors_chart`` and ``cost_chart``
show what the rate alone hides. Every model keeps one colour and marker in every chart. Each figure carries what it
plotted (``fig.uk_series = {label: (x, y)}``, failed points in ``fig.uk_failed``), and ``alt_text(fig)`` turns
that into the alt text ``uk.show(fig, alt=...)`` needs. Charts draw medians over repeats.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Sequence

from ._notebook import PALETTE, STYLE
from .bench import Record, Results, digitized_2019

__all__ = ["METRICS", "MODEL_STYLE", "alt_text", "concurrency_chart", "cost_chart", "errors_chart",
           "latency_chart"]

# One colour (Okabe-Ito, plus grey, black and a dark gold in place of the unreadable yellow) and one marker per
# model, in every chart of the book: the marker keeps lines apart where colours are hard to tell apart.
MODEL_STYLE = {
    "iterative": ("#999999", "v"), "forking": ("#E69F00", "s"), "preforked": ("#56B4E9", "D"),
    "threaded": ("#CC79A7", "^"), "prethreaded": ("#009E73", "o"), "select": ("#8C6D00", "P"),
    "poll": ("#000000", "X"), "epoll": ("#0072B2", "*"), "io_uring": ("#D55E00", "h"),
}
IMPL_LINE = {"c": "-", "py": ":", "2019": "--", "ref": "-."}
IMPL_NAME = {"c": "C", "py": "Python", "2019": "2019", "ref": "C, reference run"}
NOTE_2019 = "dashed: digitized from\nthe 2019 charts"
# The three benchmark charts of the source text: (lowest, highest concurrency, log-log axes)
RANGES = {"small": (1, 1000, False), "large": (1000, 15000, False), "all": (1, None, True)}
RANGE_TITLE = {"small": "up to 1,000 clients", "large": "1,000 to 15,000 clients", "all": "all concurrencies"}
PANEL_SIZE = (4.2, 3.8)     # inches per panel of a multi-panel chart
CHART_SIZE = (8.5, 4.8)     # a single-panel chart (room for the legend on the right)


@dataclasses.dataclass(frozen=True)
class Metric:
    """What a chart can put on its y axis: a label with its unit and how to read it off a record."""

    label: str
    unit: str
    value: Callable[[Record], float | None]
    higher_is_better: bool = False
    short: str = ""

    @property
    def axis(self) -> str:
        return f"{self.label} ({self.unit})"


def _per_request(count: Callable[[Record], int | None]) -> Callable[[Record], float | None]:
    def value(r: Record) -> float | None:
        n = count(r)
        return None if n is None or not r.completed else n / r.completed
    return value


def _error_percent(r: Record) -> float | None:
    errors = r.errors
    if errors is None or r.completed is None or errors + r.completed == 0:
        return None
    return 100.0 * errors / (errors + r.completed)


def _switches(r: Record) -> int | None:
    if r.voluntary_switches is None or r.involuntary_switches is None:
        return None
    return r.voluntary_switches + r.involuntary_switches


METRICS = {
    "rps": Metric("requests per second", "req/s", lambda r: r.rps, True, "rate"),
    "p50_ms": Metric("median latency", "ms", lambda r: r.p50_ms, short="p50"),
    "p90_ms": Metric("90th percentile latency", "ms", lambda r: r.p90_ms, short="p90"),
    "p99_ms": Metric("99th percentile latency", "ms", lambda r: r.p99_ms, short="p99"),
    "errors": Metric("failed requests", "% of requests", _error_percent, short="errors"),
    "timeouts": Metric("timeouts", "per second",
                       lambda r: None if r.timeouts is None or not r.duration_s else r.timeouts / r.duration_s,
                       short="timeouts"),
    "cpu_us_per_request": Metric("server CPU", "µs per request", lambda r: r.cpu_us_per_request, short="CPU"),
    "switches_per_request": Metric("server context switches", "per request", _per_request(_switches),
                                   short="switches"),
}


def model_style(model: str) -> tuple[str, str]:
    """(colour, marker) of a model; a model the book does not know gets a stable colour from the palette."""
    return MODEL_STYLE.get(model, (PALETTE[zlib.crc32(model.encode()) % len(PALETTE)], "o"))


def _label(model: str, impl: str, keepalive: bool) -> str:
    return f"{model} ({IMPL_NAME.get(impl, impl)}{', keep-alive' if keepalive else ''})"


def _curves(results: Results, metric: Metric, lo: int, hi: int | None):
    """(label, model, impl, [(x, y)], [failed x]) per curve, from medians over repeats, in model order."""
    curves: dict[tuple, tuple[list, list]] = {}
    for r in results.median():
        if r.concurrency < lo or (hi is not None and r.concurrency > hi):
            continue
        points, failed = curves.setdefault((r.model, r.impl, r.keepalive), ([], []))
        y = metric.value(r)
        if y is not None:
            points.append((r.concurrency, y))
        elif r.error:
            failed.append(r.concurrency)
    order = {m: i for i, m in enumerate(MODEL_STYLE)}
    for (model, impl, keepalive) in sorted(curves, key=lambda k: (order.get(k[0], len(order)), k[0], k[1] == "2019",
                                                                     k[1], k[2])):
        points, failed = curves[(model, impl, keepalive)]
        yield _label(model, impl, keepalive), model, impl, sorted(points), sorted(failed)


def _select(results: Results, models, impls, overlay_2019, metric_name: str) -> Results:
    """The measured records asked for, plus the 2019 ones for the same models when the chart is of the rate."""
    models = (models,) if isinstance(models, str) else models
    impls = (impls,) if isinstance(impls, str) else impls
    measured = results.where(impl=lambda i: i != "2019")
    if models is not None:
        measured = measured.where(model=tuple(models))
    if impls is not None:
        measured = measured.where(impl=tuple(impls))
    if metric_name != "rps" or overlay_2019 is False:
        return measured
    old = digitized_2019() if overlay_2019 is True else Results(overlay_2019)
    old = results.where(impl="2019") or old
    wanted = models if models is not None else (measured.models or None)
    return measured + (old.where(model=tuple(wanted)) if wanted is not None else old)


def _chart(results: Results, metric_names: Sequence[str], range: str, log: bool | None, models, impls,
           overlay_2019, title: str):
    import matplotlib as mpl
    from matplotlib.figure import Figure

    if range not in RANGES:
        raise ValueError(f"range must be one of {', '.join(RANGES)}, not {range!r}")
    unknown = [m for m in metric_names if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRICS)}")
    lo, hi, loglog = RANGES[range]
    loglog = loglog if log is None else log
    single = len(metric_names) == 1
    with mpl.rc_context(STYLE):
        size = CHART_SIZE if single else (PANEL_SIZE[0] * len(metric_names), PANEL_SIZE[1])
        fig = Figure(figsize=size, facecolor="white", layout="constrained")
        # panels in one unit (the latency percentiles) share their y axis, so heights compare across panels
        same_unit = len({METRICS[m].unit for m in metric_names}) == 1
        axes = fig.subplots(1, len(metric_names), squeeze=False, sharey=same_unit and not single)[0]
        fig.uk_series, fig.uk_failed, has_2019, kinds = {}, {}, False, {}
        for ax, name in zip(axes, metric_names):
            metric = METRICS[name]
            data = _select(results, models, impls, overlay_2019, name)
            for label, model, impl, points, failed in _curves(data, metric, lo, hi):
                key = label if single else f"{metric.short} · {label}"
                colour, marker = model_style(model)
                xs, ys = tuple(p[0] for p in points), tuple(p[1] for p in points)
                if xs:
                    ax.plot(xs, ys, IMPL_LINE.get(impl, "-."), color=colour, marker=marker, label=label,
                            linewidth=1.4 if impl == "2019" else 2, alpha=0.75 if impl == "2019" else 1)
                    fig.uk_series[key] = (xs, ys)
                if failed:
                    # on the x axis (axes coordinates: also right on log axes, where 0 does not exist)
                    ax.plot(failed, [0] * len(failed), "x", color=colour, markersize=9, markeredgewidth=2,
                            clip_on=False, label=f"{label}: failed", transform=ax.get_xaxis_transform())
                    fig.uk_failed[key] = tuple(failed)
                kinds[key] = (metric.unit, metric.higher_is_better)
                has_2019 |= impl == "2019"
            _axes(ax, metric, lo, hi, loglog, None if single else metric.label)
        handles, labels = axes[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside right upper", fontsize=9,
                       title=NOTE_2019 if has_2019 else None, title_fontsize=9)
        else:
            axes[0].text(0.5, 0.5, "no data in this range", ha="center", va="center", transform=axes[0].transAxes)
        fig.suptitle(title)
    fig.uk_meta = dict(title=title, metrics=tuple(metric_names), range=range, log=loglog, kinds=kinds)
    return fig


def _tick(v: float, _=None) -> str:
    return f"{v:,.0f}" if v >= 10 else f"{v:g}"


def _axes(ax, metric: Metric, lo: int, hi: int | None, loglog: bool, panel_title: str | None) -> None:
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_xlabel("concurrent clients")
    ax.set_ylabel(metric.axis)
    if panel_title:
        ax.set_title(panel_title)
    if loglog:
        ax.set_xscale("log")
        ax.set_yscale("log")
        low, high = ax.get_ylim()
        # within one decade a log axis has no major tick to read: label the minor ones too (plainly)
        ax.yaxis.set_minor_formatter(FuncFormatter(_tick) if high / low < 10 else NullFormatter())
    else:
        ax.set_xlim(0 if lo <= 1 else lo, hi)
        ax.set_ylim(bottom=0)
    ax.xaxis.set_major_formatter(FuncFormatter(_tick))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(_tick))


def _as_results(results) -> Results:
    return results if isinstance(results, Results) else Results(results)


def concurrency_chart(results, metric: str = "rps", range: str = "small", overlay_2019=True, *,
                      models: Sequence[str] | None = None, impls: Sequence[str] | None = None,
                      log: bool | None = None, title: str | None = None):
    """One of the book's benchmark charts: ``metric`` against concurrent clients (chapter 04).

    ``range``: ``"small"`` (linear, up to 1,000 clients), ``"large"`` (linear, 1,000 to 15,000) or ``"all"``
    (log-log). For the rate, the 2019 curves of the same models are drawn dashed (``overlay_2019=False`` leaves
    them out; a ``Results`` of impl "2019" replaces the digitized ones). ``log`` forces log-log axes on or off.
    """
    m = METRICS.get(metric)
    title = title or f"{m.label[0].upper() + m.label[1:] if m else metric}, {RANGE_TITLE.get(range, range)}"
    return _chart(_as_results(results), [metric], range, log, models, impls, overlay_2019, title)


def latency_chart(results, range: str = "all", *, models=None, impls=None, log: bool | None = None):
    """Median, 90th and 99th percentile latency against concurrent clients, one panel each (chapter 04)."""
    return _chart(_as_results(results), ["p50_ms", "p90_ms", "p99_ms"], range, log, models, impls, False,
                  f"Latency, {RANGE_TITLE.get(range, range)}")


def errors_chart(results, range: str = "all", *, models=None, impls=None, log: bool | None = False):
    """Failed requests (% of all) and timeouts per second against concurrent clients; a point where nothing
    completed is an x on the axis (chapter 04)."""
    return _chart(_as_results(results), ["errors", "timeouts"], range, log, models, impls, False,
                  f"Errors and timeouts, {RANGE_TITLE.get(range, range)}")


def cost_chart(results, range: str = "all", *, models=None, impls=None, log: bool | None = None):
    """What each request costs the server: CPU microseconds and context switches per request (chapter 04)."""
    return _chart(_as_results(results), ["cpu_us_per_request", "switches_per_request"], range, log, models,
                  impls, False, f"Server cost per request, {RANGE_TITLE.get(range, range)}")


# --- alt text --------------------------------------------------------------------------------------------------
def _num(v: float) -> str:
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2g}"


def alt_text(fig) -> str:
    """Alt text for a figure made here, from the data it plotted: for each curve its first point, its peak (or
    its lowest value, where lower is better) and its last point (chapter 04)."""
    meta = getattr(fig, "uk_meta", None)
    if meta is None:
        raise ValueError("alt_text describes figures made by uringkit.plots")
    scale = "log-log axes" if meta["log"] else "linear axes"
    parts = [f"Line chart, {scale}: {meta['title']}, against concurrent clients."]
    for label, (xs, ys) in fig.uk_series.items():
        unit, higher_is_better = meta["kinds"][label]
        unit = unit if unit.startswith("%") else f" {unit}"
        i = ys.index(max(ys) if higher_is_better else min(ys))
        peak = "peaks at" if higher_is_better else "lowest"
        text = f"{label}: {_num(ys[0])}{unit} at c={xs[0]:,}"
        if 0 < i < len(xs) - 1:
            text += f", {peak} {_num(ys[i])} at c={xs[i]:,}"
        if len(xs) > 1:
            text += f", {_num(ys[-1])} at c={xs[-1]:,}"
        parts.append(text + ".")
    for label, xs in fig.uk_failed.items():
        parts.append(f"{label}: failed at c={', '.join(f'{x:,}' for x in xs)}.")
    if not fig.uk_series and not fig.uk_failed:
        parts.append("No data in this range.")
    if any(label.endswith("(2019)") for label in fig.uk_series):
        parts.append("Dashed curves are digitized from the 2019 charts.")
    return " ".join(parts)
