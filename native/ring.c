/* ring.c - batched fast paths over liburing for uringkit.ring (see ring.h for the user_data codec). */
#define _GNU_SOURCE /* struct statx */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"

_Static_assert(UK_REAP_MAX == sizeof(((struct uk_reaped *)0)->res) / sizeof(int32_t),
               "UK_REAP_MAX must match the arrays cffi sees in struct uk_reaped");

struct uk_ring {
    struct io_uring ring;
    struct uk_reaped out;
    int32_t *batch_res[UK_MAX_BATCHES];  /* where each batch's results go; NULL = slot free */
    uint32_t batch_n[UK_MAX_BATCHES];    /* operations prepared in the batch (bounds the index) */
    uint32_t batch_left[UK_MAX_BATCHES]; /* completions still to come */
    uint64_t last_token;                 /* the single-op token handed out last (0: none yet) */
};

struct uk_ring *uk_ring_new(unsigned entries, unsigned setup_flags, unsigned sq_thread_idle_ms, int *err)
{
    struct io_uring_params p;
    struct uk_ring *r = calloc(1, sizeof *r);
    if (!r) {
        *err = -ENOMEM;
        return NULL;
    }
    memset(&p, 0, sizeof p);
    p.flags = setup_flags;
    p.sq_thread_idle = sq_thread_idle_ms;
    *err = io_uring_queue_init_params(entries, &r->ring, &p);
    if (*err < 0) {
        free(r);
        return NULL;
    }
    return r;
}

void uk_ring_free(struct uk_ring *r)
{
    if (!r)
        return;
    io_uring_queue_exit(&r->ring);
    free(r);
}

struct io_uring *uk_ring_io(struct uk_ring *r) { return &r->ring; }

struct uk_reaped *uk_ring_out(struct uk_ring *r) { return &r->out; }

unsigned uk_cq_entries(struct uk_ring *r) { return r->ring.cq.ring_entries; }

unsigned uk_defer_taskrun_flags(void) { return IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN; }

/* A free SQE, handing the queued ones to the kernel first when the submission queue is full, so that a burst
 * larger than the ring is submitted in pieces rather than lost. With SQPOLL the poller thread, not our submit,
 * frees the slots, and the kernel's SQ_WAIT may wake before one is free: wait again until one is. NULL only if
 * the kernel refuses (an error, or a submit that takes nothing). */
struct io_uring_sqe *uk_get_sqe(struct uk_ring *r)
{
    struct io_uring_sqe *sqe;
    while (!(sqe = io_uring_get_sqe(&r->ring))) {
        int ret = io_uring_submit(&r->ring);
        if (ret < 0)
            return NULL;
        if (r->ring.flags & IORING_SETUP_SQPOLL) {
            ret = io_uring_sqring_wait(&r->ring);
            if (ret < 0 && ret != -EINTR)
                return NULL;
        } else if (ret == 0) {
            return NULL;
        }
    }
    return sqe;
}

/* Room for n SQEs in a row, submitting the queued ones first if need be (as uk_get_sqe does for one): a linked
 * chain must be queued whole, because a submit between its SQEs would end the chain there. */
static int make_room(struct uk_ring *r, unsigned n)
{
    while (io_uring_sq_space_left(&r->ring) < n) {
        int ret = io_uring_submit(&r->ring);
        if (ret < 0)
            return ret;
        if (r->ring.flags & IORING_SETUP_SQPOLL) {
            ret = io_uring_sqring_wait(&r->ring);
            if (ret < 0 && ret != -EINTR)
                return ret;
        } else if (ret == 0) {
            return -EBUSY;
        }
    }
    return 0;
}

void uk_sqe_finish(struct io_uring_sqe *sqe, uint64_t user_data, unsigned sqe_flags)
{
    io_uring_sqe_set_data64(sqe, user_data);
    io_uring_sqe_set_flags(sqe, sqe_flags);
}

/* PREP(call) takes an SQE, runs liburing's prep helper on it, then stamps the next token and the flags (after
 * the helper, which clears sqe->flags), and returns the token. Spelled out once here so each wrapper below is the
 * liburing call and nothing else. The token is consumed only once the SQE is sure to be queued. */
