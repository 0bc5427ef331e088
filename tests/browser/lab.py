"""Driving JupyterLab the way a reader does: open a notebook, Run All, wait for the kernel, read the page."""

from __future__ import annotations

import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = ROOT / "test-artifacts"  # screenshots kept for a person to look at

# JupyterLab 4's DOM: each cell's input prompt shows "[*]:" while it runs; error outputs carry this MIME type.
ACTIVE = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook tab in front
ERROR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'


def open_notebook(page, base: str, token: str, path: str) -> None:
    page.goto(f"{base}/lab/tree/{path}?reset&token={token}")  # reset: no tabs restored from an earlier test
    page.wait_for_selector(f"{ACTIVE} .jp-Notebook .jp-Cell", timeout=60_000)
    # A notebook whose kernel is not running yet may ask which kernel to start; a reader clicks "Select".
    page.wait_for_timeout(1500)
    dialog = page.locator(".jp-Dialog").filter(has_text="Select Kernel")
    if dialog.count():
        dialog.get_by_role("button", name="Select", exact=True).click()
    # The kernel must be connected before Run All, or the command is queued behind the kernel dialog.
    page.wait_for_selector(f"{ACTIVE} .jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000,
                           state="attached")


def run_all(page, timeout_s: float = 600) -> None:
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    deadline = time.monotonic() + timeout_s
    page.wait_for_timeout(1000)
    while time.monotonic() < deadline:
        busy = page.locator(f"{ACTIVE} .jp-Notebook-ExecutionIndicator[data-status='busy']").count()
        unrun = page.locator(f"{ACTIVE} .jp-CodeCell .jp-InputArea-prompt").filter(has_text="[*]").count()
        if not busy and not unrun:
            return
        page.wait_for_timeout(500)
    raise TimeoutError(f"cells still running after {timeout_s} s")


def error_texts(page) -> list[str]:
    """Tracebacks and widget failures visible on the page (the reader would see these), read in one go."""
    errors = page.evaluate("""(sel) => Array.from(document.querySelectorAll(sel))
        .map(e => e.innerText).filter(t => /Traceback|Error/.test(t)).map(t => t.slice(0, 2000))""", ERROR_OUTPUT)
    if "Error displaying widget" in page.evaluate("() => document.body.innerText"):
        errors.append("Error displaying widget")
    return errors
