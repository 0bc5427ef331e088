"""The ring benchmark scripts still run and print every figure they promise (a smoke test with tiny runs: the
figures themselves are the scripts' business, not a test's)."""

import re
import subprocess
import sys
from pathlib import Path

from ringhelpers import require_io_uring

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
RING_RESULTS = ["nop_b1_uringkit_ops", "nop_b32_uringkit_ops", "nop_b1_c_ops", "nop_b32_c_ops",
                "read4k_qd32_uringkit_ops", "read4k_qd32_c_ops", "read4k_pread_python_ops"]


def run(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                          timeout=90)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_ring_benchmark_prints_every_result_and_target(caps):
    require_io_uring(caps)
    out = run("ring.py", "--reps", "1", "--seconds", "0.01", "--warmup", "0")
    results = dict(re.findall(r"^RESULT (\S+) (\d+)$", out, re.M))
    assert set(RING_RESULTS) <= set(results), out
    assert all(int(results[name]) > 0 for name in RING_RESULTS)
    for target in ("NOP b1: uringkit / PyPI", "NOP b32: uringkit / PyPI", "read QD32: uringkit / C"):
        if "PyPI" in target and "nop_b1_pypi_ops" not in results:
            continue  # PyPI liburing is optional (make bench installs it)
        assert re.search(rf"{re.escape(target)}\s+[\d.]+ x\s+\(target >= [\d.]+ x: (met|NOT met)\)", out), target


def test_ring_benchmark_refuses_bad_arguments():
    done = subprocess.run([sys.executable, str(BENCHMARKS / "ring.py"), "--reps", "0"], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2 and "--reps must be >= 1" in done.stderr


def test_ring_breakdown_adds_one_layer_a_row(caps):
    require_io_uring(caps)
    out = run("ring_breakdown.py", "--number", "2000")
    rows = re.findall(r"^  (.+?)\s+(\d+) ns", out, re.M)
    assert [label for label, _ in rows][:5] == [
        "two bare calls into C (uk_prep_nop, uk_wait_one)", "+ the table entry that keeps user_data alive",
        "+ reading res and flags back", "+ a Completion named tuple",
        "ring.nop(user_data=7); ring.wait_cqe() (the real methods)"]
    assert all(int(ns) > 0 for _, ns in rows)
