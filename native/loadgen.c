/* loadgen.c - the load generator (chapter 04, "The benchmark"); see loadgen.h for what it measures.
 *
 * Each thread runs one epoll loop over its own slice of connection slots; the hot path shares nothing between
 * threads except, in requests=N mode, two atomic counters. Nothing is allocated per request: slots, the request
 * bytes, the read buffer and the histogram are allocated once, before the clock starts.
 *
 * One slot's life (a slot is a client; it owns at most one socket at a time):
 *
 *               no socket: connect                 established                request written
 *   [IDLE] --+------------------------> [CONNECTING] -------------> [SENDING] -----------------> [READING]
 *     ^      |  socket still open (keep-alive)                          ^                            |
 *     |      +----------------------------------------------------------+                            |
 *     +--- slot_free: the response is complete (or failed); a closed loop starts the next request ----+
 *          at once, an open loop puts the slot on the idle stack until the next intended send is due
 *
 *   Any failure closes the socket, is counted, and frees the slot (after a connect error, a closed-loop slot
 *   waits RETRY_DELAY_MS so that a dead server yields a countable number of errors, not a spin). A slot that
 *   cannot get a ticket in requests=N mode parks for good.
 *
 * Facts about load-testing on loopback that shaped it:
 *   - The listen backlog is capped at net.core.somaxconn (4096 since Linux 5.4). When the accept queue is full
 *     the kernel drops the SYN and the client resends it after 1 s, 3 s, 7 s... So the first connection of each
 *     slot is ramped: at most ramp_window of them may be waiting for the server at once, a slot leaving the ramp
 *     when its first response arrives or RAMP_SETTLE_MS after it connected. Connects that still took >= 1 s are
 *     counted as slow_connects, never hidden.
 *   - One destination ip:port offers only ~28k ephemeral ports, and closed connections sit in TIME_WAIT for
 *     60 s. Binding each socket to 127.0.0.X first (IP_BIND_ADDRESS_NO_PORT, Linux 4.2, defers the port choice
 *     to connect so the 4-tuple is what must be unique) gives every source address its own port space.
 *   - On loopback the handshake has usually finished when a non-blocking connect() returns, so the request is
 *     sent at once; only if that send says EAGAIN does the slot wait for EPOLLOUT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"
#include "response.h"

_Static_assert(UK_HIST_BUCKETS == sizeof(((struct uk_load_result *)0)->latency_us) / sizeof(uint64_t),
               "UK_HIST_BUCKETS must match the array cffi sees in struct uk_load_result");

#define READ_BUF (64 * 1024)     /* one per thread: responses are parsed as they stream through it */
#define EVENTS_MAX 512           /* epoll events taken per wait */
#define RETRY_DELAY_MS 10        /* closed loop: pause after a connect error before the slot tries again */
#define RAMP_SETTLE_MS 100       /* a ramping slot connected this long ago is taken as accepted */
#define SLOW_CONNECT_MS 1000     /* the first SYN retransmission comes after 1 s: a connect this slow lost one */
#define WAKE_MS 100              /* longest epoll wait: how quickly a cancel request is noticed */
#define FD_RESERVE 32            /* fds beyond the sockets: epoll and eventfd per thread, Python, stdio */
#define NS_PER_MS 1000000LL

enum state { S_IDLE, S_CONNECTING, S_SENDING, S_READING, S_WAITING, S_PARKED };
enum failure { F_CONNECT, F_CONNECT_TIMEOUT, F_TIMEOUT, F_READ };

struct conn;

/* Timers: every deadline in one list is `now + constant`, and now only grows, so appending keeps each list
 * sorted; expiry pops from the head and cancelling unlinks in O(1). */
struct tlist {
    struct conn *head, *tail;
    int64_t delta_ns;
};

struct conn {
    int fd;                     /* -1: no socket */
    uint8_t state, ramping, connected, registered, used, served;
    uint16_t outstanding;       /* requests sent (or being sent) whose responses have not all arrived */
    uint16_t tickets;           /* requests=N mode: how many of the N this slot holds */
    uint32_t events;            /* what epoll watches for this fd */
    size_t sent, send_len;      /* bytes of the request(s) written / to write */
    int64_t start_ns;           /* latency origin: when the request started (closed) or was intended (open) */
    int64_t connect_ns;
    int64_t deadline_ns;
    struct conn *tprev, *tnext;
    struct tlist *tl;           /* the timer list this slot is on, if any */
    struct uk_response resp;    /* the response being read */
};

