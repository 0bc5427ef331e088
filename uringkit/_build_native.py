"""cffi builder for ``uringkit._native``: liburing plus the C in ``native/``, out-of-line API mode.

API mode means a C compiler checks every declaration below against the real headers: structs are declared
partially (``...;``) and constants as ``#define X ...``, so field offsets and flag values come from the kernel's
own ``io_uring.h`` rather than from numbers copied by hand.

The project's own C declares what Python may call between ``/* cffi-begin */`` and ``/* cffi-end */`` in its
headers (``native/*.h``, ``native/servers/*.h``); those blocks are appended to the cdef, so each declaration is
written once, in the header it belongs to.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent
NATIVE = ROOT / "native"

# --- <liburing/io_uring.h>: the kernel ABI -------------------------------------------------------------------
IO_URING_H = """
struct io_uring_sqe { uint8_t opcode; uint8_t flags; uint64_t user_data; ...; };
struct io_uring_cqe { uint64_t user_data; int32_t res; uint32_t flags; ...; };
struct io_uring_params { uint32_t sq_entries; uint32_t cq_entries; uint32_t flags; uint32_t features; ...; };

enum io_uring_op {
    IORING_OP_NOP, IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC, IORING_OP_READ_FIXED,
    IORING_OP_WRITE_FIXED, IORING_OP_POLL_ADD, IORING_OP_POLL_REMOVE, IORING_OP_SYNC_FILE_RANGE,
    IORING_OP_SENDMSG, IORING_OP_RECVMSG, IORING_OP_TIMEOUT, IORING_OP_TIMEOUT_REMOVE, IORING_OP_ACCEPT,
    IORING_OP_ASYNC_CANCEL, IORING_OP_LINK_TIMEOUT, IORING_OP_CONNECT, IORING_OP_FALLOCATE, IORING_OP_OPENAT,
    IORING_OP_CLOSE, IORING_OP_FILES_UPDATE, IORING_OP_STATX, IORING_OP_READ, IORING_OP_WRITE,
    IORING_OP_FADVISE, IORING_OP_MADVISE, IORING_OP_SEND, IORING_OP_RECV, IORING_OP_OPENAT2,
    IORING_OP_EPOLL_CTL, IORING_OP_SPLICE, IORING_OP_PROVIDE_BUFFERS, IORING_OP_REMOVE_BUFFERS, IORING_OP_TEE,
    IORING_OP_SHUTDOWN, IORING_OP_RENAMEAT, IORING_OP_UNLINKAT, IORING_OP_MKDIRAT, IORING_OP_SYMLINKAT,
    IORING_OP_LINKAT, IORING_OP_MSG_RING, IORING_OP_FSETXATTR, IORING_OP_SETXATTR, IORING_OP_FGETXATTR,
    IORING_OP_GETXATTR, IORING_OP_SOCKET, IORING_OP_URING_CMD, IORING_OP_SEND_ZC, IORING_OP_SENDMSG_ZC,
    IORING_OP_LAST, ...
};

#define IOSQE_FIXED_FILE ...
#define IOSQE_IO_DRAIN ...
#define IOSQE_IO_LINK ...
#define IOSQE_IO_HARDLINK ...
#define IOSQE_ASYNC ...
#define IOSQE_CQE_SKIP_SUCCESS ...

#define IORING_SETUP_SQPOLL ...
#define IORING_SETUP_COOP_TASKRUN ...
#define IORING_SETUP_SINGLE_ISSUER ...

#define IORING_CQE_F_MORE ...
#define IORING_CQE_F_SOCK_NONEMPTY ...

#define IORING_TIMEOUT_ETIME_SUCCESS ...
#define IORING_ASYNC_CANCEL_ALL ...
#define IORING_ASYNC_CANCEL_ANY ...
#define IORING_ASYNC_CANCEL_FD ...
#define IORING_FSYNC_DATASYNC ...

#define IORING_FEAT_NODROP ...
#define IORING_FEAT_FAST_POLL ...
#define IORING_FEAT_EXT_ARG ...
"""

# --- <liburing.h>: probe, submission, registration (preparing SQEs goes through native/ring.h's uk_prep_*) ------
LIBURING_H = """
struct io_uring { uint32_t flags; int ring_fd; uint32_t features; ...; };
struct io_uring_probe { uint8_t last_op; ...; };

