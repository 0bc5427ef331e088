import math

from uringkit import processes


def test_fork_gets_slower_with_resident_memory_while_threads_do_not():
    small, large = processes.fork_cost(10, repeats=5), processes.fork_cost(400, repeats=5)
    assert large.rss_bytes > 400 << 20
    assert large.fork_ms > 2 * small.fork_ms
    assert large.thread_ms < 5 * max(small.thread_ms, 0.05)


def test_a_full_backlog_makes_the_rest_wait_for_a_syn_retransmission():
    r = processes.backlog_overflow(backlog=5, clients=15, pause=0.3)
    assert r.connected_within(0.25) == 6          # backlog + 1 handshakes complete at once on Linux
    late = [t for t in r.connect_s if t > 0.25]
    assert late and all(0.8 < t < 4 for t in late if math.isfinite(t))
