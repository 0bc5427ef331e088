"""The book in a real browser: JupyterLab opens a chapter, runs every cell, and shows no error."""

from __future__ import annotations

import pytest

from lab import ARTIFACTS, error_texts, open_notebook, run_all

pytestmark = pytest.mark.timeout(900)


def test_welcome_chapter_runs_in_the_browser(jupyter_lab, page):
    base, token = jupyter_lab
    open_notebook(page, base, token, "notebooks/00-welcome.ipynb")
    run_all(page, timeout_s=300)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "00-welcome.png"), full_page=False)
    assert not error_texts(page)
    report = page.evaluate("() => document.querySelector('.jp-Notebook').innerText")
    assert "opcodes supported" in report, "the environment report was not printed"
