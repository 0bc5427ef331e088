"""uringkit: the support package of "Asynchronous Programming Under Linux".

Chapters import it as ``import uringkit as uk`` and call ``uk.setup_notebook()`` first. The public surface is
pinned here; private modules start with ``_``.
"""

from . import blocking, env, processes, readiness, ring
from ._notebook import QUICK, quick, setup_notebook, show, show_source
from .env import environment_report
from .ring import Ring

__version__ = "0.1.0"

__all__ = [
    "QUICK", "Ring", "blocking", "env", "environment_report", "processes", "quick", "readiness", "ring",
    "setup_notebook", "show", "show_source",
]
