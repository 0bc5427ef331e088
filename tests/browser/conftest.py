"""A real JupyterLab driven by a real browser: Debian's Chromium under Playwright for Python.

Playwright cannot download its own browsers here, so it drives /usr/bin/chromium through ``executable_path``
(``make setup`` installs it with apt when it can). Without Chromium or Playwright these tests skip and say which
is missing.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from lab import ROOT

CHROMIUM = os.environ.get("URINGKIT_CHROMIUM", "/usr/bin/chromium")
# Chromium as root in a sandbox-less VM, with nothing that phones home (this machine has no network but loopback).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Module scope: JupyterLab, the Playwright driver and Chromium end with this module, before any other test runs.
@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 with a token, serving the repository; yields its base URL with the token."""
    port, token = _free_port(), secrets.token_hex(16)
    runtime = tmp_path_factory.mktemp("jupyter-runtime")
    settings = tmp_path_factory.mktemp("lab-settings")
    # Render every cell (JupyterLab 4 virtualises off-screen cells by default, hiding their outputs from the DOM)
    # and ask no questions about news: the test reads the whole page as a reader would scroll through it.
    (settings / "@jupyterlab" / "notebook-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        '{"windowingMode": "none"}')
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false"}')
    env = {**os.environ, "URINGKIT_QUICK": "1", "JUPYTER_RUNTIME_DIR": str(runtime)}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--ServerApp.token={token}", f"--ServerApp.root_dir={ROOT}", f"--LabApp.user_settings_dir={settings}",
           "--allow-root"]  # CI runs as root; the server is bound to loopback and needs the token
    log = open(tmp_path_factory.mktemp("jupyter-log") / "lab.log", "w+")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"JupyterLab did not start:\n{log.read()[-3000:]}")
                time.sleep(0.3)
        yield base, token
    finally:
        _stop(proc)
        log.close()


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((15, 10), (9, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; or set URINGKIT_CHROMIUM)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()
