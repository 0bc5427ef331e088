"""Interactive views of sweeps: thin ipywidgets wiring around ``uringkit.plots`` (introduced in chapter 04).

``explore(results)`` is the benchmark explorer (models, implementation, metric, concurrency range, axes, 2019
curves); its logic lives in ``Explorer``, a plain class whose ``set(...)`` returns the figure it drew, so it is
tested without a browser. ``live_sweep(...)`` runs ``uringkit.bench.sweep`` and redraws the chart as each point
arrives. Without ipywidgets (or with ``static=True``) both show ordinary figures with ``uk.show``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from . import plots
from ._notebook import show
from .bench import Results, digitized_2019, reference, sweep

__all__ = ["Explorer", "LiveView", "explore", "live_sweep"]

# What the metric control offers: (what the reader sees, the plots.METRICS key)
METRIC_CHOICES = (("requests/s", "rps"), ("median latency", "p50_ms"), ("p99 latency", "p99_ms"),
                  ("errors", "errors"), ("server CPU per request", "cpu_us_per_request"),
                  ("context switches per request", "switches_per_request"))
RANGE_CHOICES = (("up to 1,000", "small"), ("1,000 to 15,000", "large"), ("all (log-log)", "all"))
SCALE_CHOICES = ("auto", "linear", "log")   # auto: each range's own axes, as in the book's three charts
IMPL_NAMES = {"c": "C", "py": "Python", "ref": "C, reference run"}


@dataclasses.dataclass(frozen=True)
class ExplorerState:
    """Everything the explorer's controls say; one state draws one figure."""

    models: tuple[str, ...]
    impls: tuple[str, ...]
    metric: str = "rps"
    range: str = "small"
    scale: str = "auto"
    overlay_2019: bool = True


def _has_ipywidgets() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


class Explorer:
    """The benchmark explorer's logic (chapter 04): a state, validated changes, and the figure they draw.

    ``Explorer(results).set(metric="p99_ms")`` returns the redrawn figure; ``widget()`` wires ipywidgets
    controls to ``set`` and draws into one output area. As the last expression of a cell it shows the controls
    (or, with ``static=True`` or without ipywidgets, just the figure).
    """

    def __init__(self, results, *, static: bool = False, **state):
        self.results = results if isinstance(results, Results) else Results(results)
        measured = self.results.where(impl=lambda i: i != "2019")
        order = {m: i for i, m in enumerate(plots.MODEL_STYLE)}
        known = {*measured.models, *digitized_2019().models} if measured.models else set(self.results.models)
        self.available_models = tuple(sorted(known, key=lambda m: (order.get(m, len(order)), m)))
        self.available_impls = measured.impls
        default_models = measured.models or self.available_models
        self.state = ExplorerState(models=tuple(m for m in self.available_models if m in default_models),
                                   impls=self.available_impls)
        self.static = static or not _has_ipywidgets()
        self.controls: dict[str, object] = {}
        self.output = None
        self.figure = self.set(**state)

    def set(self, **changes):
        """Change some of the state (models, impls, metric, range, scale, overlay_2019); returns the new figure."""
        for name, value in changes.items():
            if name not in ExplorerState.__dataclass_fields__:
                raise TypeError(f"the explorer has no control {name!r}")
            self._check(name, value)
        changes = {k: tuple(v) if k in ("models", "impls") else v for k, v in changes.items()}
        self.state = dataclasses.replace(self.state, **changes)
        self.figure = self.draw()
        return self.figure

    def _check(self, name: str, value) -> None:
        allowed = {"models": self.available_models, "impls": self.available_impls,
                   "metric": [key for _, key in METRIC_CHOICES], "range": [key for _, key in RANGE_CHOICES],
                   "scale": SCALE_CHOICES, "overlay_2019": (True, False)}[name]
        values = value if name in ("models", "impls") else [value]
        if isinstance(value, str) and name in ("models", "impls"):
            raise TypeError(f"{name} takes a list, e.g. {name}=[{value!r}]")
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ValueError(f"{name}={bad[0]!r} is not available here; choose from {', '.join(map(str, allowed))}")

    def draw(self):
        """The figure for the current state (a new matplotlib Figure)."""
        s = self.state
        log = {"auto": None, "linear": False, "log": True}[s.scale]
        return plots.concurrency_chart(self.results, s.metric, s.range, s.overlay_2019, models=s.models,
                                       impls=s.impls, log=log)

    def alt(self) -> str:
        """Alt text of the current figure (``uringkit.plots.alt_text``)."""
        return plots.alt_text(self.figure)

    # --- the ipywidgets view ---------------------------------------------------------------------------------
    def widget(self):
        """The controls and one output area, wired to ``set``; every change redraws in that area."""
        import ipywidgets as w

        s = self.state
        self.controls = {
            "models": w.SelectMultiple(options=self.available_models, value=s.models, description="models",
                                       rows=min(len(self.available_models), 9)),
            "impls": w.SelectMultiple(options=[(IMPL_NAMES.get(i, i), i) for i in self.available_impls],
                                      value=s.impls, description="servers in", rows=max(len(self.available_impls), 1)),
            "metric": w.Dropdown(options=METRIC_CHOICES, value=s.metric, description="metric"),
            "range": w.ToggleButtons(options=RANGE_CHOICES, value=s.range, description="clients"),
            "scale": w.ToggleButtons(options=SCALE_CHOICES, value=s.scale, description="axes"),
            "overlay_2019": w.Checkbox(value=s.overlay_2019, description="2019 curves (digitized)"),
        }
        for name, control in self.controls.items():
            control.observe(lambda change, name=name: self._changed(name, change["new"]), names="value")
        self.output = w.Output()
        self._render()
        c = self.controls
        return w.VBox([w.HBox([c["models"], c["impls"]]), c["metric"], c["range"], c["scale"], c["overlay_2019"],
                       self.output])

    def _changed(self, name: str, value) -> None:
        self.set(**{name: value})
        self._render()

    def _render(self) -> None:
        with self.output:
            self.output.clear_output(wait=True)
            show(self.figure, alt=self.alt())

    def _ipython_display_(self) -> None:
        if self.static:
            show(self.figure, alt=self.alt())
        else:
            from IPython.display import display

            display(self.widget())

    def __repr__(self) -> str:
        s = self.state
        return f"<Explorer: {s.metric}, range {s.range}, models {', '.join(s.models) or 'none'}>"