#define PREP(call)                                                                                                \
    do {                                                                                                          \
        struct io_uring_sqe *sqe;                                                                                 \
        uint64_t token;                                                                                           \
        if (!r)                                                                                                   \
            return -EBADFD; /* the Python Ring was closed */                                                      \
        sqe = uk_get_sqe(r);                                                                                      \
        if (!sqe)                                                                                                 \
            return -EBUSY;                                                                                        \
        call;                                                                                                     \
        token = ++r->last_token | (fl & IOSQE_CQE_SKIP_SUCCESS ? UK_SKIP_BIT : 0);                                \
        uk_sqe_finish(sqe, token, fl);                                                                            \
        return (int64_t)token;                                                                                    \
    } while (0)

int64_t uk_prep_nop(struct uk_ring *r, unsigned fl) { PREP(io_uring_prep_nop(sqe)); }
int64_t uk_prep_read(struct uk_ring *r, unsigned fl, int fd, void *buf, unsigned n, uint64_t off)
{ PREP(io_uring_prep_read(sqe, fd, buf, n, off)); }
int64_t uk_prep_write(struct uk_ring *r, unsigned fl, int fd, const void *buf, unsigned n, uint64_t off)
{ PREP(io_uring_prep_write(sqe, fd, buf, n, off)); }
int64_t uk_prep_readv(struct uk_ring *r, unsigned fl, int fd, const struct iovec *iov, unsigned n, uint64_t off)
{ PREP(io_uring_prep_readv(sqe, fd, iov, n, off)); }
int64_t uk_prep_writev(struct uk_ring *r, unsigned fl, int fd, const struct iovec *iov, unsigned n, uint64_t off)
{ PREP(io_uring_prep_writev(sqe, fd, iov, n, off)); }
int64_t uk_prep_read_fixed(struct uk_ring *r, unsigned fl, int fd, void *buf, unsigned n, uint64_t off,
                           int buf_index)
{ PREP(io_uring_prep_read_fixed(sqe, fd, buf, n, off, buf_index)); }
int64_t uk_prep_write_fixed(struct uk_ring *r, unsigned fl, int fd, const void *buf, unsigned n, uint64_t off,
                            int buf_index)
{ PREP(io_uring_prep_write_fixed(sqe, fd, buf, n, off, buf_index)); }
int64_t uk_prep_openat(struct uk_ring *r, unsigned fl, int dfd, const char *path, int flags, unsigned mode)
{ PREP(io_uring_prep_openat(sqe, dfd, path, flags, mode)); }
int64_t uk_prep_close(struct uk_ring *r, unsigned fl, int fd) { PREP(io_uring_prep_close(sqe, fd)); }
int64_t uk_prep_fsync(struct uk_ring *r, unsigned fl, int fd, unsigned fsync_flags)
{ PREP(io_uring_prep_fsync(sqe, fd, fsync_flags)); }
int64_t uk_prep_statx(struct uk_ring *r, unsigned fl, int dfd, const char *path, int flags, unsigned mask,
                      struct statx *out)
{ PREP(io_uring_prep_statx(sqe, dfd, path, flags, mask, out)); }
int64_t uk_prep_accept(struct uk_ring *r, unsigned fl, int fd, int multishot, int sock_flags)
{
    if (multishot)
        PREP(io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, sock_flags));
    PREP(io_uring_prep_accept(sqe, fd, NULL, NULL, sock_flags));
}
int64_t uk_prep_connect(struct uk_ring *r, unsigned fl, int fd, const struct sockaddr *addr, unsigned addrlen)
{ PREP(io_uring_prep_connect(sqe, fd, addr, addrlen)); }
int64_t uk_prep_recv(struct uk_ring *r, unsigned fl, int fd, void *buf, size_t n, int msg_flags)
{ PREP(io_uring_prep_recv(sqe, fd, buf, n, msg_flags)); }
int64_t uk_prep_send(struct uk_ring *r, unsigned fl, int fd, const void *buf, size_t n, int msg_flags)
{ PREP(io_uring_prep_send(sqe, fd, buf, n, msg_flags)); }
int64_t uk_prep_timeout(struct uk_ring *r, unsigned fl, struct __kernel_timespec *ts, unsigned count)
{ PREP(io_uring_prep_timeout(sqe, ts, count, 0)); }
int64_t uk_prep_link_timeout(struct uk_ring *r, unsigned fl, struct __kernel_timespec *ts)
{ PREP(io_uring_prep_link_timeout(sqe, ts, 0)); }
int64_t uk_prep_cancel(struct uk_ring *r, unsigned fl, uint64_t target, int cancel_flags)
{ PREP(io_uring_prep_cancel64(sqe, target, cancel_flags)); }
int64_t uk_prep_poll_add(struct uk_ring *r, unsigned fl, int fd, unsigned mask)
{ PREP(io_uring_prep_poll_add(sqe, fd, mask)); }

