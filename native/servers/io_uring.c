/* io_uring.c - the io_uring server: one thread submits accepts, receives, sends, file reads and timers to a
 * ring the kernel shares with it, and takes their completions in batches. Waiting and moving bytes cost one
 * io_uring_enter per loop for all connections together, and file reads are asynchronous too, but every buffer
 * belongs to an operation in flight until its completion arrives, which the state machine must respect.
 *
 * Try it:
 *   python -m uringkit.servers io_uring --impl c --port 8080
 *   curl -s localhost:8080/static/files/1mib.bin | wc -c
 *
 * Facts about io_uring a chapter can quote:
 * - Completion, not readiness: a recv completes with the bytes already in our buffer, so the connection state
 *   machine (conn.h) is driven by "this operation finished" rather than "this fd is ready".
 * - One io_uring_submit_and_wait per loop submits every SQE prepared since the last one and waits for at least
 *   one completion; all ready CQEs are then handled before the next syscall.
 * - Multishot accept (Linux 5.19) posts one CQE per connection from a single SQE; older kernels answer -EINVAL
 *   and we fall back to one accept SQE per connection.
 * - SINGLE_ISSUER + DEFER_TASKRUN (6.1) run completion work only when we wait, in our thread, without
 *   interrupts; COOP_TASKRUN (5.19) is the fallback; plain rings work everywhere.
 * - A regular file read (IORING_OP_READ) is asynchronous here, unlike read(2) after epoll said "ready".
 * - Timers are ring operations too: one IORING_OP_TIMEOUT (absolute, CLOCK_MONOTONIC) is armed for the
 *   earliest deadline of the shared timer heap, and moved with a timeout update when an earlier one appears.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "servers.h"

#define RING_ENTRIES 4096        /* SQEs per submit batch; a full SQ is submitted early, never dropped */
#define RING_CQ_ENTRIES 65536    /* room for one completion from each of 10,000s of connections at once */
#define SMALL_CHUNK (8 * 1024)   /* a typical page (index.html, style.css) and its head: one read, one send */
#define BIG_CHUNK (128 * 1024)   /* larger files are read through the ring and sent this much at a time */

/* user_data codec: the operation in the top byte, the connection's fd in the low 32 bits.
 *
 *   63      56 55                 32 31                                0
 *  +----------+---------------------+----------------------------------+
 *  |    op    |      (unused)       |               fd                 |
 *  +----------+---------------------+----------------------------------+
 *
 * A connection's fd is closed only once no operation of its own is in flight, so it cannot be reused while a
 * completion naming it is still to come. */
enum op { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_READ, OP_TIMEOUT, OP_IGNORED, OP_COUNT };

static uint64_t encode(enum op op, int fd) { return (uint64_t)op << 56 | (uint32_t)fd; }
static enum op decode_op(uint64_t ud) { return (enum op)(ud >> 56); }
static int decode_fd(uint64_t ud) { return (int)(uint32_t)ud; }

struct ring_server {
    struct uk_evserver srv;
    struct io_uring ring;
    int listen_fd;
    int multishot;                  /* multishot accept works on this kernel */
    int accepting;                  /* an accept SQE is in flight */
    int refuse_next;                /* out of fds: the reserve was closed, the next connection is refused */
    uint64_t timer_at;              /* deadline (ms) of the IORING_OP_TIMEOUT in flight, 0 if none */
    struct __kernel_timespec ts;    /* its expiry: must stay valid until submitted */
    void *free_chunks[2];           /* small and big chunk buffers not in use (lists through their heads) */
};

static struct io_uring_sqe *sqe_for(struct ring_server *rs, enum op op, int fd)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&rs->ring);
    if (!sqe) {  /* the SQ is full: submit what is queued to make room (the kernel has taken them by return) */
        io_uring_submit(&rs->ring);
        sqe = io_uring_get_sqe(&rs->ring);
    }
    if (sqe) /* io_uring_submit above emptied the SQ, so only a broken ring gets here with NULL */
        io_uring_sqe_set_data64(sqe, encode(op, fd));
    return sqe;
}

