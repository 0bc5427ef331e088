"""Degraded mode: with io_uring reported unavailable, the chapters still run to the end and say why."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ["00-welcome.ipynb", "04-the-benchmark.ipynb"]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_runs_without_io_uring(chapter):
    env = {**os.environ, "URINGKIT_DISABLE_IO_URING": "1", "URINGKIT_QUICK": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:warnings",
                           "-p", "no:cacheprovider", "-q", str(ROOT / "notebooks" / chapter)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=580)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_the_reason_is_one_line():
    code = "import uringkit as uk; uk.environment_report()"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "URINGKIT_DISABLE_IO_URING": "1"}).stdout
    line = next(l for l in out.splitlines() if l.startswith("io_uring "))
    assert "unavailable: io_uring switched off by URINGKIT_DISABLE_IO_URING" in line