struct run {                    /* shared by all threads; read-only once they start, except the atomics */
    const struct uk_load_config *cfg;
    char *req;                  /* the request, `pipeline` times over */
    size_t req_one;             /* length of one copy */
    struct sockaddr_storage dst;
    socklen_t dst_len;
    int spread;
    int64_t t0, end_ns;         /* end_ns 0: no time limit */
    int64_t tickets;            /* requests mode: requests not yet handed to a slot (atomic) */
    uint64_t done;              /* requests mode: completions (atomic) */
    int stop;                   /* atomic: the run is over */
    int wake_fd;                /* an eventfd in every epoll set: written once to wake all threads at the end */
    int64_t open, peak;         /* established connections now / at most (atomic) */
};

struct ramp_entry {
    struct conn *c;
    int64_t connected_ns;
};

struct worker {
    struct run *run;
    int id, epfd, err;
    pthread_t tid;
    struct conn *conns;
    int n;
    int next_slot, ramping, ramp_max;   /* slots started so far; of them still ramping; the window */
    int64_t ramped_ns;                  /* when the last slot left the ramp (0: not yet) */
    struct ramp_entry *rq;
    int rq_head, rq_tail;
    struct conn **idle;                 /* open loop: free slots, most recently used on top */
    int idle_n;
    double interval_ns;                 /* open loop: this thread's share of the schedule */
    int64_t base_ns;
    uint64_t sched_k;                   /* open loop: intended sends dispatched so far */
    int starved;                        /* open loop, requests mode: a send is due but no ticket is left */
    struct tlist connect_tl, request_tl, retry_tl;
    uint32_t src_next;
    int no_spread;                      /* binding to 127.0.0.X failed: this host routes only 127.0.0.1 */
    struct uk_load_result r;            /* this thread's counters and histogram, merged at the end */
    int64_t lat_sum_ns, lat_max_ns, connect_max_ns;
    char buf[READ_BUF];
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* --- timers ----------------------------------------------------------------------------------------------- */
static void tl_push(struct tlist *l, struct conn *c, int64_t now)
{
    c->deadline_ns = now + l->delta_ns;
    c->tl = l;
    c->tnext = NULL;
    c->tprev = l->tail;
    if (l->tail)
        l->tail->tnext = c;
    else
        l->head = c;
    l->tail = c;
}

static void tl_remove(struct conn *c)
{
    struct tlist *l = c->tl;
    if (!l)
        return;
    if (c->tprev)
        c->tprev->tnext = c->tnext;
    else
        l->head = c->tnext;
    if (c->tnext)
        c->tnext->tprev = c->tprev;
    else
        l->tail = c->tprev;
    c->tl = NULL;
    c->tprev = c->tnext = NULL;
}

/* --- slots ------------------------------------------------------------------------------------------------ */
static void start_request(struct worker *w, struct conn *c, int64_t start, int n);
static void send_request(struct worker *w, struct conn *c);

static int watch(struct worker *w, struct conn *c, uint32_t events)
{
    if (c->registered && c->events == events)
        return 0;
    struct epoll_event ev = { .events = events, .data.ptr = c };
    if (epoll_ctl(w->epfd, c->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) < 0)
        return -errno;
    c->registered = 1;
    c->events = events;
    return 0;
}

static void close_conn(struct worker *w, struct conn *c)
{
    if (c->fd < 0)
        return;
    close(c->fd);                              /* also leaves the epoll set */
    c->fd = -1;
    c->registered = 0;
    if (c->connected) {
        c->connected = 0;
        __atomic_sub_fetch(&w->run->open, 1, __ATOMIC_RELAXED);
    }
}

static void ramp_done(struct worker *w, struct conn *c)
{
    if (c->ramping) {
        c->ramping = 0;
        w->ramping--;
    }
}

static void stop_run(struct run *r)
{
    uint64_t one = 1;
    if (!__atomic_exchange_n(&r->stop, 1, __ATOMIC_RELAXED) && write(r->wake_fd, &one, sizeof one) < 0)
        perror("uringkit loadgen: eventfd write");   /* cannot happen; the WAKE_MS poll still ends the run */
}

/* How many requests the slot may send now (up to `want`). In requests=N mode a slot takes tickets before it
 * sends and gives one up per response, so at most N requests are ever sent and exactly N complete: a failed
 * batch is retried whole with the tickets it holds. Each claimer gets what was left before its own subtraction
 * (clamped to 0..want) and returns the rest, which amounts to handing tickets out greedily in subtraction order:
 * none is lost, none is handed out twice. */
static int claim(struct worker *w, struct conn *c, int want)
{
    struct run *r = w->run;
    if (!r->cfg->requests)
        return want;
    if (c->tickets)
        return c->tickets;
    int64_t left = __atomic_sub_fetch(&r->tickets, want, __ATOMIC_RELAXED);
    int got = left >= 0 ? want : left + want > 0 ? (int)(left + want) : 0;
    if (got < want)
        __atomic_add_fetch(&r->tickets, want - got, __ATOMIC_RELAXED);
    return c->tickets = got;
}

/* The slot has nothing in flight: closed loop sends the next request now, open loop waits for a due send. */
static void slot_free(struct worker *w, struct conn *c)
{
    c->state = S_IDLE;
    if (w->run->cfg->rate > 0) {
        if (c->tickets) {                      /* an intended request failed: its ticket goes to the next one */
            __atomic_add_fetch(&w->run->tickets, c->tickets, __ATOMIC_RELAXED);
            c->tickets = 0;
        }
        w->idle[w->idle_n++] = c;
        return;
    }
    if (__atomic_load_n(&w->run->stop, __ATOMIC_RELAXED))
        return;
    int n = claim(w, c, w->run->cfg->pipeline);
    if (!n) {
        c->state = S_PARKED;
        ramp_done(w, c);
        return;
    }
    start_request(w, c, now_ns(), n);
}

/* Counts: a connect error once per attempt; a timeout or read error once per request it cost (a pipelined batch
 * loses all its outstanding requests; bytes nobody asked for cost one). */
static void fail(struct worker *w, struct conn *c, enum failure why, int err)
{
    unsigned lost = c->outstanding ? c->outstanding : 1;
    c->outstanding = 0;
    tl_remove(c);
    close_conn(w, c);
    ramp_done(w, c);
    switch (why) {
    case F_CONNECT:
        w->r.connect_errors++;
        w->r.last_connect_errno = err;
        if (w->run->cfg->rate <= 0) {          /* closed loop: try again after a pause, with the same ticket */
            c->state = S_WAITING;
            tl_push(&w->retry_tl, c, now_ns());
            return;
        }
        break;
    case F_CONNECT_TIMEOUT:
        w->r.connect_timeouts += lost;
        w->r.timeouts += lost;
        break;
    case F_TIMEOUT:
        w->r.timeouts += lost;
        break;
    case F_READ:
        w->r.read_errors += lost;
        w->r.last_read_errno = err;
        break;
    }
    slot_free(w, c);
}

/* One response read in full: counted, its latency recorded (pipelined ones from the start of their batch). */
static void count_response(struct worker *w, struct conn *c, int64_t now)
{
    struct run *r = w->run;
    int64_t lat = now - c->start_ns;
    w->r.latency_us[uk_hist_index((uint64_t)(lat + 500) / 1000)]++;
    w->lat_sum_ns += lat;
    if (lat > w->lat_max_ns)
        w->lat_max_ns = lat;
    w->r.completed++;
    if (c->resp.status < 200 || c->resp.status > 299) {
        w->r.non_2xx++;
        w->r.last_non_2xx_status = c->resp.status;
    }
    c->served = 1;
    c->outstanding--;
    if (c->tickets)
        c->tickets--;
    if (r->cfg->requests && __atomic_add_fetch(&r->done, 1, __ATOMIC_RELAXED) >= r->cfg->requests)
        stop_run(r);
}

/* Every response of the batch is in: the slot is free. */
static void batch_done(struct worker *w, struct conn *c)
{
    tl_remove(c);
    ramp_done(w, c);
    if (!w->run->cfg->keepalive || c->resp.server_close)
        close_conn(w, c);
    slot_free(w, c);
}

static void mark_connected(struct worker *w, struct conn *c)
{
    struct run *r = w->run;
    int64_t now = now_ns(), took = now - c->connect_ns;
    c->connected = 1;
    w->r.connects++;
    if (took >= SLOW_CONNECT_MS * NS_PER_MS)
        w->r.slow_connects++;
    if (took > w->connect_max_ns)
        w->connect_max_ns = took;
    int64_t open = __atomic_add_fetch(&r->open, 1, __ATOMIC_RELAXED);
    int64_t peak = __atomic_load_n(&r->peak, __ATOMIC_RELAXED);
    while (open > peak && !__atomic_compare_exchange_n(&r->peak, &peak, open, 1, __ATOMIC_RELAXED,
                                                       __ATOMIC_RELAXED))
        ;
    tl_remove(c);
    tl_push(&w->request_tl, c, now);
    if (c->ramping)
        w->rq[w->rq_tail++] = (struct ramp_entry){ c, now };
}

/* 127.0.0.X for X in 1..254, rotating: each source address has its own ~28k ports towards the server. */
static int bind_source(struct worker *w, int fd)
{
    int one = 1;
    struct sockaddr_in src = { .sin_family = AF_INET };
    src.sin_addr.s_addr = htonl(0x7f000001u + (w->src_next++ + 67u * w->id) % 254u);
    if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&src, sizeof src) < 0)
        return -errno;
    return 0;
}