/* One operation on a connection: counted in flight so the fd stays open until its completion. */
static struct io_uring_sqe *conn_sqe(struct ring_server *rs, struct uk_conn *c, enum op op)
{
    struct io_uring_sqe *sqe = sqe_for(rs, op, c->fd);
    if (sqe)
        c->inflight++;
    return sqe;
}

static void arm_accept(struct ring_server *rs)
{
    struct io_uring_sqe *sqe = sqe_for(rs, OP_ACCEPT, rs->listen_fd);
    if (!sqe)
        return;
    if (rs->multishot)
        io_uring_prep_multishot_accept(sqe, rs->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    else
        io_uring_prep_accept(sqe, rs->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    rs->accepting = 1;
}

static const size_t chunk_size[2] = {SMALL_CHUNK, BIG_CHUNK};

/* Chunks are recycled (no malloc per request); two sizes keep 10,000 small transfers in flight at 8 KiB each. */
static int take_chunk(struct ring_server *rs, struct uk_conn *c, uint64_t need)
{
    int big = need > SMALL_CHUNK;
    char *p = rs->free_chunks[big];
    if (p)
        rs->free_chunks[big] = *(void **)p;
    else if (!(p = malloc(chunk_size[big])))
        return -1;
    c->chunk = p;
    c->chunk_pool = big;
    return 0;
}

static void release_chunk(struct ring_server *rs, struct uk_conn *c)
{
    if (c->chunk) {
        *(void **)c->chunk = rs->free_chunks[c->chunk_pool];
        rs->free_chunks[c->chunk_pool] = c->chunk;
        c->chunk = NULL;
    }
}

static void enter(struct ring_server *rs, struct uk_conn *c, enum uk_conn_state st);

static void send_bytes(struct ring_server *rs, struct uk_conn *c, const char *buf, size_t len)
{
    struct io_uring_sqe *sqe = conn_sqe(rs, c, OP_SEND);
    if (sqe)
        io_uring_prep_send(sqe, c->fd, buf, len, MSG_NOSIGNAL);
    else
        enter(rs, c, UK_CLOSE);
}

/* WRITE: the output buffer as is; with a file, the head goes first into a chunk the file read then fills. */
static void write_next(struct ring_server *rs, struct uk_conn *c)
{
    struct uk_http *h = &c->http;
    if (!h->file_left) {
        send_bytes(rs, c, h->out + h->out_start, h->out_end - h->out_start);
        return;
    }
    c->chunk_len = h->out_end - h->out_start;  /* < UK_HTTP_OUT_SIZE < SMALL_CHUNK */
    if (!c->chunk && take_chunk(rs, c, c->chunk_len + h->file_left) < 0) {
        enter(rs, c, UK_CLOSE);
        return;
    }
    memcpy(c->chunk, h->out + h->out_start, c->chunk_len);
    h->out_start = h->out_end;
    size_t want = chunk_size[c->chunk_pool] - c->chunk_len;
    if (want > h->file_left)
        want = (size_t)h->file_left;
    struct io_uring_sqe *sqe = conn_sqe(rs, c, OP_READ);
    if (!sqe) {
        enter(rs, c, UK_CLOSE);
        return;
    }
    io_uring_prep_read(sqe, h->file_fd, c->chunk + c->chunk_len, (unsigned)want, h->file_off);
}

/* Enter a state of the shared machine (conn.h) by submitting what it waits for. */
static void enter(struct ring_server *rs, struct uk_conn *c, enum uk_conn_state st)
{
    c->state = st;
    if (st == UK_READ || st == UK_LINGER) {
        char *at = c->http.in;
        /* LINGER only drains: the bytes go over the input buffer, which no request needs any more */
        size_t room = st == UK_LINGER ? sizeof c->http.in : uk_http_in_room(&c->http, &at);
        struct io_uring_sqe *sqe = conn_sqe(rs, c, OP_RECV);
        if (sqe)
            io_uring_prep_recv(sqe, c->fd, at, room, 0);
        else
            enter(rs, c, UK_CLOSE);
    } else if (st == UK_WRITE) {
        write_next(rs, c);
    } else if (st == UK_CLOSE) {
        if (c->inflight == 0) {
            release_chunk(rs, c);
            uk_conn_free(&rs->srv, c);
            return;
        }
        /* A timer closed it with an operation in flight: cancel it; its completion finishes the close. */
        struct io_uring_sqe *sqe = sqe_for(rs, OP_IGNORED, c->fd);
        if (sqe)
            io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
    }
    /* UK_DELAY: nothing to submit, the ring timer (arm_timer) wakes us */
}

/* --- completions, one handler per operation ------------------------------------------------------------------ */
static void on_accept(struct ring_server *rs, struct uk_conn *unused, int res, unsigned flags)
{
    if (!(flags & IORING_CQE_F_MORE))
        rs->accepting = 0;  /* single-shot, or the multishot ended (error, overflow): arm_accept again */
    if (res == -EINVAL && rs->multishot) {
        rs->multishot = 0;  /* a kernel before 5.19: one SQE per accept */
        return;
    }
    if (res == -EMFILE || res == -ENFILE) {
        struct uk_acceptor *a = &rs->srv.acceptor;
        if (a->reserve_fd >= 0) {
            close(a->reserve_fd);  /* the fd this frees lets the next accept succeed, and we refuse that one */
            a->reserve_fd = -1;
            rs->refuse_next = 1;
        } else {
            uk_sleep_ms(UK_BACKOFF_US / 1000);  /* nothing left to free: wait instead of spinning */
            a->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        }
        return;
    }
    if (res < 0)
        return;  /* ECONNABORTED, EINTR...: the next accept will do */
    if (rs->refuse_next) {
        close(res);
        UK_STAT(rs->srv.cfg, refused, 1);
        rs->srv.acceptor.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        rs->refuse_next = 0;
        return;
    }
    UK_STAT(rs->srv.cfg, accepted, 1);
    UK_STAT(rs->srv.cfg, open_connections, 1);
    struct uk_conn *c = uk_conn_new(&rs->srv, res);
    if (c)
        enter(rs, c, UK_READ);
}

static void on_recv(struct ring_server *rs, struct uk_conn *c, int res, unsigned flags)
{
    if (res > 0 && c->state == UK_READ) {
        c->http.in_end += (size_t)res;
        enter(rs, c, uk_conn_advance(&rs->srv, c));
    } else if (res > 0 || res == -EAGAIN || res == -EINTR) {
        enter(rs, c, c->state);  /* lingering: keep draining; or a spurious wakeup: receive again */
    } else {
        enter(rs, c, UK_CLOSE);  /* EOF, reset, or lingering done */
    }
}

static void on_read(struct ring_server *rs, struct uk_conn *c, int res, unsigned flags)
{
    if (res <= 0) {  /* a read error, or the file shrank: the promised Content-Length cannot be kept */
        enter(rs, c, UK_CLOSE);
        return;
    }
    c->chunk_len += (size_t)res;
    c->http.file_off += (uint64_t)res;
    c->http.file_left -= (uint64_t)res;
    c->chunk_sent = 0;
    send_bytes(rs, c, c->chunk, c->chunk_len);
}

static void on_send(struct ring_server *rs, struct uk_conn *c, int res, unsigned flags)
{
    struct uk_http *h = &c->http;
    if (res <= 0) {
        enter(rs, c, UK_CLOSE);  /* EPIPE, ECONNRESET: the client left */
        return;
    }
    if (c->chunk_len) {
        c->chunk_sent += (size_t)res;
        if (c->chunk_sent < c->chunk_len) {
            send_bytes(rs, c, c->chunk + c->chunk_sent, c->chunk_len - c->chunk_sent);
            return;
        }
        c->chunk_len = 0;
    } else {
        h->out_start += (size_t)res;
    }
    if (uk_http_out_pending(h)) {
        uk_conn_writing(&rs->srv, c);  /* progress: the write deadline moves on */
        write_next(rs, c);
        return;
    }
    release_chunk(rs, c);
    enum uk_conn_state st = uk_conn_sent(&rs->srv, c);
    if (st == UK_LINGER && shutdown(c->fd, SHUT_WR) < 0)  /* half-close: the client sees our answer, then EOF */
        st = UK_CLOSE;
    enter(rs, c, st);
}

static void on_timeout(struct ring_server *rs, struct uk_conn *unused, int res, unsigned flags)
{
    rs->timer_at = 0;  /* fired (-ETIME) or gone: the heap's expired entries are handled after this batch */
}

static void (*const handlers[OP_COUNT])(struct ring_server *, struct uk_conn *, int, unsigned) = {
    [OP_ACCEPT] = on_accept, [OP_RECV] = on_recv, [OP_SEND] = on_send, [OP_READ] = on_read,
    [OP_TIMEOUT] = on_timeout,
};

static void complete(struct ring_server *rs, const struct io_uring_cqe *cqe)
{
    enum op op = decode_op(cqe->user_data);
    if (op <= 0 || op >= OP_COUNT || !handlers[op])
        return;  /* OP_IGNORED (cancellations, timer updates), or liburing's own internal timeout */
    struct uk_conn *c = NULL;
    if (op == OP_RECV || op == OP_SEND || op == OP_READ) {
        int fd = decode_fd(cqe->user_data);
        c = fd >= 0 && fd < rs->srv.max_fds ? rs->srv.by_fd[fd] : NULL;
        if (!c)
            return;
        c->inflight--;
        if (c->state == UK_CLOSE) {  /* cancelled after a timeout: the close can finish now */
            enter(rs, c, UK_CLOSE);
            return;
        }
    }
    handlers[op](rs, c, cqe->res, cqe->flags);
}

/* Keep one ring timeout armed at the heap's earliest deadline. */
static void arm_timer(struct ring_server *rs)
{
    int wait = uk_timers_wait_ms(&rs->srv);
    if (wait < 0)
        return;
    uint64_t at = rs->srv.now + (uint64_t)wait;
    if (rs->timer_at && rs->timer_at <= at)
        return;
    struct io_uring_sqe *sqe = sqe_for(rs, rs->timer_at ? OP_IGNORED : OP_TIMEOUT, -1);
    if (!sqe)
        return;
    rs->ts.tv_sec = (int64_t)(at / 1000);
    rs->ts.tv_nsec = (long long)(at % 1000) * 1000000;
    if (rs->timer_at)
        io_uring_prep_timeout_update(sqe, &rs->ts, encode(OP_TIMEOUT, -1), IORING_TIMEOUT_ABS);
    else
        io_uring_prep_timeout(sqe, &rs->ts, 0, IORING_TIMEOUT_ABS);
    rs->timer_at = at;
}

static int ring_open(struct io_uring *ring)
{
    /* Newest first; each kernel rejects the flags it does not know with -EINVAL. */
    static const unsigned tries[] = {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
                                     IORING_SETUP_COOP_TASKRUN, 0};
    int err = -EINVAL;
    for (size_t i = 0; i < sizeof tries / sizeof tries[0] && err == -EINVAL; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = tries[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = RING_CQ_ENTRIES;
        err = io_uring_queue_init_params(RING_ENTRIES, ring, &p);
    }
    return err;
}

int uk_serve_io_uring(int listen_fd, const struct uk_server_config *cfg)
{
    static struct ring_server rs;
    int err = uk_evserver_open(&rs.srv, listen_fd, cfg, 0);
    if (err || (err = ring_open(&rs.ring)) < 0)
        return err;
    rs.listen_fd = listen_fd;
    rs.multishot = 1;
    for (;;) {
        if (!rs.accepting)
            arm_accept(&rs);
        arm_timer(&rs);
        err = io_uring_submit_and_wait(&rs.ring, 1);
        if (err < 0 && err != -EINTR && err != -EBUSY && err != -EAGAIN)
            return err;  /* EBUSY/EAGAIN: completions to reap first, which is what comes next */
        rs.srv.now = uk_now_ms();
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&rs.ring, head, cqe) {
            complete(&rs, cqe);
            seen++;
        }
        io_uring_cq_advance(&rs.ring, seen);
        struct uk_conn *c;
        while ((c = uk_timers_pop_expired(&rs.srv)))
            enter(&rs, c, uk_conn_expired(&rs.srv, c));
    }
}
