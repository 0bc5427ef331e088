"""uringkit: the support package of "Asynchronous Programming Under Linux".

Chapters import it as ``import uringkit as uk`` and call ``uk.setup_notebook()`` first. The public surface is
pinned here; private modules start with ``_``.
"""

from . import bench, blocking, env, plots, processes, readiness, ring, widgets
from ._notebook import QUICK, quick, setup_notebook, show, show_source
from .bench import GRID_2019, Record, Results, digitized_2019, reference, sweep
from .env import environment_report
from .load import LoadResult, load
from .plots import alt_text, concurrency_chart, cost_chart, errors_chart, latency_chart
from .ring import Ring
from .servers import Server, serve
from .widgets import Explorer, explore, live_sweep

__version__ = "0.1.0"

__all__ = [
    "GRID_2019", "QUICK", "Explorer", "LoadResult", "Record", "Results", "Ring", "Server", "alt_text", "bench", "blocking",
    "concurrency_chart", "cost_chart", "digitized_2019", "env", "environment_report", "errors_chart", "explore",
    "latency_chart", "live_sweep", "load", "plots", "processes", "quick", "readiness", "reference", "ring", "serve",
    "setup_notebook", "show", "show_source", "sweep", "widgets",
]