struct io_uring_probe *io_uring_get_probe_ring(struct io_uring *ring);
void io_uring_free_probe(struct io_uring_probe *probe);
int io_uring_opcode_supported(const struct io_uring_probe *p, int op);

int io_uring_submit(struct io_uring *ring);
int io_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr);
unsigned io_uring_sq_ready(const struct io_uring *ring);
unsigned io_uring_sq_space_left(const struct io_uring *ring);
unsigned io_uring_cq_ready(const struct io_uring *ring);

int io_uring_register_buffers(struct io_uring *ring, const struct iovec *iovecs, unsigned nr_iovecs);
int io_uring_unregister_buffers(struct io_uring *ring);
int io_uring_register_files(struct io_uring *ring, const int *files, unsigned nr_files);
int io_uring_unregister_files(struct io_uring *ring);

"""

# --- <sys/uio.h>, <sys/socket.h>, <linux/stat.h>, <linux/time_types.h>: the argument types the preps take --------
SYSTEM_H = """
typedef int... mode_t;
typedef int... socklen_t;
struct iovec { void *iov_base; size_t iov_len; };
struct sockaddr { ...; };
struct __kernel_timespec { int64_t tv_sec; long long tv_nsec; };
struct statx_timestamp { int64_t tv_sec; uint32_t tv_nsec; ...; };
struct statx {
    uint32_t stx_mask; uint32_t stx_blksize; uint64_t stx_attributes; uint32_t stx_nlink; uint32_t stx_uid;
    uint32_t stx_gid; uint16_t stx_mode; uint64_t stx_ino; uint64_t stx_size; uint64_t stx_blocks;
    struct statx_timestamp stx_mtime; ...;
};
#define STATX_BASIC_STATS ...
#define AT_FDCWD ...
#define AT_EMPTY_PATH ...
"""

SOURCE_PRELUDE = """
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <liburing.h>
"""

CFFI_BLOCK = re.compile(r"/\* cffi-begin \*/(.*?)/\* cffi-end \*/", re.S)


def _pkg_config(*args):
    """Ask pkg-config about liburing; empty when pkg-config or the .pc file is missing (conda puts it elsewhere)."""
    if not shutil.which("pkg-config"):
        return ""
    proc = subprocess.run(["pkg-config", *args, "liburing"], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def native_headers():
    """Every project header that declares a cffi block, in a stable order (ring first: others may use it)."""
    headers = sorted(NATIVE.rglob("*.h"), key=lambda p: (p.name != "ring.h", str(p)))
    return [h for h in headers if CFFI_BLOCK.search(h.read_text())]


def native_sources():
    return sorted(str(p.relative_to(ROOT)) for p in NATIVE.rglob("*.c"))


def _cdef():
    blocks = [CFFI_BLOCK.search(h.read_text()).group(1) for h in native_headers()]
    return SYSTEM_H + IO_URING_H + LIBURING_H + "\n".join(blocks)


def _source():
    includes = "".join(f'#include "{h.relative_to(NATIVE)}"\n' for h in native_headers())
    version = _pkg_config("--modversion") or "unknown"
    return SOURCE_PRELUDE + f'static const char UK_LIBURING_VERSION[] = "{version}";\n' + includes + \
        "const char *uk_liburing_version(void) { return UK_LIBURING_VERSION; }\n"


ffibuilder = FFI()
ffibuilder.cdef(_cdef() + "\nconst char *uk_liburing_version(void);\n")
ffibuilder.set_source(
    "uringkit._native",
    _source(),
    sources=native_sources(),
    include_dirs=[str(NATIVE)] + [f[2:] for f in _pkg_config("--cflags-only-I").split()],
    library_dirs=[f[2:] for f in _pkg_config("--libs-only-L").split()],
    libraries=["uring", "pthread"],
    # -O2 because the servers and the load generator are measured; the warnings because they are read.
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                        "-Wno-missing-field-initializers"],
)

if __name__ == "__main__":
    os.chdir(ROOT)
    ffibuilder.compile(verbose=True)
