"""How much a Python binding costs over io_uring: uringkit against C liburing and PyPI's ``liburing``.

Run it: ``make bench`` or ``.venv/bin/python benchmarks/ring.py [--reps 9] [--seconds 0.15] [--warmup 0.1]``.
It compiles ``benchmarks/ring_ref.c`` (gcc -O2 ... -luring) into ``benchmarks/_build/``, writes a 64 MiB file
there and reads it once so it is page-cached, then runs every loop below for ``--seconds`` per repetition,
interleaving the implementations (uringkit, C, PyPI, uringkit, C, PyPI, ...) so a noisy neighbour hurts all of
them alike. Each timed run follows an untimed ``--warmup`` run of the same loop in the same process: on this VM
a loop that starts right after a sleep or after different work runs up to 15 % slower for its first tenths of
a second, and which column that hits would depend on the order of the columns.
It prints the median of the repetitions and the ratios, then one ``RESULT name value`` line per figure.

What each loop does - the same work in every column, so the comparison is fair:

* **NOP, batch 1** - prepare one NOP carrying user_data, submit and wait for it, reap its completion and read
  the user_data back. uringkit: ``ring.nop(user_data=i); ring.wait_cqe().user_data`` (user_data may be any
  Python object, kept alive by the ring, and the Completion is a fresh object). C: get_sqe, prep_nop,
  set_data64, submit_and_wait(1), peek, check user_data, cqe_seen. PyPI: get_sqe, prep_nop, set_data64,
  submit_and_wait(1), wait_cqe, ``cqe[0].user_data``, cqe_seen - its idiomatic minimal loop.
* **NOP, batch 32** - 32 NOPs, one submit_and_wait(32), reap all 32. uringkit: one ``nop_batch(32)``, then
  ``ring.requeue(batch, wait=True)`` per round (the batch API: prepare, submit, wait and reap in one call into C;
  results land in the Batch). C: 32 x (get_sqe,
  prep_nop, set_data64), submit_and_wait(32), for_each_cqe + cq_advance. PyPI: 32 x (get_sqe, prep_nop,
  set_data64), submit_and_wait(32), wait_cqe, cq_ready, ``cqe[i].user_data`` for each, cq_advance.
* **4 KiB reads at queue depth 32** - 32 reads at the next 32 sequential 4 KiB offsets of the page-cached
  64 MiB file (wrapping at its end), into 32 distinct 4 KiB buffers, one submit_and_wait(32), reap all 32.
  uringkit: one ``read_batch(...)``, then per round ``batch.offsets[:] = next_offsets`` and
  ``ring.requeue(batch, wait=True)`` (the documented queue-depth loop: the buffer is converted and the result
  and offset arrays allocated once), checking the last batch of every chunk (``Batch.check``); C and PyPI check
  every res == 4096. uringkit and C read into page-aligned buffers (an mmap; aligned_alloc), so each 4 KiB read
  lands in one page in both; a bytearray's data starts mid-page (no difference measured here, but the
  comparison should not depend on it). PyPI's prep_read takes only a bytearray, so its column reads into
  unaligned ones. Python baseline: an ``os.pread(fd, 4096, offset)`` loop over the same offsets.

Every ring is set up alike (64 entries, COOP_TASKRUN where the kernel has it), so only the binding differs.
Targets (the issue): uringkit reads at QD32 >= 0.8 x C; uringkit NOP >= 1 x PyPI at batch 1, >= 2 x at batch 32.

Why batch 1 stays below PyPI's loop (``benchmarks/ring_breakdown.py`` measures it layer by layer; timeit, best
of 7, quiet machine): the C loop's round trip is 0.16 us. uringkit's two bare calls into C (uk_prep_nop,
uk_wait_one) already take 0.35 us with it, because every cffi call converts its arguments one by one and
releases and retakes the GIL; PyPI's seven calls are Cython fast-call builtins (0.49 us for its whole loop,
kernel included). What makes uringkit safe and Pythonic costs another 0.43 us: the table entry that keeps
user_data and buffers alive until the completion (0.06), reading res and flags back (0.05), a fresh
``Completion`` named tuple (0.15 to make and free) and the two methods with their checks (0.17). The floor, the
table and the read-back already make 0.45 us, leaving 0.04 us to tie PyPI for the object handed back and two
method calls, which cost 0.32: through cffi, batch 1 cannot reach 1 x PyPI without giving up that safety. The
batch paths pay these costs once per batch, which is why they are the fast path (and why batch 32 is about
4 x PyPI).
"""

