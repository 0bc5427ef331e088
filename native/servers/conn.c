/* conn.c - the event-driven models' connection state machine, connection table and timer heap (see conn.h). */
#include <errno.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "conn.h"

/* --- the timer heap: a binary min-heap of deadlines, one entry per connection ------------------------------- */
static void heap_place(struct uk_evserver *s, int i, struct uk_timer t)
{
    s->heap[i] = t;
    t.conn->timer = i;
}

static void sift_up(struct uk_evserver *s, int i)
{
    struct uk_timer t = s->heap[i];
    while (i > 0 && s->heap[(i - 1) / 2].key > t.key) {
        heap_place(s, i, s->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_place(s, i, t);
}

static void sift_down(struct uk_evserver *s, int i)
{
    struct uk_timer t = s->heap[i];
    for (;;) {
        int child = 2 * i + 1;
        if (child >= s->timers)
            break;
        if (child + 1 < s->timers && s->heap[child + 1].key < s->heap[child].key)
            child++;
        if (s->heap[child].key >= t.key)
            break;
        heap_place(s, i, s->heap[child]);
        i = child;
    }
    heap_place(s, i, t);
}

static void timer_remove(struct uk_evserver *s, struct uk_conn *c)
{
    int i = c->timer;
    if (i < 0)
        return;
    c->timer = -1;
    if (--s->timers == i)
        return;
    struct uk_conn *moved = s->heap[s->timers].conn;  /* the last entry fills the hole, then finds its place */
    heap_place(s, i, s->heap[s->timers]);
    sift_up(s, i);
    sift_down(s, moved->timer);
}

/* A later deadline is only stored (the common case, once per request: no heap work); an earlier one, or a
 * connection without an entry, updates the heap. */
static void set_deadline(struct uk_evserver *s, struct uk_conn *c, uint64_t deadline)
{
    c->deadline = deadline;
    if (c->timer < 0) {
        /* the heap was sized for max_fds entries, one per possible connection: it never needs to grow */
        heap_place(s, s->timers++, (struct uk_timer){deadline, c});
        sift_up(s, s->timers - 1);
    } else if (deadline < s->heap[c->timer].key) {
        s->heap[c->timer].key = deadline;
        sift_up(s, c->timer);
    }
}

int uk_timers_wait_ms(struct uk_evserver *s)
{
    if (s->timers == 0)
        return -1;
    uint64_t key = s->heap[0].key;
    return key <= s->now ? 0 : (int)(key - s->now);
}

struct uk_conn *uk_timers_pop_expired(struct uk_evserver *s)
{
    while (s->timers && s->heap[0].key <= s->now) {
        struct uk_conn *c = s->heap[0].conn;
        if (c->deadline > s->now) {  /* moved later since it was filed: re-file it */
            s->heap[0].key = c->deadline;
            sift_down(s, 0);
            continue;
        }
        timer_remove(s, c);
        return c;
    }
    return NULL;
}

/* --- connections -------------------------------------------------------------------------------------------- */
int uk_evserver_open(struct uk_evserver *s, int listen_fd, const struct uk_server_config *cfg, int max_fds)
{
    struct rlimit lim;
    int err = uk_server_setup();
    if (err)
        return err;
    if (getrlimit(RLIMIT_NOFILE, &lim) < 0)
        return -errno;
    if (max_fds <= 0 || (rlim_t)max_fds > lim.rlim_cur)
        max_fds = lim.rlim_cur > (1 << 24) ? (1 << 24) : (int)lim.rlim_cur;
    s->cfg = cfg;
    s->max_fds = max_fds;
    s->free_list = NULL;
    s->timers = 0;
    s->now = uk_now_ms();
    /* calloc/malloc of untouched pages costs address space, not memory: sized for the worst case once */
    s->by_fd = calloc((size_t)max_fds, sizeof *s->by_fd);
    s->heap = malloc((size_t)max_fds * sizeof *s->heap);
    if (!s->by_fd || !s->heap)
        return -ENOMEM;
    err = uk_http_site_open(&s->site, cfg);
    return err ? err : uk_acceptor_init(&s->acceptor, listen_fd, cfg);
}

struct uk_conn *uk_conn_new(struct uk_evserver *s, int fd)
{
    struct uk_conn *c = s->free_list;
    if (fd >= s->max_fds || (!c && !(c = malloc(sizeof *c)))) {
        uk_refuse(s->cfg, fd);
        return NULL;
    }
    if (c == s->free_list)
        s->free_list = c->next_free;
    c->fd = fd;
    c->state = UK_READ;
    c->timer = -1;
    c->watching = c->inflight = 0;
    c->chunk = NULL;
    c->chunk_len = c->chunk_sent = 0;
    uk_http_init(&c->http);
    s->by_fd[fd] = c;
    set_deadline(s, c, s->now + (uint64_t)s->cfg->idle_timeout_ms);
    return c;
}

void uk_conn_free(struct uk_evserver *s, struct uk_conn *c)
{
    timer_remove(s, c);
    uk_http_reset(&c->http);
    s->by_fd[c->fd] = NULL;
    uk_close(s->cfg, c->fd);
    c->state = UK_CLOSE;
    c->next_free = s->free_list;
    s->free_list = c;
}

enum uk_conn_state uk_conn_advance(struct uk_evserver *s, struct uk_conn *c)
{
    uk_http_step(&c->http, &s->site);
    if (c->http.delay_ms) {
        set_deadline(s, c, s->now + c->http.delay_ms);
        return c->state = UK_DELAY;
    }
    if (uk_http_out_pending(&c->http))
        return c->state = UK_WRITE;
    /* nothing to send yet closing: the writer could not frame an answer (a bug, never seen): do not hang */
    return c->state = c->http.close_after ? UK_CLOSE : UK_READ;
}

enum uk_conn_state uk_conn_sent(struct uk_evserver *s, struct uk_conn *c)
{
    uk_http_sent(&c->http, &s->site);
    if (c->http.close_after) {
        if (!c->http.linger)
            return c->state = UK_CLOSE;
        set_deadline(s, c, s->now + UK_LINGER_MS);
        return c->state = UK_LINGER;
    }
    set_deadline(s, c, s->now + (uint64_t)s->cfg->idle_timeout_ms);  /* the next request's clock starts */
    return uk_conn_advance(s, c);
}

enum uk_conn_state uk_conn_expired(struct uk_evserver *s, struct uk_conn *c)
{
    if (c->state == UK_DELAY) {
        c->http.delay_ms = 0;
        set_deadline(s, c, s->now + (uint64_t)s->cfg->idle_timeout_ms);  /* bounds the write that follows */
        return c->state = UK_WRITE;
    }
    if (c->state == UK_READ || c->state == UK_WRITE)
        UK_STAT(s->cfg, timeouts, 1);
    return c->state = UK_CLOSE;
}

void uk_conn_writing(struct uk_evserver *s, struct uk_conn *c)
{
    set_deadline(s, c, s->now + (uint64_t)s->cfg->idle_timeout_ms);
}