def explore(results=None, *, static: bool = False, **state) -> Explorer:
    """The benchmark explorer over ``results`` (default: the recorded reference sweep, or the digitized 2019
    curves where none is recorded). Put it last in a cell. Introduced in chapter 04."""
    if results is None:
        try:
            results = reference()
        except FileNotFoundError as exc:
            print(f"{exc}; showing the curves digitized from the 2019 charts")
            results = digitized_2019()
    return Explorer(results, static=static, **state)


class LiveView:
    """A chart redrawn in one output area as a sweep's records arrive (``sweep(on_record=view.update)``);
    ``live_sweep`` uses it (chapter 04)."""

    def __init__(self, metric: str = "rps", range: str = "all", *, static: bool = False, **chart_kw):
        self.metric, self.range, self.chart_kw = metric, range, chart_kw
        self.figure, self.redraws = None, 0
        self.output = None
        if not static and _has_ipywidgets():
            import ipywidgets as w
            from IPython.display import display

            self.output = w.Output()
            display(self.output)

    def update(self, results: Results) -> None:
        """Redraw the chart from every record so far."""
        self.figure = plots.concurrency_chart(results, self.metric, self.range, **self.chart_kw)
        self.redraws += 1
        if self.output is not None:
            with self.output:
                self.output.clear_output(wait=True)
                show(self.figure, alt=plots.alt_text(self.figure))

    def finish(self) -> None:
        """Without a live area, show the final chart once."""
        if self.output is None and self.figure is not None:
            show(self.figure, alt=plots.alt_text(self.figure))


def live_sweep(models: str | Sequence[str], impl: str = "c", *, metric: str = "rps", range: str = "all",
               static: bool = False, **sweep_kw) -> Results:
    """``uringkit.bench.sweep`` with its chart redrawn as each point arrives; returns the Results (chapter 04)."""
    view = LiveView(metric, range, static=static)
    try:
        return sweep(models, impl, on_record=view.update, **sweep_kw)
    finally:
        view.finish()
