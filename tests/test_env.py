import dataclasses
import os
import subprocess
import sys

from uringkit import env, ring


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


def test_rows_of_a_machine_without_io_uring(caps):
    without = dataclasses.replace(caps, io_uring=False, io_uring_reason="disabled by a test", opcodes=frozenset(),
                                  multishot_accept=False, sqpoll=False)
    rows = dict(without.rows())
    assert rows["io_uring"] == "unavailable: disabled by a test"
    assert rows["missing opcodes the book uses"] == ", ".join(env.BOOK_OPCODES)
    assert rows["multishot accept"] == "no" and rows["SQPOLL permitted"] == "no"
    assert not without.supports("nop")


def test_probe_agrees_with_the_ring_module(caps):
    if not caps.io_uring:
        assert not caps.multishot_accept and not caps.sqpoll
        return
    assert caps.supports("nop") and caps.opcodes == ring.probe()
    assert isinstance(caps.multishot_accept, bool) and isinstance(caps.sqpoll, bool)
    assert caps.liburing_version  # what the extension was built against ("unknown" without pkg-config)