int64_t uk_prep_send_recv(struct uk_ring *r, int fd, const void *sbuf, size_t slen, void *rbuf, size_t rlen)
{
    struct io_uring_sqe *send, *recv;
    uint64_t token;
    if (!r)
        return -EBADFD;
    if (make_room(r, 2) < 0)
        return -EBUSY;
    send = io_uring_get_sqe(&r->ring);
    recv = io_uring_get_sqe(&r->ring);
    io_uring_prep_send(send, fd, sbuf, slen, MSG_WAITALL);
    io_uring_prep_recv(recv, fd, rbuf, rlen, 0);
    token = ++r->last_token;
    uk_sqe_finish(send, token | UK_SKIP_BIT | UK_TURN_SEND_BIT, IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS);
    uk_sqe_finish(recv, token, 0);
    return (int64_t)token;
}

static void settle_batch_cqe(struct uk_ring *r, const struct io_uring_cqe *cqe)
{
    unsigned slot = (unsigned)(cqe->user_data >> 32) & 0xffff;
    uint32_t idx = (uint32_t)cqe->user_data;
    if (slot >= UK_MAX_BATCHES || !r->batch_res[slot] || idx >= r->batch_n[slot])
        return; /* not ours (cannot happen unless user_data was forged): drop rather than scribble */
    r->batch_res[slot][idx] = cqe->res;
    if (--r->batch_left[slot] == 0) {
        r->out.batches_done[r->out.n_batches_done++] = slot;
        r->batch_res[slot] = NULL;
    }
}

/* Consume every ready CQE, appending to r->out: batch results go straight into their batch's array, single-op
 * completions into r->out's arrays (stopping when those are full: the rest stay in the CQ for the next call). */
static void reap_ready(struct uk_ring *r)
{
    struct io_uring_cqe *cqe;
    unsigned head, count = 0;

    io_uring_for_each_cqe(&r->ring, head, cqe) {
        if (cqe->user_data == LIBURING_UDATA_TIMEOUT) {
            /* liburing's own wait timeout (old kernels only): not a request of ours */
        } else if (cqe->user_data & UK_BATCH_BIT) {
            settle_batch_cqe(r, cqe);
        } else {
            unsigned k = r->out.n;
            if (k == UK_REAP_MAX)
                break;
            if (cqe->user_data & UK_TURN_SEND_BIT) { /* a failed send of a send_recv turn: the turn's result */
                r->out.user_data[k] = cqe->user_data & ~(UK_TURN_SEND_BIT | UK_SKIP_BIT);
                r->out.res[k] = cqe->res < 0 ? cqe->res : -ECONNRESET; /* >= 0: cut short after a part */
            } else {
                r->out.user_data[k] = cqe->user_data;
                r->out.res[k] = cqe->res;
            }
            r->out.flags[k] = cqe->flags;
            r->out.n = k + 1;
        }
        count++;
    }
    io_uring_cq_advance(&r->ring, count);
}

/* Submit what is queued and sleep until wait_nr completions are ready: one io_uring_enter. When a signal cuts
 * the sleep short after the kernel took the submissions, io_uring_enter reports the submissions, not -EINTR;
 * liburing's own loops would then sleep again, and Python would never run its handler (Ctrl-C ignored until
 * a completion arrives). So: a return with fewer than wait_nr completions ready is reported as -EINTR. */
static int submit_and_wait(struct uk_ring *r, unsigned wait_nr)
{
    int ret = io_uring_submit_and_wait(&r->ring, wait_nr);
    if (ret >= 0 && io_uring_cq_ready(&r->ring) < wait_nr)
        return -EINTR;
    return ret;
}

