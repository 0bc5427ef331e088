/* ring.h - batched fast paths over liburing for uringkit.ring.
 *
 * Python pays roughly 0.1-0.2 us per call into C, so a loop that prepares one SQE and reaps one CQE per Python
 * call spends more time in the interpreter than in the kernel. These helpers move the two hot loops into C:
 * preparing many reads/writes/NOPs at once (uk_queue_batch) and reaping every ready completion at once (uk_reap).
 * A request/response server gets one more: uk_prep_send_recv prepares a whole turn (two linked SQEs, one
 * completion when it goes well), halving both the calls into C and the completions Python handles per request.
 *
 * user_data layout (the codec; uringkit/ring.py mirrors it):
 *
 *   63 62 61       48 47            32 31                              0
 *  +--+--+-----------+----------------+--------------------------------+
 *  | 1| 0| reserved  |   batch slot   |        index within batch      |   batch operation
 *  +--+--+-----------+----------------+--------------------------------+
 *  | 0| S| T|                  token (61 bits)                         |   single operation
 *  +--+--+--+----------------------------------------------------------+
 *
 * Single-op tokens are handed out here, counting up from 1, never reused within a ring. S (UK_SKIP_BIT) is set
 * when the SQE carries IOSQE_CQE_SKIP_SUCCESS: such an operation posts no completion if it succeeds, so Python
 * must not wait for one (close() would otherwise stall) and cannot tell when its buffers are free.
 * T (UK_TURN_SEND_BIT) marks the send half of a uk_prep_send_recv turn; it shares its token with the turn's recv,
 * and reap_ready reports its completion (posted only if the send fails) under that token.
 * All ones (LIBURING_UDATA_TIMEOUT) is liburing's own internal timeout on kernels without EXT_ARG: skipped.
 */
#ifndef URINGKIT_RING_H
#define URINGKIT_RING_H

#include <stdint.h>
#include <liburing.h>

#define UK_BATCH_BIT (1ULL << 63)
#define UK_SKIP_BIT (1ULL << 62)
#define UK_TURN_SEND_BIT (1ULL << 61)
#define UK_MAX_BATCHES 1024  /* batches in flight at once; each costs 16 bytes here */
#define UK_REAP_MAX 1024     /* single-op completions returned by one uk_reap call */

/* cffi-begin */
enum uk_batch_op { UK_OP_NOP, UK_OP_READ, UK_OP_WRITE, UK_OP_READ_FIXED, UK_OP_WRITE_FIXED };

struct uk_reaped {
    unsigned n;                 /* single-op completions below */
    unsigned n_batches_done;    /* batches whose last completion arrived in this call */
    uint64_t user_data[1024];   /* 1024 == UK_REAP_MAX (cffi's cdef cannot read macros) */
    int32_t res[1024];
    uint32_t flags[1024];
    uint32_t batches_done[1024];
};

struct uk_ring;  /* opaque: a struct io_uring plus the batch table and the reap buffer */

struct uk_ring *uk_ring_new(unsigned entries, unsigned setup_flags, unsigned sq_thread_idle_ms, int *err);
void uk_ring_free(struct uk_ring *r);
struct io_uring *uk_ring_io(struct uk_ring *r);
struct uk_reaped *uk_ring_out(struct uk_ring *r);
unsigned uk_cq_entries(struct uk_ring *r);  /* the completion queue's size: no wait can ask for more at once */
/* IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN (the kernel wants both): a function, because the
 * cdef may hold no macro this project defines by value. With DEFER_TASKRUN the kernel posts completions only
 * while the ring's thread is inside io_uring_enter, batched, which makes each cheaper; so uk_reap enters the
 * kernel even to look (io_uring_get_events) on such a ring. */
unsigned uk_defer_taskrun_flags(void);
struct io_uring_sqe *uk_get_sqe(struct uk_ring *r);
void uk_sqe_finish(struct io_uring_sqe *sqe, uint64_t user_data, unsigned sqe_flags);
/* One call per operation: take an SQE (submitting first if the queue is full), prepare it with liburing's
 * helper, stamp the next token (see the codec above) and the flags. Returns the token (> 0), -EBUSY if no SQE
 * could be had, or -EBADFD if r is NULL (the Python Ring was closed: it swaps its pointer for NULL, so a use
 * after close is an error, never a crash). */
int64_t uk_prep_nop(struct uk_ring *r, unsigned fl);
int64_t uk_prep_read(struct uk_ring *r, unsigned fl, int fd, void *buf, unsigned n, uint64_t off);
int64_t uk_prep_write(struct uk_ring *r, unsigned fl, int fd, const void *buf, unsigned n, uint64_t off);
int64_t uk_prep_readv(struct uk_ring *r, unsigned fl, int fd, const struct iovec *iov, unsigned n, uint64_t off);
int64_t uk_prep_writev(struct uk_ring *r, unsigned fl, int fd, const struct iovec *iov, unsigned n, uint64_t off);
int64_t uk_prep_read_fixed(struct uk_ring *r, unsigned fl, int fd, void *buf, unsigned n, uint64_t off,
                           int buf_index);