from __future__ import annotations

import argparse
import mmap
import os
import statistics
import subprocess
import sys
import time
from array import array
from pathlib import Path

from uringkit.ring import Ring

HERE = Path(__file__).resolve().parent
BUILD = HERE / "_build"
REF_SOURCE = HERE / "ring_ref.c"
REF_BINARY = BUILD / "ring_ref"
DATA_FILE = BUILD / "read4k.dat"

FILE_SIZE = 64 << 20   # 64 MiB: large enough that reads walk many pages, small enough to stay page-cached
BLOCK = 4096
QD = 32
BATCH = 32
CHUNK = 256            # round trips between two clock reads (a clock read per NOP would be a tenth of its cost)
ENTRIES = 64

try:
    import liburing as pypi_liburing
except ImportError:  # optional third column: `pip install liburing`
    pypi_liburing = None


# --- the C reference --------------------------------------------------------------------------------------------
def build_reference() -> Path:
    """Compile ring_ref.c unless the binary is newer than its source."""
    BUILD.mkdir(exist_ok=True)
    if not REF_BINARY.exists() or REF_BINARY.stat().st_mtime < REF_SOURCE.stat().st_mtime:
        subprocess.run(["gcc", "-O2", "-std=gnu11", "-Wall", "-Wextra", "-o", str(REF_BINARY), str(REF_SOURCE),
                        "-luring"], check=True)
    return REF_BINARY


def c_loop(*args: str):
    """A C reference loop as ``run(seconds, warmup)``: ops/s of a timed run after an untimed warm-up, both in one
    ring_ref process."""
    def run(seconds: float, warmup: float) -> float:
        out = subprocess.run([str(REF_BINARY), *args, str(warmup), str(seconds)], check=True, capture_output=True,
                             text=True).stdout.split()
        return int(out[0]) / float(out[1])
    return run


def py_loop(loop, *args):
    """A Python loop as ``run(seconds, warmup)``, warmed up as the C ones are."""
    def run(seconds: float, warmup: float) -> float:
        loop(*args, warmup)
        return loop(*args, seconds)
    return run


# --- timing -----------------------------------------------------------------------------------------------------
def ops_per_second(chunk, ops_per_chunk: int, seconds: float) -> float:
    """Call ``chunk()`` until ``seconds`` have passed; operations per second."""
    done = 0
    t0 = time.perf_counter()
    while True:
        chunk()
        done += ops_per_chunk
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return done / elapsed


def read_offsets() -> list[array]:
    """The offsets of every batch of QD sequential 4 KiB reads through the file, in order."""
    blocks = FILE_SIZE // BLOCK
    return [array("Q", [(b + i) * BLOCK for i in range(QD)]) for b in range(0, blocks, QD)]


# --- uringkit -----------------------------------------------------------------------------------------------------
def uringkit_nop_b1(ring: Ring, seconds: float) -> float:
    def chunk():
        for i in range(CHUNK):
            ring.nop(user_data=i)
            assert ring.wait_cqe().user_data == i
    return ops_per_second(chunk, CHUNK, seconds)


