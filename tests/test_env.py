import os
import subprocess
import sys

from uringkit import env


def test_probe_is_consistent(caps):
    assert caps.cpu_count == os.cpu_count()
    assert caps.nofile_soft <= caps.nofile_hard
    if caps.io_uring:
        assert not caps.io_uring_reason
        assert {"nop", "read", "write"} <= caps.opcodes
    else:
        assert caps.io_uring_reason and not caps.opcodes


def test_report_prints_one_row_per_fact(caps, capsys):
    env.environment_report(caps)
    out = capsys.readouterr().out
    for what, _ in caps.rows():
        assert what in out
    assert len(out.strip().splitlines()) == len(caps.rows())


def test_disable_switch_reports_the_reason_in_one_line():
    code = "from uringkit import env; c = env.probe(); print(c.io_uring); print(c.io_uring_reason)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "URINGKIT_DISABLE_IO_URING": "1"})
    assert proc.returncode == 0, proc.stderr
    available, reason = proc.stdout.strip().splitlines()
    assert available == "False" and "URINGKIT_DISABLE_IO_URING" in reason