static void begin_connect(struct worker *w, struct conn *c)
{
    struct run *r = w->run;
    c->connect_ns = now_ns();
    c->fd = socket(r->dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fail(w, c, F_CONNECT, errno);
        return;
    }
    int err = r->spread && !w->no_spread ? bind_source(w, c->fd) : 0;
    if (err == -EADDRNOTAVAIL) {               /* lo without 127.0.0.0/8: connect from 127.0.0.1 as usual */
        w->no_spread = 1;
        err = 0;
    }
    if (err < 0) {
        fail(w, c, F_CONNECT, -err);
        return;
    }
    if (connect(c->fd, (struct sockaddr *)&r->dst, r->dst_len) < 0 && errno != EINPROGRESS) {
        fail(w, c, F_CONNECT, errno);
        return;
    }
    send_request(w, c);                        /* usually connected already on loopback */
}

static void send_request(struct worker *w, struct conn *c)
{
    struct run *r = w->run;
    while (c->sent < c->send_len) {
        ssize_t n = send(c->fd, r->req + c->sent, c->send_len - c->sent, MSG_NOSIGNAL);
        if (n >= 0) {
            c->sent += n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN) {
            fail(w, c, c->connected ? F_READ : F_CONNECT, errno);
            return;
        }
        if (!c->connected && c->state != S_CONNECTING) {   /* the handshake is still under way */
            c->state = S_CONNECTING;
            tl_push(&w->connect_tl, c, now_ns());
        } else if (c->connected) {
            c->state = S_SENDING;
        }
        int e = watch(w, c, EPOLLOUT);
        if (e < 0)
            fail(w, c, F_READ, -e);
        return;
    }
    if (!c->connected)
        mark_connected(w, c);
    c->state = S_READING;
    int e = watch(w, c, EPOLLIN);
    if (e < 0)
        fail(w, c, F_READ, -e);
}

