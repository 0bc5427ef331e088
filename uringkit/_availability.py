"""Why io_uring is unavailable, in one line a reader can act on (shared by ``ring`` and ``env``)."""

import errno
import os

DISABLE_SWITCH = "URINGKIT_DISABLE_IO_URING"  # =1: behave as if the kernel refused io_uring (degraded-mode tests)
SYSCTL = "/proc/sys/kernel/io_uring_disabled"  # exists since Linux 6.6


def disabled_reason() -> str | None:
    """A reason when io_uring is switched off for this process before any system call is made, else None."""
    if os.environ.get(DISABLE_SWITCH, "") not in ("", "0"):
        return f"io_uring switched off by {DISABLE_SWITCH}={os.environ[DISABLE_SWITCH]} (simulating a kernel without it)"
    return None


def _sysctl() -> int | None:
    try:
        with open(SYSCTL) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def explain_setup_errno(err: int) -> str | None:
    """Explain an io_uring_setup(2) failure that means 'not here', or None for ordinary errors."""
    if err == errno.ENOSYS:
        return "this kernel has no io_uring (older than 5.1, or built with CONFIG_IO_URING=n)"
    if err == errno.EPERM:
        level = _sysctl()
        if level == 2:
            return "io_uring is disabled for everyone by sysctl kernel.io_uring_disabled=2"
        if level == 1:
            return ("io_uring is limited to the group in kernel.io_uring_group "
                    "(sysctl kernel.io_uring_disabled=1) and this process is not in it")
        return "io_uring_setup is refused with EPERM: a seccomp filter (container runtime or sandbox) blocks it"
    if err == errno.ENOMEM:
        return "the locked-memory limit (ulimit -l) is too small for a ring (kernels before 5.12 charge rings to it)"
    return None
