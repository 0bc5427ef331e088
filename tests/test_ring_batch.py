"""Batches (one call into C for many SQEs) and a seeded randomized stress test of everything mixed together."""

import errno
import gc
import os
import random
import socket
import weakref
from array import array

import pytest

from ringhelpers import WAIT, Buf, drain, require_io_uring, signal_after
from uringkit.ring import MAX_BATCHES, Ring, RingClosedError, SqeFlags

BLOCK = 512


@pytest.fixture
def data_file(tmp_path):
    """A 64 KiB file whose block i is filled with the byte i % 256, open for reading and writing."""
    path = tmp_path / "blocks"
    path.write_bytes(b"".join(bytes([i % 256]) * BLOCK for i in range(128)))
    fd = os.open(path, os.O_RDWR)
    yield path, fd
    os.close(fd)


def test_nop_batch(ring):
    batch = ring.nop_batch(100)               # more than the 64 entries: prepared in pieces
    assert not batch.done and ring.in_flight == 100
    assert "in flight" in repr(batch)
    with pytest.raises(RuntimeError):
        batch.check()
    assert ring.wait_batch(batch, timeout=WAIT)
    assert batch.done and batch.check() == [0] * 100 and ring.in_flight == 0


def test_nop_batch_with_wait_comes_back_done(ring):
    ring.nop(user_data="single")              # completes during the batch's wait: kept for wait_cqe
    batch = ring.nop_batch(100, wait=True)    # more than the entries: prepared and submitted in pieces
    assert batch.done and batch.check() == [0] * 100 and ring.in_flight == 0  # the single one was reaped too
    assert ring.wait_cqe(timeout=WAIT).user_data == "single"


def test_read_batch_with_wait_and_array_offsets(ring, data_file):
    _, fd = data_file
    buf = bytearray(3 * BLOCK)
    batch = ring.read_batch(fd, buf, BLOCK, array("Q", [2 * BLOCK, 0, 7 * BLOCK]), wait=True)
    assert batch.done and batch.check() == [BLOCK] * 3
    assert buf == bytes([2]) * BLOCK + bytes([0]) * BLOCK + bytes([7]) * BLOCK


def test_a_signal_during_a_waiting_batch_does_not_lose_it(ring):
    """C's wait is cut short by EINTR; Python runs the handler (which feeds the pipe) and finishes the wait."""
    r, w = os.pipe()
    try:
        buf = bytearray(BLOCK)
        with signal_after(0.05, lambda signum, frame: os.write(w, b"x" * BLOCK)):
            batch = ring.read_batch(r, buf, BLOCK, [0], wait=True)
        assert batch.done and batch.check() == [BLOCK] and buf == b"x" * BLOCK
    finally:
        os.close(r)
        os.close(w)


def test_empty_batch_is_done_at_once(ring):
    batch = ring.nop_batch(0)
    assert batch.done and batch.check() == [] and ring.wait_batch(batch, timeout=0)