static void start_request(struct worker *w, struct conn *c, int64_t start, int n)
{
    c->used = 1;
    c->start_ns = start;
    c->outstanding = n;
    c->sent = 0;
    c->send_len = n * w->run->req_one;
    uk_response_reset(&c->resp);
    if (c->fd < 0) {
        begin_connect(w, c);
    } else {
        tl_push(&w->request_tl, c, now_ns());
        send_request(w, c);
    }
}

static void on_connect_done(struct worker *w, struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        fail(w, c, F_CONNECT, err);
        return;
    }
    mark_connected(w, c);
    send_request(w, c);
}

/* Bytes or EOF on a slot with no request in flight: the server closed an idle keep-alive connection (its
 * right), or sent something nobody asked for (counted). The slot itself is already free; only the socket goes. */
static void on_idle_readable(struct worker *w, struct conn *c)
{
    ssize_t n = recv(c->fd, w->buf, READ_BUF, 0);
    if (n > 0) {
        w->r.bytes_read += n;
        w->r.read_errors++;
        w->r.last_read_errno = EPROTO;
    }
    if (n >= 0 || (errno != EAGAIN && errno != EINTR))
        close_conn(w, c);
}

static void on_readable(struct worker *w, struct conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, w->buf, READ_BUF, 0);
        if (n > 0) {
            w->r.bytes_read += n;
            const char *p = w->buf;
            size_t left = n;
            int64_t now = 0;
            for (;;) {                         /* a read may end one response and begin the next (pipelining) */
                ssize_t used = uk_response_feed(&c->resp, p, left);
                if (used < 0) {
                    fail(w, c, F_READ, EPROTO);
                    return;
                }
                if (c->resp.phase != UK_RESPONSE_DONE)
                    break;
                count_response(w, c, now ? now : (now = now_ns()));
                p += used;
                left -= used;
                if (c->outstanding == 0) {
                    if (left)                  /* more responses than requests */
                        fail(w, c, F_READ, EPROTO);
                    else
                        batch_done(w, c);
                    return;
                }
                uk_response_reset(&c->resp);
                if (!left)
                    break;
            }
            if (n < READ_BUF)
                return;                        /* level-triggered: epoll reports the rest when it comes */
            continue;
        }
        if (n == 0) {
            if (c->resp.phase == UK_RESPONSE_BODY_TO_EOF)
                count_response(w, c, now_ns());
            if (c->outstanding)
                fail(w, c, F_READ, 0);         /* EOF before the response(s) were complete */
            else
                batch_done(w, c);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            fail(w, c, F_READ, errno);
        return;
    }
}