int64_t uk_prep_write_fixed(struct uk_ring *r, unsigned fl, int fd, const void *buf, unsigned n, uint64_t off,
                            int buf_index);
int64_t uk_prep_openat(struct uk_ring *r, unsigned fl, int dfd, const char *path, int flags, unsigned mode);
int64_t uk_prep_close(struct uk_ring *r, unsigned fl, int fd);
int64_t uk_prep_fsync(struct uk_ring *r, unsigned fl, int fd, unsigned fsync_flags);
int64_t uk_prep_statx(struct uk_ring *r, unsigned fl, int dfd, const char *path, int flags, unsigned mask,
                      struct statx *out);
int64_t uk_prep_accept(struct uk_ring *r, unsigned fl, int fd, int multishot, int sock_flags);
int64_t uk_prep_connect(struct uk_ring *r, unsigned fl, int fd, const struct sockaddr *addr, unsigned addrlen);
int64_t uk_prep_recv(struct uk_ring *r, unsigned fl, int fd, void *buf, size_t n, int msg_flags);
int64_t uk_prep_send(struct uk_ring *r, unsigned fl, int fd, const void *buf, size_t n, int msg_flags);
int64_t uk_prep_timeout(struct uk_ring *r, unsigned fl, struct __kernel_timespec *ts, unsigned count);
int64_t uk_prep_link_timeout(struct uk_ring *r, unsigned fl, struct __kernel_timespec *ts);
int64_t uk_prep_cancel(struct uk_ring *r, unsigned fl, uint64_t target, int cancel_flags);
int64_t uk_prep_poll_add(struct uk_ring *r, unsigned fl, int fd, unsigned mask);
/* A request/response server's turn in one call: send(2) all of sbuf (MSG_WAITALL: the kernel retries a short
 * send itself, so the send either sends everything or fails), linked to a recv(2) into rbuf that starts once the
 * send is done. The send carries IOSQE_CQE_SKIP_SUCCESS, so a turn that goes well posts one completion, the
 * recv's, instead of two, and costs one call into C instead of two (the io_uring server's hot path).
 * If the send fails, the kernel posts the send's completion and cancels the recv without posting one (a failed
 * CQE_SKIP_SUCCESS head skips the CQEs of the links it cancels); reap_ready reports that completion under the
 * turn's token, with the send's -errno (-ECONNRESET if it failed after sending a part), so a turn always
 * completes exactly once from Python's point of view (a kernel that did post the recv's -ECANCELED too would
 * have it dropped by Python, whose table no longer holds the token). Returns the token; the send's user_data
 * is token | UK_SKIP_BIT | UK_TURN_SEND_BIT (a cancel target). Errors as for uk_prep_nop. */
int64_t uk_prep_send_recv(struct uk_ring *r, int fd, const void *sbuf, size_t slen, void *rbuf, size_t rlen);

/* A batch: n operations of one kind; operation i works on buf + i * size at offsets[i] (unused for NOPs) and its
 * result lands in results[i]. Python builds one once (uringkit.ring.Batch) and may queue it again and again, so
 * a queue-depth loop converts no buffer and allocates nothing per round: it pays one call into C with 4 arguments
 * (cffi converts each argument on every call; a dozen of them cost a third of a microsecond). */
struct uk_batch {
    int op;                   /* enum uk_batch_op */
    int fd;
    char *buf;
    unsigned size;
    unsigned n;
    unsigned sqe_flags;
    int buf_index;            /* the registered buffer of READ_FIXED/WRITE_FIXED */
    const uint64_t *offsets;
    int32_t *results;
};

/* Queue batch b as batch `slot`; returns how many operations were prepared (n unless the kernel refused to take
 * queued entries half-way), or -errno. With wait, also submit and reap until the batch is done (see ring.c),
 * leaving r->out as uk_reap does; if that reap brought this batch's completions and nothing else, the count
 * carries UK_BATCH_FINISHED_ALONE: the batch is done, its slot free again, and the caller has nothing to settle
 * (a queue-depth loop's usual round, which then costs Python no bookkeeping at all). */
#define UK_BATCH_FINISHED_ALONE 0x40000000  /* above any n a batch may have (n < this) */
int uk_queue_batch(struct uk_ring *r, const struct uk_batch *b, unsigned slot, int wait);
int uk_reap(struct uk_ring *r, int submit, unsigned wait_nr, int64_t timeout_ns);
/* uk_reap(r, 1, 1, -1), the hot path of a request/response loop, with one argument: cffi packs the arguments of
 * a call with several into a tuple and converts each, which costs more than half of a four-argument call. */
int uk_reap_one(struct uk_ring *r);
/* uk_reap_one for Ring.wait_cqe: when what it reaped is exactly one single-op completion (the usual case when one
 * operation is in flight), returns that completion's token (> 0), so Python reads back only res and flags;
 * otherwise 0 (r->out holds what was reaped, as after uk_reap) or -errno. */
int64_t uk_wait_one(struct uk_ring *r);
/* cffi-end */

#endif
