"""The book in a real browser: JupyterLab opens a chapter, runs every cell, and shows no error."""

from __future__ import annotations

import pytest

from lab import ACTIVE, ARTIFACTS, error_texts, open_notebook, run_all

pytestmark = pytest.mark.timeout(900)


def test_welcome_chapter_runs_in_the_browser(jupyter_lab, page):
    base, token = jupyter_lab
    open_notebook(page, base, token, "notebooks/00-welcome.ipynb")
    run_all(page, timeout_s=300)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "00-welcome.png"), full_page=False)
    assert not error_texts(page)
    report = page.locator(f"{ACTIVE} .jp-Notebook").inner_text()
    assert "opcodes supported" in report, "the environment report was not printed"


def test_benchmark_chapter_runs_and_its_explorer_redraws(jupyter_lab, page):
    base, token = jupyter_lab
    open_notebook(page, base, token, "notebooks/04-the-benchmark.ipynb")
    run_all(page, timeout_s=600)
    ARTIFACTS.mkdir(exist_ok=True)
    assert not error_texts(page)
    # The explorer is the last widget area: its metric dropdown and the image in its output area.
    explorer = page.locator(f"{ACTIVE} .jp-OutputArea-output .widget-vbox").last
    explorer.scroll_into_view_if_needed()
    chart = explorer.locator(".widget-output img").first
    chart.wait_for(timeout=30_000)
    before = chart.get_attribute("src")
    dropdown = explorer.locator(".widget-dropdown select").first
    options = dropdown.locator("option").all_inner_texts()
    target = next(o for o in options if "p99" in o)
    dropdown.select_option(label=target)
    # The kernel redraws into the output area: a new <img> replaces the old one.
    after = before
    for _ in range(120):
        page.wait_for_timeout(250)
        img = explorer.locator(".widget-output img").first
        if img.count() and img.get_attribute("src") != before:
            after = img.get_attribute("src")
            break
    page.screenshot(path=str(ARTIFACTS / "04-explorer.png"), full_page=False)
    assert after != before, "changing the metric redrew the chart"
    assert "99th percentile" in explorer.locator(".widget-output img").first.get_attribute("alt")