static void on_event(struct worker *w, struct conn *c, uint32_t events)
{
    if (c->state == S_CONNECTING)
        on_connect_done(w, c);
    else if (c->state == S_SENDING)
        send_request(w, c);
    else if (c->state == S_READING)
        on_readable(w, c);
    else if (c->fd >= 0)
        on_idle_readable(w, c);
}

/* --- the loop --------------------------------------------------------------------------------------------- */
static void expire(struct worker *w, int64_t now)
{
    struct conn *c;
    while ((c = w->connect_tl.head) && c->deadline_ns <= now)
        fail(w, c, F_CONNECT_TIMEOUT, ETIMEDOUT);
    while ((c = w->request_tl.head) && c->deadline_ns <= now)
        fail(w, c, F_TIMEOUT, ETIMEDOUT);
    while ((c = w->retry_tl.head) && c->deadline_ns <= now) {
        tl_remove(c);
        slot_free(w, c);
    }
}

static void ramp(struct worker *w, int64_t now)
{
    while (w->rq_head < w->rq_tail && w->rq[w->rq_head].connected_ns + RAMP_SETTLE_MS * NS_PER_MS <= now)
        ramp_done(w, w->rq[w->rq_head++].c);
    while (w->next_slot < w->n && w->ramping < w->ramp_max && !__atomic_load_n(&w->run->stop, __ATOMIC_RELAXED)) {
        struct conn *c = &w->conns[w->next_slot++];
        c->ramping = 1;
        w->ramping++;
        slot_free(w, c);
    }
    if (!w->ramped_ns && w->next_slot == w->n && w->ramping == 0)
        w->ramped_ns = now;
}

static int64_t intended(struct worker *w, uint64_t k)
{
    return w->base_ns + (int64_t)(k * w->interval_ns);
}

static void dispatch_due(struct worker *w, int64_t now)
{
    w->starved = 0;
    while (w->idle_n > 0 && intended(w, w->sched_k) <= now) {
        struct conn *c = w->idle[w->idle_n - 1];
        if (!claim(w, c, 1)) {
            w->starved = 1;                    /* a failed request may return its ticket: look again later */
            return;
        }
        w->idle_n--;
        start_request(w, c, intended(w, w->sched_k++), 1);
    }
}

static int64_t next_wakeup(struct worker *w, int64_t now)
{
    int64_t t = now + WAKE_MS * NS_PER_MS;
    struct tlist *lists[] = { &w->connect_tl, &w->request_tl, &w->retry_tl };
    for (int i = 0; i < 3; i++)
        if (lists[i]->head && lists[i]->head->deadline_ns < t)
            t = lists[i]->head->deadline_ns;
    if (w->rq_head < w->rq_tail && !w->ramped_ns) {
        int64_t settled = w->rq[w->rq_head].connected_ns + RAMP_SETTLE_MS * NS_PER_MS;
        if (settled < t)
            t = settled;
    }
    if (w->idle_n > 0 && w->run->cfg->rate > 0 && !w->starved && intended(w, w->sched_k) < t)
        t = intended(w, w->sched_k);
    if (w->run->end_ns && w->run->end_ns < t)
        t = w->run->end_ns;
    return t;
}