def uringkit_nop_b32(ring: Ring, seconds: float) -> float:
    batch = ring.nop_batch(BATCH, wait=True)

    def chunk():
        for _ in range(CHUNK // 8):
            ring.requeue(batch, wait=True)
    return ops_per_second(chunk, CHUNK // 8 * BATCH, seconds)


def uringkit_read(ring: Ring, fd: int, seconds: float) -> float:
    buf = mmap.mmap(-1, QD * BLOCK)  # page-aligned, as the C reference's aligned_alloc (see the docstring)
    offsets = read_offsets()
    batch = ring.read_batch(fd, buf, BLOCK, offsets[0], wait=True)  # built once: buffer, offsets, results
    position = 0

    def chunk():
        nonlocal position
        for _ in range(CHUNK // 8):
            position = (position + 1) % len(offsets)
            batch.offsets[:] = offsets[position]
            ring.requeue(batch, wait=True)
        assert batch.check() == [BLOCK] * QD
    return ops_per_second(chunk, CHUNK // 8 * QD, seconds)


def pread_loop(fd: int, seconds: float) -> float:
    offsets = [o for batch in read_offsets() for o in batch]
    position = 0

    def chunk():
        nonlocal position
        pread = os.pread
        for _ in range(CHUNK):
            assert len(pread(fd, BLOCK, offsets[position])) == BLOCK
            position = (position + 1) % len(offsets)
    return ops_per_second(chunk, CHUNK, seconds)


# --- PyPI liburing --------------------------------------------------------------------------------------------------
class PyPIRing:
    """PyPI ``liburing``'s Ring and Cqe, set up like ours."""

    def __init__(self):
        L = pypi_liburing
        self.ring, self.cqe = L.Ring(), L.Cqe()
        L.io_uring_queue_init(ENTRIES, self.ring, L.IORING_SETUP_COOP_TASKRUN)  # raises on failure

    def close(self):
        pypi_liburing.io_uring_queue_exit(self.ring)


def pypi_nop_b1(p: PyPIRing, seconds: float) -> float:
    L, ring, cqe = pypi_liburing, p.ring, p.cqe

    def chunk():
        for i in range(CHUNK):
            sqe = L.io_uring_get_sqe(ring)
            L.io_uring_prep_nop(sqe)
            L.io_uring_sqe_set_data64(sqe, i)
            L.io_uring_submit_and_wait(ring, 1)
            L.io_uring_wait_cqe(ring, cqe)
            assert cqe[0].user_data == i
            L.io_uring_cqe_seen(ring, cqe[0])
    return ops_per_second(chunk, CHUNK, seconds)


def _pypi_reap_all(L, ring, cqe, check) -> None:
    L.io_uring_wait_cqe(ring, cqe)
    ready = L.io_uring_cq_ready(ring)
    for i in range(ready):
        check(cqe[i])
    L.io_uring_cq_advance(ring, ready)


def pypi_nop_b32(p: PyPIRing, seconds: float) -> float:
    L, ring, cqe = pypi_liburing, p.ring, p.cqe

    def check(entry):
        assert entry.user_data < BATCH

    def chunk():
        for _ in range(CHUNK // 8):
            for i in range(BATCH):
                sqe = L.io_uring_get_sqe(ring)
                L.io_uring_prep_nop(sqe)
                L.io_uring_sqe_set_data64(sqe, i)
            L.io_uring_submit_and_wait(ring, BATCH)
            _pypi_reap_all(L, ring, cqe, check)
    return ops_per_second(chunk, CHUNK // 8 * BATCH, seconds)


def pypi_read(p: PyPIRing, fd: int, seconds: float) -> float:
    L, ring, cqe = pypi_liburing, p.ring, p.cqe
    bufs = [bytearray(BLOCK) for _ in range(QD)]
    offsets = read_offsets()
    position = 0

    def check(entry):
        assert entry.res == BLOCK

    def chunk():
        nonlocal position
        for _ in range(CHUNK // 8):
            for i, offset in enumerate(offsets[position]):
                sqe = L.io_uring_get_sqe(ring)
                L.io_uring_prep_read(sqe, fd, bufs[i], offset)
                L.io_uring_sqe_set_data64(sqe, i)
            L.io_uring_submit_and_wait(ring, QD)
            _pypi_reap_all(L, ring, cqe, check)
            position = (position + 1) % len(offsets)
    return ops_per_second(chunk, CHUNK // 8 * QD, seconds)


# --- the run ------------------------------------------------------------------------------------------------------
def make_data_file() -> None:
    if not DATA_FILE.exists() or DATA_FILE.stat().st_size != FILE_SIZE:
        DATA_FILE.write_bytes(os.urandom(FILE_SIZE))
    with open(DATA_FILE, "rb") as f:  # read it once: the benchmark measures page-cached reads
        while f.read(1 << 20):
            pass


def measure(reps: int, seconds: float, warmup: float) -> dict[str, list[float]]:
    """Ops/s of every figure in each of ``reps`` interleaved repetitions."""
    samples: dict[str, list[float]] = {}
    path = str(DATA_FILE)
    fd = os.open(path, os.O_RDONLY)
    ring = Ring(ENTRIES)
    pypi = PyPIRing() if pypi_liburing else None
    try:
        runs = {
            "nop_b1_uringkit_ops": py_loop(uringkit_nop_b1, ring),
            "nop_b1_c_ops": c_loop("nop", "1"),
            "nop_b1_pypi_ops": pypi and py_loop(pypi_nop_b1, pypi),
            "nop_b32_uringkit_ops": py_loop(uringkit_nop_b32, ring),
            "nop_b32_c_ops": c_loop("nop", str(BATCH)),
            "nop_b32_pypi_ops": pypi and py_loop(pypi_nop_b32, pypi),
            "read4k_qd32_uringkit_ops": py_loop(uringkit_read, ring, fd),
            "read4k_qd32_c_ops": c_loop("read", path, str(QD)),
            "read4k_qd32_pypi_ops": pypi and py_loop(pypi_read, pypi, fd),
            "read4k_pread_python_ops": py_loop(pread_loop, fd),
        }
        for rep in range(reps):
            for name, run in runs.items():
                if run:
                    samples.setdefault(name, []).append(run(seconds, warmup))
            print(f"repetition {rep + 1}/{reps} done", file=sys.stderr)
    finally:
        if pypi:
            pypi.close()
        ring.close()
        os.close(fd)
    return samples


def report(samples: dict[str, list[float]], reps: int, seconds: float) -> None:
    medians = {name: statistics.median(values) for name, values in samples.items()}

    def row(label, name):
        if name in medians:
            print(f"  {label:<34} {medians[name] / 1e6:8.3f} M ops/s")

    def ratio(label, num, den, target=None):
        # Paired: each repetition's two figures ran seconds apart, so their ratio survives a noisy neighbour that
        # comes and goes better than a ratio of medians does.
        if num in samples and den in samples:
            r = statistics.median(a / b for a, b in zip(samples[num], samples[den]))
            verdict = "" if target is None else f"   (target >= {target:g} x: {'met' if r >= target else 'NOT met'})"
            print(f"  {label:<34} {r:8.2f} x{verdict}")

    print(f"medians of {reps} interleaved repetitions of {seconds} s each")
    for title, prefix in (("NOP round trips, batch 1", "nop_b1"), ("NOP round trips, batch 32", "nop_b32")):
        print(title)
        row("uringkit", f"{prefix}_uringkit_ops")
        row("C liburing", f"{prefix}_c_ops")
        row("PyPI liburing", f"{prefix}_pypi_ops")
    print("4 KiB reads of a page-cached 64 MiB file")
    row("uringkit batch (requeue), QD 32", "read4k_qd32_uringkit_ops")
    row("C liburing, QD 32", "read4k_qd32_c_ops")
    row("PyPI liburing, QD 32", "read4k_qd32_pypi_ops")
    row("os.pread loop", "read4k_pread_python_ops")
    print("ratios (median of the per-repetition ratios)")
    ratio("NOP b1: uringkit / C", "nop_b1_uringkit_ops", "nop_b1_c_ops")
    ratio("NOP b1: uringkit / PyPI", "nop_b1_uringkit_ops", "nop_b1_pypi_ops", 1)
    ratio("NOP b32: uringkit / C", "nop_b32_uringkit_ops", "nop_b32_c_ops")
    ratio("NOP b32: uringkit / PyPI", "nop_b32_uringkit_ops", "nop_b32_pypi_ops", 2)
    ratio("read QD32: uringkit / C", "read4k_qd32_uringkit_ops", "read4k_qd32_c_ops", 0.8)
    ratio("read QD32: uringkit / PyPI", "read4k_qd32_uringkit_ops", "read4k_qd32_pypi_ops")
    ratio("read QD32: uringkit / os.pread", "read4k_qd32_uringkit_ops", "read4k_pread_python_ops")
    for name, value in medians.items():
        print(f"RESULT {name} {value:.0f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=9, help="interleaved repetitions (the median is reported)")
    parser.add_argument("--seconds", type=float, default=0.15, help="length of one timed measurement")
    parser.add_argument("--warmup", type=float, default=0.1, help="untimed run of the same loop before each one")
    args = parser.parse_args(argv)
    if args.reps < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--reps must be >= 1, --seconds > 0 and --warmup >= 0")
    build_reference()
    make_data_file()
    if pypi_liburing is None:
        print("PyPI liburing is not installed (pip install liburing): its columns are left out", file=sys.stderr)
    report(measure(args.reps, args.seconds, args.warmup), args.reps, args.seconds)


if __name__ == "__main__":
    main()
