import pytest

from uringkit import readiness


def test_poll_cost_grows_with_idle_connections_and_epoll_does_not():
    costs = {}
    for n in (50, 2000):
        with readiness.idle_connections(n) as conns:
            for mech in ("poll", "epoll"):
                costs[mech, n] = readiness.wait_cost(mech, conns, calls=50, repeats=3).us_per_wait
    assert costs["poll", 2000] > 8 * costs["poll", 50]
    assert costs["epoll", 2000] < 3 * costs["epoll", 50]


def test_select_refuses_fds_past_fd_setsize():
    assert "out of range" in readiness.fd_setsize_wall()


def test_select_wait_cost_refuses_high_fds():
    with readiness.idle_connections(1100) as conns:
        with pytest.raises(ValueError, match="FD_SETSIZE"):
            readiness.wait_cost("select", conns)


def test_edge_triggered_reports_once_level_triggered_until_drained():
    modes = readiness.trigger_modes(reads_between_waits=1)
    assert modes["level-triggered"] == [1, 1, 1]
    assert modes["edge-triggered"] == [1, 0, 0]