def test_read_batch_lands_each_read_in_its_slice(ring, data_file):
    _, fd = data_file
    offsets = [5 * BLOCK, 0, 127 * BLOCK, 64 * BLOCK]
    buf = bytearray(len(offsets) * BLOCK)
    batch = ring.read_batch(fd, buf, BLOCK, offsets)
    assert ring.wait_batch(batch, timeout=WAIT)
    assert batch.check() == [BLOCK] * 4
    for i, offset in enumerate(offsets):
        assert buf[i * BLOCK:(i + 1) * BLOCK] == bytes([offset // BLOCK % 256]) * BLOCK


def test_read_batch_takes_any_sequence_of_offsets(ring, data_file):
    _, fd = data_file
    buf = bytearray(4 * BLOCK)
    batch = ring.read_batch(fd, buf, BLOCK, range(0, 4 * BLOCK, BLOCK))
    assert ring.wait_batch(batch, timeout=WAIT) and batch.check() == [BLOCK] * 4
    assert buf == b"".join(bytes([i]) * BLOCK for i in range(4))


def test_write_batch_then_read_back(ring, data_file):
    path, fd = data_file
    src = b"".join(bytes([0xA0 + i]) * BLOCK for i in range(3))
    batch = ring.write_batch(fd, src, BLOCK, [10 * BLOCK, 20 * BLOCK, 30 * BLOCK])
    assert ring.wait_batch(batch, timeout=WAIT) and batch.check() == [BLOCK] * 3
    data = path.read_bytes()
    assert [data[k * BLOCK:(k + 1) * BLOCK] for k in (10, 20, 30)] == [bytes([0xA0 + i]) * BLOCK for i in range(3)]


def test_batch_check_raises_for_the_first_failure(ring):
    batch = ring.read_batch(-1, bytearray(2 * BLOCK), BLOCK, [0, BLOCK])
    assert ring.wait_batch(batch, timeout=WAIT)
    assert list(batch.results[0:2]) == [-errno.EBADF, -errno.EBADF]
    with pytest.raises(OSError) as exc:
        batch.check()
    assert exc.value.errno == errno.EBADF


def test_batch_refuses_skip_success(ring):
    with pytest.raises(ValueError):
        ring.nop_batch(4, flags=SqeFlags.CQE_SKIP_SUCCESS)
    assert ring.in_flight == 0


def test_wait_batch_times_out_while_a_drain_holds_it(ring):
    """A DRAIN batch waits for the timeout before it, so it is not done yet: wait_batch says False."""
    ring.timeout(0.2)
    batch = ring.nop_batch(1, flags=SqeFlags.DRAIN)
    assert not ring.wait_batch(batch, timeout=0.02)
    assert ring.wait_batch(batch, timeout=WAIT) and batch.check() == [0]
    assert ring.wait_cqe(timeout=WAIT).res == -errno.ETIME


def test_batch_buffer_survives_del_and_gc(ring):
    r, w = os.pipe()
    try:
        buf = Buf(BLOCK)
        alive = weakref.ref(buf)
        batch = ring.read_batch(r, buf, BLOCK, [0])   # a pipe read waits for data
        ring.submit()
        del buf
        gc.collect()
        assert alive() is not None, "the ring let go of a batch buffer the kernel is about to write"
        buf = alive()
        os.write(w, b"late data")
        assert ring.wait_batch(batch, timeout=WAIT) and batch.check() == [9]
        assert bytes(buf[:9]) == b"late data"
        del buf
        gc.collect()
        assert alive() is not None, "a done batch can be requeued: it must keep its buffer while it lives"
        del batch
        gc.collect()
        assert alive() is None, "nothing else holds a batch's buffer once the batch is gone"
    finally:
        os.close(r)
        os.close(w)


def test_requeue_runs_a_done_batch_again_with_new_offsets(ring, data_file):
    _, fd = data_file
    buf = bytearray(2 * BLOCK)
    batch = ring.read_batch(fd, buf, BLOCK, [0, BLOCK], wait=True)
    assert batch.check() == [BLOCK, BLOCK] and buf == bytes([0]) * BLOCK + bytes([1]) * BLOCK
    for first in (5, 9):
        batch.offsets[:] = array("Q", [first * BLOCK, (first + 1) * BLOCK])
        assert ring.requeue(batch, wait=True) is batch
        assert batch.done and batch.check() == [BLOCK, BLOCK]
        assert buf == bytes([first]) * BLOCK + bytes([first + 1]) * BLOCK
    ring.requeue(batch)                       # without wait: queued, in flight until reaped
    assert not batch.done and ring.in_flight == 2
    with pytest.raises(ValueError, match="still in flight"):
        ring.requeue(batch)
    assert ring.wait_batch(batch, timeout=WAIT) and batch.check() == [BLOCK, BLOCK]


def test_batch_offsets_keep_their_length(ring, data_file):
    _, fd = data_file
    batch = ring.read_batch(fd, bytearray(2 * BLOCK), BLOCK, [0, BLOCK], wait=True)
    with pytest.raises(ValueError):
        batch.offsets[:] = array("Q", [0, BLOCK, 2 * BLOCK])  # the buffer holds two reads, not three
    assert ring.nop_batch(3, wait=True).offsets is None


def test_requeue_on_a_closed_ring_raises(data_file):
    _, fd = data_file
    ring = Ring(8)
    batch = ring.nop_batch(2, wait=True)
    ring.close()
    with pytest.raises(RingClosedError):
        ring.requeue(batch)


def test_mixing_batch_and_single_ops_in_one_reap(ring, data_file):
    _, fd = data_file
    buf = bytearray(BLOCK)
    batch = ring.nop_batch(10)
    ring.read(fd, buf, 3 * BLOCK, user_data="single read")
    rbatch = ring.read_batch(fd, bytearray(2 * BLOCK), BLOCK, [0, BLOCK])
    ring.nop(user_data="single nop")
    ring.submit()
    got = drain(ring, 2)                      # batches finish in the same reaps as the single completions
    assert sorted(c.user_data for c in got) == ["single nop", "single read"]
    assert ring.wait_batch(batch, timeout=WAIT) and ring.wait_batch(rbatch, timeout=WAIT)
    assert batch.check() == [0] * 10 and rbatch.check() == [BLOCK, BLOCK] and buf == bytes([3]) * BLOCK
    assert ring.in_flight == 0


def test_wait_batch_keeps_single_completions_for_later(ring):
    ring.nop(user_data="kept")
    batch = ring.nop_batch(3)
    assert ring.wait_batch(batch, timeout=WAIT)
    assert ring.wait_cqe(timeout=WAIT).user_data == "kept"


def test_batch_slots_are_reused(ring):
    for _ in range(3 * MAX_BATCHES // 2):     # more batches than slots, one at a time
        assert ring.wait_batch(ring.nop_batch(1), timeout=WAIT)
    batches = [ring.nop_batch(1) for _ in range(MAX_BATCHES)]
    with pytest.raises(OSError) as exc:
        ring.nop_batch(1)                     # every slot in flight
    assert exc.value.errno == errno.EBUSY
    for b in batches:
        assert ring.wait_batch(b, timeout=WAIT)
    assert ring.in_flight == 0


# --- randomized stress: nothing lost, nothing duplicated -------------------------------------------------------------
MESSAGE = 64  # every pipe/socket message has this size, so each read takes exactly one message


class Stress:
    """Drives a seeded random mix of operations and checks every token completes exactly once."""

    def __init__(self, ring, rng, file_fd):
        self.ring, self.rng, self.file_fd = ring, rng, file_fd
        self.expected: dict[int, tuple] = {}    # token -> (kind, expected check)
        self.seen: set[int] = set()
        self.batches = []
        self.pipe = os.pipe()
        self.pair = socket.socketpair()
        self.idle = socket.socketpair()         # nothing is ever sent here: its recvs wait until cancelled
        self.cancellable: list[int] = []
        self.ops = 0

    def close(self):
        os.close(self.pipe[0])
        os.close(self.pipe[1])
        for s in (*self.pair, *self.idle):
            s.close()

    def track(self, token, kind, expect=None):
        assert token not in self.expected, f"token {token} handed out twice"
        self.expected[token] = (kind, expect)
        self.ops += 1

    def step(self):
        ring, rng = self.ring, self.rng
        kind = rng.choice(["nop", "file_write", "file_read", "pipe", "socket", "timeout", "cancel", "nop_batch",
                           "read_batch"])
        if kind == "nop":
            self.track(ring.nop(user_data=("nop", self.ops)), "nop", 0)
        elif kind == "file_write":
            block = rng.randrange(64, 128)     # the upper half is ours to scribble on
            self.track(ring.write(self.file_fd, bytes([block % 256]) * BLOCK, block * BLOCK, user_data=kind),
                       kind, BLOCK)
        elif kind == "file_read":
            block = rng.randrange(0, 64)       # the lower half never changes: its content is known
            buf = bytearray(BLOCK)
            self.track(ring.read(self.file_fd, buf, block * BLOCK, user_data=(kind, buf, block)), kind, BLOCK)
        elif kind in ("pipe", "socket"):
            payload = bytes([rng.randrange(256)]) * MESSAGE
            if kind == "pipe":
                self.track(ring.read(self.pipe[0], bytearray(MESSAGE), user_data=kind), kind, MESSAGE)
                self.track(ring.write(self.pipe[1], payload, user_data=kind), kind, MESSAGE)
            else:
                self.track(ring.recv(self.pair[0].fileno(), bytearray(MESSAGE), user_data=kind), kind, MESSAGE)
                self.track(ring.send(self.pair[1].fileno(), payload, user_data=kind), kind, MESSAGE)
        elif kind == "timeout":
            self.track(ring.timeout(rng.uniform(0, 0.002), user_data=kind), kind, -errno.ETIME)
        elif kind == "cancel":
            target = ring.recv(self.idle[0].fileno(), bytearray(8), user_data="cancelled recv")
            self.track(target, "cancelled recv", -errno.ECANCELED)
            if rng.random() < 0.5:
                ring.submit()                   # sometimes the target is already armed, sometimes still queued
            self.track(ring.cancel(target, user_data="cancel"), "cancel", 0)
        elif kind == "nop_batch":
            self.batches.append((ring.nop_batch(rng.randrange(1, 100)), None))
        else:
            blocks = [rng.randrange(0, 64) for _ in range(rng.randrange(1, 40))]
            buf = bytearray(len(blocks) * BLOCK)
            self.batches.append((ring.read_batch(self.file_fd, buf, BLOCK, [b * BLOCK for b in blocks]),
                                 (buf, blocks)))

    def settle(self, completions):
        for c in completions:
            assert c.token in self.expected, f"completion for a token never handed out: {c}"
            assert c.token not in self.seen, f"token {c.token} completed twice: {c}"
            self.seen.add(c.token)
            kind, expect = self.expected[c.token]
            assert c.res == expect, f"{kind} completed with {c.res}, expected {expect}"
            if kind == "file_read":
                _, buf, block = c.user_data
                assert buf == bytes([block % 256]) * BLOCK

    def check_batches(self):
        for batch, reads in self.batches:
            assert batch.done, f"{batch} never finished"
            if reads is None:
                assert batch.check() == [0] * batch.n
            else:
                buf, blocks = reads
                assert batch.check() == [BLOCK] * len(blocks)
                for i, block in enumerate(blocks):
                    assert buf[i * BLOCK:(i + 1) * BLOCK] == bytes([block % 256]) * BLOCK


@pytest.mark.parametrize("sqpoll", [False, True], ids=["plain", "sqpoll"])
@pytest.mark.parametrize("seed", range(8))
def test_randomized_stress_loses_and_duplicates_nothing(caps, tmp_path, seed, sqpoll):
    require_io_uring(caps)
    if sqpoll and not caps.sqpoll:
        pytest.skip("SQPOLL is not permitted here (needs CAP_SYS_NICE before Linux 5.11)")
    path = tmp_path / "stress"
    path.write_bytes(b"".join(bytes([i % 256]) * BLOCK for i in range(128)))
    fd = os.open(path, os.O_RDWR)
    rng = random.Random(seed)
    # Mostly small on purpose: the queue fills and is submitted in pieces (with SQPOLL, waiting for the poller
    # thread, whose SQ_WAIT can wake before a slot is free: 3 of 40 seeds lost operations before that was fixed).
    with Ring(rng.choice([4, 8, 32, 256]), sqpoll=sqpoll, sq_thread_idle_ms=5) as ring:
        stress = Stress(ring, rng, fd)
        try:
            while stress.ops < 3000:
                for _ in range(rng.randrange(1, 60)):
                    stress.step()
                how = rng.random()
                if how < 0.4:
                    stress.settle(ring.wait_completions(rng.randrange(1, 8), timeout=WAIT))
                elif how < 0.6:
                    ring.submit()
                    stress.settle(ring.completions_nowait())
                elif how < 0.8 and stress.batches:
                    assert ring.wait_batch(stress.batches[-1][0], timeout=WAIT)
                else:
                    c = ring.wait_cqe(timeout=WAIT)
                    assert c is not None
                    stress.settle([c])
            missing = len(stress.expected) - len(stress.seen)
            stress.settle(drain(ring, missing))
            for batch, _ in stress.batches:
                assert ring.wait_batch(batch, timeout=WAIT)
            assert stress.seen == set(stress.expected)
            stress.check_batches()
            assert ring.in_flight == 0 and ring.completions_nowait() == []
            kinds = {kind for kind, _ in stress.expected.values()}
            assert kinds == {"nop", "file_write", "file_read", "pipe", "socket", "timeout", "cancel",
                             "cancelled recv"} and len(stress.batches) > 20
        finally:
            stress.close()
            os.close(fd)


def test_wait_cqe_that_also_finishes_a_batch_settles_both(ring):
    """One reap brings a batch's last completion and a single one: wait_cqe returns the single one (its fast path
    only takes a reap of exactly one single completion) and the batch is done."""
    batch = ring.nop_batch(3)
    ring.nop(user_data="single")
    assert ring.wait_cqe().user_data == "single"
    assert batch.done and batch.check() == [0, 0, 0] and ring.in_flight == 0


def test_requeue_settles_completions_that_arrive_with_the_batch(ring):
    """A requeue whose wait also reaps a single completion takes the full path: both are settled, none lost."""
    batch = ring.nop_batch(4, wait=True)
    for round_ in range(3):
        ring.nop(user_data=round_)
        assert ring.requeue(batch, wait=True).done and batch.check() == [0] * 4
        assert ring.wait_cqe(timeout=WAIT).user_data == round_
    assert ring.in_flight == 0


def test_requeue_rounds_leak_no_batch_slot(ring):
    batch = ring.nop_batch(2, wait=True)
    for _ in range(2 * MAX_BATCHES):          # rounds that finish alone in C: Python takes no slot for them
        ring.requeue(batch, wait=True)
    assert batch.done and batch.n == 2 and ring.in_flight == 0
    others = [ring.nop_batch(1) for _ in range(MAX_BATCHES)]  # every slot is still free
    for b in others:
        assert ring.wait_batch(b, timeout=WAIT)
