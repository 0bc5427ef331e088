import os

import pytest

from ringhelpers import require_io_uring
from uringkit import env
from uringkit.ring import Ring


@pytest.fixture(scope="session")
def caps():
    return env.probe()


@pytest.fixture
def ring(caps):
    require_io_uring(caps)
    with Ring(64) as r:
        yield r


@pytest.fixture(autouse=True)
def _no_fd_leak(request):
    """Every test leaves the process's file descriptors as it found them."""
    before = set(os.listdir("/proc/self/fd"))
    yield
    leaked = set(os.listdir("/proc/self/fd")) - before
    targets = {fd: os.readlink(f"/proc/self/fd/{fd}") for fd in leaked if os.path.exists(f"/proc/self/fd/{fd}")}
    assert not targets, f"file descriptors leaked: {targets}"
