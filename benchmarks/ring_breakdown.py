"""Where a batch-1 NOP round trip's time goes in uringkit, layer by layer, next to PyPI liburing's whole loop.

Run it: ``.venv/bin/python benchmarks/ring_breakdown.py [--number 200000]``. Each row is timeit's best of 7 runs
of one loop body, in ns per round trip; each uringkit row adds one layer to the row above it, so the differences
are what each layer costs. The first row is the floor of any round trip through cffi: the two calls into C that
``Ring.nop`` and ``Ring.wait_cqe`` make, with no Python bookkeeping at all (the NOP's user_data is not kept, its
completion is not turned into an object). ``benchmarks/ring.py`` explains why that floor decides the batch-1
comparison with PyPI.

The rows reach into the Ring's private fields on purpose: they rebuild ``nop`` + ``wait_cqe`` one piece at a time.
"""

from __future__ import annotations

import argparse
import timeit

from uringkit._native.lib import uk_prep_nop, uk_wait_one
from uringkit._ring_types import Completion, new_completion
from uringkit.ring import Ring

try:
    import liburing as pypi_liburing
except ImportError:  # optional: `pip install liburing`
    pypi_liburing = None

ENTRIES = 64  # as benchmarks/ring.py

# Each layer: (label, loop body). Names: r is the C ring, inflight the Ring's token table, res/flags its views of
# what uk_wait_one reaped, ring the Ring itself.
LAYERS = [
    ("two bare calls into C (uk_prep_nop, uk_wait_one)", "uk_prep_nop(r, 0); uk_wait_one(r)"),
    ("+ the table entry that keeps user_data alive",
     "inflight[uk_prep_nop(r, 0)] = (7, None); e = inflight.pop(uk_wait_one(r))"),
    ("+ reading res and flags back",
     "inflight[uk_prep_nop(r, 0)] = (7, None); t = uk_wait_one(r); e = inflight.pop(t); res[0]; flags[0]"),
    ("+ a Completion named tuple",
     "inflight[uk_prep_nop(r, 0)] = (7, None); t = uk_wait_one(r); e = inflight.pop(t);"
     " c = new_completion(Completion, (e[0], res[0], flags[0], t))"),
    ("ring.nop(user_data=7); ring.wait_cqe() (the real methods)", "ring.nop(user_data=7); ring.wait_cqe()"),
]
PYPI_LOOP = ("sqe = L.io_uring_get_sqe(p); L.io_uring_prep_nop(sqe); L.io_uring_sqe_set_data64(sqe, 7);"
             " L.io_uring_submit_and_wait(p, 1); L.io_uring_wait_cqe(p, cqe); cqe[0].user_data;"
             " L.io_uring_cqe_seen(p, cqe[0])")


def best_ns(body: str, names: dict, number: int) -> float:
    return min(timeit.repeat(body, globals=names, number=number, repeat=7)) / number * 1e9


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=200_000, help="round trips per timed run")
    args = parser.parse_args(argv)
    with Ring(ENTRIES) as ring:
        names = {"uk_prep_nop": uk_prep_nop, "uk_wait_one": uk_wait_one, "new_completion": new_completion,
                 "Completion": Completion, "ring": ring, "r": ring._r, "inflight": ring._inflight,
                 "res": ring._out_res, "flags": ring._out_flags}
        previous = None
        for label, body in LAYERS:
            ns = best_ns(body, names, args.number)
            step = "" if previous is None else f"   (+{ns - previous:5.0f})"
            print(f"  {label:<60} {ns:6.0f} ns{step}")
            previous = ns
    if pypi_liburing is None:
        print("  PyPI liburing is not installed (pip install liburing): its loop is left out")
        return
    L = pypi_liburing
    p, cqe = L.Ring(), L.Cqe()
    L.io_uring_queue_init(ENTRIES, p, L.IORING_SETUP_COOP_TASKRUN)
    try:
        print(f"  {'PyPI liburing, its whole loop (7 calls)':<60} "
              f"{best_ns(PYPI_LOOP, {'L': L, 'p': p, 'cqe': cqe}, args.number):6.0f} ns")
    finally:
        L.io_uring_queue_exit(p)


if __name__ == "__main__":
    main()