int uk_queue_batch(struct uk_ring *r, const struct uk_batch *b, unsigned slot, int wait)
{
    unsigned i;
    if (!r)
        return -EBADFD;
    if (slot >= UK_MAX_BATCHES || r->batch_res[slot])
        return -EINVAL;
    if ((b->op != UK_OP_NOP && (!b->buf || !b->offsets)) || b->n >= UK_BATCH_FINISHED_ALONE)
        return -EINVAL;
    for (i = 0; i < b->n; i++) {
        struct io_uring_sqe *sqe = uk_get_sqe(r);
        char *p = b->buf ? b->buf + (size_t)i * b->size : NULL;
        if (!sqe)
            break;
        switch (b->op) {
        case UK_OP_NOP: io_uring_prep_nop(sqe); break;
        case UK_OP_READ: io_uring_prep_read(sqe, b->fd, p, b->size, b->offsets[i]); break;
        case UK_OP_WRITE: io_uring_prep_write(sqe, b->fd, p, b->size, b->offsets[i]); break;
        case UK_OP_READ_FIXED:
            io_uring_prep_read_fixed(sqe, b->fd, p, b->size, b->offsets[i], b->buf_index);
            break;
        case UK_OP_WRITE_FIXED:
            io_uring_prep_write_fixed(sqe, b->fd, p, b->size, b->offsets[i], b->buf_index);
            break;
        default: return i ? (int)i : -EINVAL; /* Python checks op when it builds the batch; belt and braces */
        }
        uk_sqe_finish(sqe, UK_BATCH_BIT | (uint64_t)slot << 32 | i, b->sqe_flags);
    }
    if (!i)
        return 0;
    r->batch_res[slot] = b->results;
    r->batch_n[slot] = i;
    r->batch_left[slot] = i;
    if (!wait || i < b->n)
        return (int)i;
    /* wait: submit and reap until this batch is done, so a queue-depth loop costs one call into C per batch.
     * A signal (-EINTR), an error or a full r->out ends the wait early; the batch then stays in flight and
     * Python waits for it the usual way. Whatever was reaped meanwhile is in r->out, as after uk_reap. */
    r->out.n = 0;
    r->out.n_batches_done = 0;
    while (r->batch_res[slot] && r->out.n < UK_REAP_MAX) {
        if (submit_and_wait(r, 1) < 0)
            break;
        reap_ready(r);
    }
    if (!r->batch_res[slot] && r->out.n == 0 && r->out.n_batches_done == 1)
        return (int)i | UK_BATCH_FINISHED_ALONE;
    return (int)i;
}

/* Optionally submit, optionally wait for wait_nr completions (timeout_ns < 0: no timeout), then consume every
 * ready CQE (reap_ready). Returns the number of single-op completions in r->out (finished batches are counted
 * in r->out.n_batches_done), or -errno (-EINTR included, so Python can run its signal handlers and retry). */
int uk_reap(struct uk_ring *r, int submit, unsigned wait_nr, int64_t timeout_ns)
{
    struct io_uring_cqe *cqe;
    int ret;

    if (!r)
        return -EBADFD;
    if (wait_nr > r->ring.cq.ring_entries)
        wait_nr = r->ring.cq.ring_entries; /* more could never be ready at once: the caller loops for the rest */
    if (wait_nr) {
        struct __kernel_timespec ts, *tsp = NULL;
        if (timeout_ns >= 0) {
            ts.tv_sec = timeout_ns / 1000000000;
            ts.tv_nsec = timeout_ns % 1000000000;
            tsp = &ts;
        }
        if (submit && !tsp)
            ret = submit_and_wait(r, wait_nr);
        else if (submit)
            ret = io_uring_submit_and_wait_timeout(&r->ring, &cqe, wait_nr, tsp, NULL);
        else
            ret = io_uring_wait_cqes(&r->ring, &cqe, wait_nr, tsp, NULL);
        if (ret < 0 && ret != -ETIME) /* -ETIME: the wait timed out; take what is there */
            return ret;
    } else {
        if (submit && (ret = io_uring_submit(&r->ring)) < 0)
            return ret;
        /* With DEFER_TASKRUN the kernel posts completions only while we are inside io_uring_enter: a look that
         * did not enter would never see one. */
        if (r->ring.flags & IORING_SETUP_DEFER_TASKRUN && (ret = io_uring_get_events(&r->ring)) < 0)
            return ret;
    }
    r->out.n = 0;
    r->out.n_batches_done = 0;
    reap_ready(r);
    return (int)r->out.n;
}

int uk_reap_one(struct uk_ring *r) { return uk_reap(r, 1, 1, -1); }

int64_t uk_wait_one(struct uk_ring *r)
{
    int n = uk_reap(r, 1, 1, -1);
    if (n == 1 && r->out.n_batches_done == 0)
        return (int64_t)r->out.user_data[0];
    return n < 0 ? n : 0;
}
