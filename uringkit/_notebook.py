"""The helpers every chapter calls: one plotting style, real source code in cells, figures with alt text."""

from __future__ import annotations

import base64
import inspect
import io
import os
import re
from pathlib import Path

__all__ = ["QUICK", "quick", "setup_notebook", "show", "show_source"]

REPO = Path(__file__).resolve().parent.parent

# Okabe-Ito: distinguishable with the common colour-vision deficiencies, and on white.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

# Opaque white figures: on a dark JupyterLab theme a transparent figure shows black text on a black page.
STYLE = {
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.transparent": False,
    "text.color": "#222222",
    "axes.labelcolor": "#222222",
    "xtick.color": "#222222",
    "ytick.color": "#222222",
    "axes.edgecolor": "#444444",
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 11,
    "axes.titlesize": 12,
    "legend.frameon": False,
    "figure.figsize": (8, 4.5),
    "figure.dpi": 100,
    "lines.linewidth": 2,
    "lines.markersize": 5,
}


def quick() -> bool:
    """True when ``URINGKIT_QUICK`` is set (CI and ``make test``): every experiment shrinks to seconds."""
    return os.environ.get("URINGKIT_QUICK", "") not in ("", "0")


QUICK = quick()


def setup_notebook() -> None:
    """Call once at the top of a chapter: the book's matplotlib style (opaque, readable in dark mode)."""
    import matplotlib as mpl
    from cycler import cycler

    mpl.rcParams.update(STYLE)
    mpl.rcParams["axes.prop_cycle"] = cycler(color=PALETTE)
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            shell.run_line_magic("matplotlib", "inline")
    except ImportError:
        pass


def _display(obj) -> None:
    from IPython.display import display

    display(obj)


def show(fig, alt: str) -> None:
    """Display a matplotlib figure as a PNG carrying ``alt`` text (for screen readers and broken images)."""
    from html import escape

    from IPython.display import HTML

    import matplotlib.pyplot as plt

    if not alt or not alt.strip():
        raise ValueError("every figure needs alt text that says what it shows")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", facecolor=fig.get_facecolor())
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    _display(HTML(f'<img src="data:image/png;base64,{data}" alt="{escape(alt, quote=True)}" '
                  f'style="max-width:100%"/>'))


def _c_function(text: str, name: str) -> str:
    """The definition of C function ``name`` in ``text``: from its signature line to its closing brace."""
    match = re.search(rf"^[^\s#/*][^;{{}}]*\b{re.escape(name)}\s*\([^;{{]*\)\s*\{{", text, re.M)
    if not match:
        raise LookupError(f"no definition of {name}() found")
    depth, i = 0, match.end() - 1
    while i < len(text):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[match.start():i + 1]
        i += 1
    raise LookupError(f"unbalanced braces after {name}()")


def source_text(obj, function: str | None = None) -> tuple[str, str]:
    """(code, language) for a Python object, or for a repository path such as ``"native/servers/epoll.c"``."""
    if isinstance(obj, (str, Path)):
        path = Path(obj)
        path = path if path.is_absolute() else REPO / path
        text = path.read_text()
        language = {".c": "c", ".h": "c", ".py": "python"}.get(path.suffix, "text")
        if function:
            text = _c_function(text, function) if language == "c" else text
        return text, language
    return inspect.getsource(obj), "python"


def show_source(obj, function: str | None = None) -> None:
    """Show the package's real code in a cell - a Python object, or a C file (optionally one function in it) -
    so the text and the code it explains never drift apart."""
    from IPython.display import Code

    text, language = source_text(obj, function)
    _display(Code(text, language=language))