/* epoll_pwait2 (Linux 5.11) waits with nanosecond precision, which an open-loop schedule of tens of thousands
 * of sends per second needs; epoll_wait rounds up to whole milliseconds (the sends then go out in bursts, still
 * timed from their intended moments). */
static int wait_events(struct worker *w, struct epoll_event *ev, int64_t wait_ns)
{
    static int have_pwait2 = 1;
    if (wait_ns < 0)
        wait_ns = 0;
    if (__atomic_load_n(&have_pwait2, __ATOMIC_RELAXED)) {
        struct timespec ts = { wait_ns / 1000000000LL, wait_ns % 1000000000LL };
        int n = epoll_pwait2(w->epfd, ev, EVENTS_MAX, &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        __atomic_store_n(&have_pwait2, 0, __ATOMIC_RELAXED);
    }
    return epoll_wait(w->epfd, ev, EVENTS_MAX, (int)((wait_ns + NS_PER_MS - 1) / NS_PER_MS));
}

static int cancelled(struct run *r)
{
    return r->cfg->cancel && __atomic_load_n(r->cfg->cancel, __ATOMIC_RELAXED);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct run *r = w->run;
    const struct uk_load_config *cfg = r->cfg;
    struct epoll_event ev[EVENTS_MAX];
    if (cfg->cpus && cfg->n_cpus > 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cfg->cpus[w->id % cfg->n_cpus], &set);
        w->err = -pthread_setaffinity_np(pthread_self(), sizeof set, &set);
        if (w->err)
            stop_run(r);
    }
    for (;;) {
        int64_t now = now_ns();
        if ((r->end_ns && now >= r->end_ns) || __atomic_load_n(&r->stop, __ATOMIC_RELAXED) || cancelled(r))
            break;
        expire(w, now);
        ramp(w, now);
        if (cfg->rate > 0)
            dispatch_due(w, now);
        int n = wait_events(w, ev, next_wakeup(w, now) - now);
        if (n < 0 && errno != EINTR) {
            w->err = -errno;
            stop_run(r);
            break;
        }
        if (r->end_ns && now_ns() >= r->end_ns)
            break;                             /* what arrives after the end is no part of the run */
        for (int i = 0; i < n; i++)
            if (ev[i].data.ptr)                /* NULL: the wake eventfd; the loop head sees why */
                on_event(w, ev[i].data.ptr, ev[i].events);
    }
    int64_t end = now_ns();
    int64_t stop_at = end < r->end_ns ? end : r->end_ns;
    if (cfg->rate > 0 && r->end_ns && stop_at > w->base_ns) {
        uint64_t due = (uint64_t)((stop_at - w->base_ns - 1) / w->interval_ns) + 1;   /* intended before stop_at */
        w->r.unsent = due > w->sched_k ? due - w->sched_k : 0;
    }
    w->r.elapsed_s = (end - r->t0) / 1e9;
    if (cfg->rate <= 0)
        w->r.ramp_s = ((w->ramped_ns ? w->ramped_ns : end) - r->t0) / 1e9;
    for (int i = 0; i < w->n; i++) {
        struct conn *c = &w->conns[i];
        if (c->state == S_CONNECTING || c->state == S_SENDING || c->state == S_READING)
            w->r.in_flight += c->outstanding;
        w->r.unserved += c->used && !c->served;
        close_conn(w, c);
    }
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) == 0) {
        w->r.cpu_user_s = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
        w->r.cpu_system_s = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    }
    return NULL;
}

/* --- setup and teardown ----------------------------------------------------------------------------------- */
int uk_load_fds_needed(int connections, int threads)
{
    return connections + 2 * threads + FD_RESERVE;
}

static int parse_address(struct run *r, const struct uk_load_config *cfg)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *)&r->dst;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&r->dst;
    if (inet_pton(AF_INET, cfg->address, &v4->sin_addr) == 1) {
        if ((ntohl(v4->sin_addr.s_addr) >> 24) != 127)
            return -EINVAL;                    /* loopback only: this tool must not load anyone's network */
        v4->sin_family = AF_INET;
        v4->sin_port = htons(cfg->port);
        r->dst_len = sizeof *v4;
        r->spread = cfg->spread_sources;
        return 0;
    }
    if (inet_pton(AF_INET6, cfg->address, &v6->sin6_addr) == 1 && IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr)) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(cfg->port);
        r->dst_len = sizeof *v6;
        return 0;
    }
    return -EINVAL;
}

