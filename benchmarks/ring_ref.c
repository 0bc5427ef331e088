/* ring_ref.c - the C liburing reference for benchmarks/ring.py: the same loops as the Python columns, in C.
 *
 *   ring_ref nop BATCH WARMUP SECONDS     NOP round trips: BATCH SQEs, submit_and_wait(BATCH), reap them all
 *   ring_ref read PATH QD WARMUP SECONDS  4 KiB reads at sequential 4 KiB offsets (wrapping at the file's end),
 *                                         QD at a time: QD SQEs, submit_and_wait(QD), reap them all
 *
 * Each SQE carries its index as user_data and each CQE is checked (user_data for NOPs, res == 4096 for reads),
 * as the Python loops do. The loop first runs untimed for WARMUP seconds, as every Python loop does, then
 * prints "OPS SECONDS" for a timed run of about SECONDS. Built by benchmarks/ring.py with gcc -O2 ... -luring.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096
#define CHUNK 256 /* batches between two clock reads: a clock read per NOP would be a tenth of its cost */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* The same setup as uringkit's Ring(64): COOP_TASKRUN where the kernel has it (5.19+), so only the binding differs. */
static int setup(struct io_uring *ring)
{
    int ret = io_uring_queue_init(64, ring, IORING_SETUP_COOP_TASKRUN);
    return ret == -EINVAL ? io_uring_queue_init(64, ring, 0) : ret;
}

static void die(const char *what, int err)
{
    fprintf(stderr, "ring_ref: %s: %s\n", what, strerror(err < 0 ? -err : err));
    exit(1);
}

/* Reap exactly n CQEs (they are all there after submit_and_wait(n)); check each with ok(). */
static void reap(struct io_uring *ring, unsigned n, int (*ok)(const struct io_uring_cqe *))
{
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(ring, head, cqe) {
        if (!ok(cqe))
            die("unexpected completion", cqe->res < 0 ? cqe->res : EIO);
        seen++;
    }
    if (seen != n)
        die("lost completions", EIO);
    io_uring_cq_advance(ring, seen);
}

static int nop_ok(const struct io_uring_cqe *cqe) { return cqe->res == 0 && cqe->user_data < 1024; }
static int read_ok(const struct io_uring_cqe *cqe) { return cqe->res == BLOCK; }

static long run_nop(struct io_uring *ring, unsigned batch, double seconds, double *elapsed)
{
    long ops = 0;
    double t0 = now(), t;
    do {
        for (int c = 0; c < CHUNK; c++) {
            for (unsigned i = 0; i < batch; i++) {
                struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
                io_uring_prep_nop(sqe);
                io_uring_sqe_set_data64(sqe, i);
            }
            int ret = io_uring_submit_and_wait(ring, batch);
            if (ret < 0)
                die("io_uring_submit_and_wait", ret);
            reap(ring, batch, nop_ok);
            ops += batch;
        }
        t = now();
    } while (t - t0 < seconds);
    *elapsed = t - t0;
    return ops;
}

static long run_read(struct io_uring *ring, const char *path, unsigned qd, double seconds, double *elapsed)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        die(path, errno);
    long blocks = st.st_size / BLOCK, next = 0, ops = 0;
    char *buf = aligned_alloc(BLOCK, (size_t)qd * BLOCK);
    if (!buf || blocks < 1)
        die("setup", ENOMEM);
    double t0 = now(), t;
    do {
        for (int c = 0; c < CHUNK / 8; c++) {
            for (unsigned i = 0; i < qd; i++) {
                struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
                io_uring_prep_read(sqe, fd, buf + (size_t)i * BLOCK, BLOCK, (unsigned long long)next * BLOCK);
                io_uring_sqe_set_data64(sqe, i);
                next = next + 1 == blocks ? 0 : next + 1;
            }
            int ret = io_uring_submit_and_wait(ring, qd);
            if (ret < 0)
                die("io_uring_submit_and_wait", ret);
            reap(ring, qd, read_ok);
            ops += qd;
        }
        t = now();
    } while (t - t0 < seconds);
    *elapsed = t - t0;
    free(buf);
    close(fd);
    return ops;
}

int main(int argc, char **argv)
{
    struct io_uring ring;
    double elapsed = 0;
    long ops;
    int ret;

    if (argc == 5 && !strcmp(argv[1], "nop")) {
        unsigned batch = (unsigned)atoi(argv[2]);
        if ((ret = setup(&ring)) < 0)
            die("io_uring_queue_init", ret);
        run_nop(&ring, batch, atof(argv[3]), &elapsed);
        ops = run_nop(&ring, batch, atof(argv[4]), &elapsed);
    } else if (argc == 6 && !strcmp(argv[1], "read")) {
        unsigned qd = (unsigned)atoi(argv[3]);
        if ((ret = setup(&ring)) < 0)
            die("io_uring_queue_init", ret);
        run_read(&ring, argv[2], qd, atof(argv[4]), &elapsed);
        ops = run_read(&ring, argv[2], qd, atof(argv[5]), &elapsed);
    } else {
        fprintf(stderr, "usage: ring_ref nop BATCH WARMUP SECONDS | ring_ref read PATH QD WARMUP SECONDS\n");
        return 2;
    }
    io_uring_queue_exit(&ring);
    printf("%ld %.6f\n", ops, elapsed);
    return 0;
}