static int build_request(struct run *r, const struct uk_load_config *cfg)
{
    const char *conn = cfg->keepalive ? "" : "Connection: close\r\n";
    int n = snprintf(NULL, 0, "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", cfg->path, cfg->host_header, conn);
    r->req = malloc((size_t)n * cfg->pipeline + 1);
    if (!r->req)
        return -ENOMEM;
    for (int i = 0; i < cfg->pipeline; i++)
        snprintf(r->req + (size_t)n * i, n + 1, "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", cfg->path,
                 cfg->host_header, conn);
    r->req_one = n;
    return 0;
}

static int valid(const struct uk_load_config *c)
{
    for (int i = 0; c && c->cpus && i < c->n_cpus; i++)
        if (c->cpus[i] < 0 || c->cpus[i] >= CPU_SETSIZE)
            return 0;
    return c && c->address && c->path && c->path[0] == '/' && c->host_header && !strpbrk(c->path, " \r\n") &&
           !strpbrk(c->host_header, "\r\n") && c->port > 0 && c->port < 65536 && c->connections > 0 &&
           c->threads > 0 && c->threads <= c->connections && c->duration_s >= 0 &&
           (c->duration_s > 0 || c->requests > 0) && c->rate >= 0 && c->timeout_ms > 0 &&
           c->connect_timeout_ms > 0 && c->ramp_window > 0 && (!c->cpus || c->n_cpus > 0) &&
           c->pipeline >= 1 && c->pipeline <= UK_PIPELINE_MAX && (c->pipeline == 1 || (c->keepalive && !c->rate));
}

static void free_worker(struct worker *w)
{
    if (!w)
        return;
    if (w->epfd >= 0)
        close(w->epfd);
    free(w->conns);
    free(w->rq);
    free(w->idle);
    free(w);
}

static struct worker *new_worker(struct run *r, int id, int first, int n)
{
    const struct uk_load_config *cfg = r->cfg;
    struct worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->run = r;
    w->id = id;
    w->n = n;
    w->conns = calloc(n, sizeof *w->conns);
    w->rq = calloc(n, sizeof *w->rq);
    w->idle = calloc(n, sizeof *w->idle);
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    if (!w->conns || !w->rq || !w->idle || w->epfd < 0 || epoll_ctl(w->epfd, EPOLL_CTL_ADD, r->wake_fd, &ev) < 0) {
        free_worker(w);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        w->conns[i].fd = -1;
    w->ramp_max = cfg->ramp_window / cfg->threads > 0 ? cfg->ramp_window / cfg->threads : 1;
    w->connect_tl.delta_ns = cfg->connect_timeout_ms * NS_PER_MS;
    w->request_tl.delta_ns = cfg->timeout_ms * NS_PER_MS;
    w->retry_tl.delta_ns = RETRY_DELAY_MS * NS_PER_MS;
    w->src_next = first;
    if (cfg->rate > 0) {                       /* open loop: every slot starts idle; no ramp needed */
        w->interval_ns = 1e9 * cfg->threads / cfg->rate;
        for (int i = n - 1; i >= 0; i--)
            w->idle[w->idle_n++] = &w->conns[i];
        w->next_slot = n;
        w->ramped_ns = 1;                      /* nothing to ramp (ramp_s stays 0) */
    }
    return w;
}

static void merge(struct uk_load_result *out, struct worker *w)
{
    const struct uk_load_result *r = &w->r;
    out->completed += r->completed;
    out->non_2xx += r->non_2xx;
    out->connect_errors += r->connect_errors;
    out->timeouts += r->timeouts;
    out->connect_timeouts += r->connect_timeouts;
    out->read_errors += r->read_errors;
    out->connects += r->connects;
    out->slow_connects += r->slow_connects;
    out->unsent += r->unsent;
    out->in_flight += r->in_flight;
    out->unserved += r->unserved;
    out->bytes_read += r->bytes_read;
    if (r->last_connect_errno)
        out->last_connect_errno = r->last_connect_errno;
    if (r->read_errors)
        out->last_read_errno = r->last_read_errno;
    if (r->last_non_2xx_status)
        out->last_non_2xx_status = r->last_non_2xx_status;
    if (r->elapsed_s > out->elapsed_s)
        out->elapsed_s = r->elapsed_s;
    if (r->ramp_s > out->ramp_s)
        out->ramp_s = r->ramp_s;
    out->cpu_user_s += r->cpu_user_s;
    out->cpu_system_s += r->cpu_system_s;
    if (w->lat_max_ns / 1e3 > out->latency_max_us)
        out->latency_max_us = w->lat_max_ns / 1e3;
    if (w->connect_max_ns / 1e3 > out->connect_max_us)
        out->connect_max_us = w->connect_max_ns / 1e3;
    out->latency_mean_us += w->lat_sum_ns / 1e3;          /* a sum until uk_load_run divides it */
    for (unsigned i = 0; i < UK_HIST_BUCKETS; i++)
        out->latency_us[i] += r->latency_us[i];
}

/* Raise the soft fd limit to the hard one when the run needs more than the soft one allows (1024 by default,
 * for select()'s sake); *raised says whether to put the old one back afterwards. */
static int raise_fd_limit(const struct uk_load_config *cfg, struct rlimit *old, int *raised)
{
    if (getrlimit(RLIMIT_NOFILE, old) < 0)
        return -errno;
    rlim_t need = (rlim_t)uk_load_fds_needed(cfg->connections, cfg->threads);
    if (old->rlim_max != RLIM_INFINITY && need > old->rlim_max)
        return -EMFILE;
    if (old->rlim_cur == RLIM_INFINITY || need <= old->rlim_cur)
        return 0;
    struct rlimit up = { old->rlim_max, old->rlim_max };
    if (setrlimit(RLIMIT_NOFILE, &up) < 0)
        return -errno;
    *raised = 1;
    return 0;
}

int uk_load_run(const struct uk_load_config *cfg, struct uk_load_result *out)
{
    struct run r = { .cfg = cfg, .wake_fd = -1 };
    struct worker **ws = NULL;
    struct rlimit old_limit;
    int err, started = 0, raised = 0;
    memset(out, 0, sizeof *out);
    if (!valid(cfg) || parse_address(&r, cfg) < 0)
        return -EINVAL;
    if ((err = raise_fd_limit(cfg, &old_limit, &raised)) < 0)
        return err;
    if ((err = build_request(&r, cfg)) < 0)
        goto done;
    r.tickets = (int64_t)cfg->requests;
    r.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    ws = calloc(cfg->threads, sizeof *ws);
    if (r.wake_fd < 0 || !ws) {
        err = r.wake_fd < 0 ? -errno : -ENOMEM;
        goto done;
    }
    for (int i = 0, first = 0; i < cfg->threads; i++) {
        int n = cfg->connections / cfg->threads + (i < cfg->connections % cfg->threads);
        if (!(ws[i] = new_worker(&r, i, first, n))) {
            err = -ENOMEM;
            goto done;
        }
        first += n;
    }
    r.t0 = now_ns();
    r.end_ns = cfg->duration_s > 0 ? r.t0 + (int64_t)(cfg->duration_s * 1e9) : 0;
    for (int i = 0; i < cfg->threads; i++) {
        /* stagger the open-loop schedules so the threads' sends interleave instead of coinciding */
        ws[i]->base_ns = r.t0 + (int64_t)(ws[i]->interval_ns * i / cfg->threads);
        if ((err = -pthread_create(&ws[i]->tid, NULL, worker_main, ws[i])) < 0) {
            stop_run(&r);
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(ws[i]->tid, NULL);
        if (ws[i]->err && !err)
            err = ws[i]->err;
        merge(out, ws[i]);
    }
    if (out->completed)
        out->latency_mean_us /= out->completed;
    if (cfg->requests && r.tickets >= 0 && out->unsent > (uint64_t)r.tickets)
        out->unsent = (uint64_t)r.tickets;     /* no send was due beyond the N requests asked for */
    out->peak_connections = (uint64_t)r.peak;
done:
    if (ws)
        for (int i = 0; i < cfg->threads; i++)
            free_worker(ws[i]);
    free(ws);
    free(r.req);
    if (r.wake_fd >= 0)
        close(r.wake_fd);
    if (raised)
        setrlimit(RLIMIT_NOFILE, &old_limit);
    return err;
}
