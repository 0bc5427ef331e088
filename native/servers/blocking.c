/* blocking.c - the accept loop and the request loop of the blocking models (see blocking.h). */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blocking.h"

int uk_blocking_open(struct uk_blocking *b, int listen_fd, const struct uk_server_config *cfg)
{
    int err = uk_server_setup();
    if (err)
        return err;
    b->cfg = cfg;
    b->http = malloc(sizeof *b->http);
    if (!b->http)
        return -ENOMEM;
    err = uk_http_site_open(&b->site, cfg);
    if (!err)
        err = uk_acceptor_init(&b->acceptor, listen_fd, cfg);
    if (err) {
        uk_http_site_close(&b->site);
        free(b->http);
    }
    return err;
}

void uk_blocking_accept_loop(struct uk_blocking *b, uk_handoff handoff)
{
    for (;;) {
        int fd = uk_accept(&b->acceptor, 0);
        if (fd >= 0)
            handoff(b, fd);
        /* else: EINTR, ECONNABORTED, a refusal...: uk_accept has counted and backed off; accept again */
    }
}

void uk_blocking_inline(struct uk_blocking *b, int fd) { uk_blocking_serve(b, fd, b->http); }

static int set_timeout(int fd, int option, uint64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    if (ms == 0)
        tv.tv_usec = 1000;  /* 0 would mean "wait forever" */
    return setsockopt(fd, SOL_SOCKET, option, &tv, sizeof tv);
}

/* One blocking recv into the input, bounded by the deadline of the request being read. 1 data, 0 EOF or
 * error, -1 the deadline passed. SO_RCVTIMEO bounds each recv; only a partial request (a client trickling
 * bytes) needs the remaining time re-set, so a keep-alive request costs no extra syscall. */
static int read_some(int fd, struct uk_http *h, uint64_t deadline, uint64_t idle, uint64_t *timeo)
{
    for (;;) {
        uint64_t now = uk_now_ms();
        if (now >= deadline)
            return -1;
        uint64_t want = h->in_end > h->in_start || h->discard ? deadline - now : idle;
        if (want != *timeo && set_timeout(fd, SO_RCVTIMEO, want) == 0)
            *timeo = want;
        char *at;
        size_t room = uk_http_in_room(h, &at);
        ssize_t n = recv(fd, at, room, 0);
        if (n > 0) {
            h->in_end += (size_t)n;
            return 1;
        }
        if (n == 0 || room == 0)
            return 0;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return -1;
        if (errno != EINTR)
            return 0;
    }
}

void uk_blocking_serve(struct uk_blocking *b, int fd, struct uk_http *h)
{
    const struct uk_server_config *cfg = b->cfg;
    uint64_t idle = (uint64_t)cfg->idle_timeout_ms, timeo = idle;
    /* Both directions bounded: a client that stops reading must not pin this process or thread either. */
    if (set_timeout(fd, SO_RCVTIMEO, idle) < 0 || set_timeout(fd, SO_SNDTIMEO, idle) < 0) {
        uk_close(cfg, fd);
        return;
    }
    uk_http_init(h);
    uint64_t deadline = uk_now_ms() + idle;
    for (;;) {
        uk_http_step(h, &b->site);
        if (h->delay_ms) {
            uk_sleep_ms(h->delay_ms);  /* the blocking way to wait for a backend: this worker does nothing else */
            h->delay_ms = 0;
        }
        if (uk_http_out_pending(h)) {
            int sent = uk_flush(fd, h);
            if (sent <= 0) {
                if (sent == 0)
                    UK_STAT(cfg, timeouts, 1);
                break;
            }
            uk_http_sent(h, &b->site);
            if (h->close_after) {
                if (h->linger)
                    uk_linger_blocking(fd, h->in, sizeof h->in);
                break;
            }
            deadline = uk_now_ms() + idle;
            continue;
        }
        if (h->close_after)
            break;  /* closing with nothing to send: see uk_conn_advance */
        int got = read_some(fd, h, deadline, idle, &timeo);
        if (got < 0)
            UK_STAT(cfg, timeouts, 1);
        if (got <= 0)
            break;
    }
    uk_http_reset(h);
    uk_close(cfg, fd);
}

int uk_thread_start(pthread_t *t, void *(*fn)(void *), void *arg, int detached)
{
    pthread_attr_t attr;
    int err = pthread_attr_init(&attr);
    if (err)
        return err;
    err = pthread_attr_setstacksize(&attr, UK_THREAD_STACK);
    if (!err && detached)
        err = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (!err)
        err = pthread_create(t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return err;
}

static void stop_children(int sig)
{
    /* The server owns its process group (uk.serve starts it in a session of its own). Async-signal-safe only:
     * ignore the signal we are about to send to the group, send it, wait until no child is left, exit. */
    signal(sig, SIG_IGN);
    kill(0, sig);
    while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
        ;
    _exit(0);
}

int uk_stop_children_on_term(void)
{
    struct sigaction sa = {.sa_handler = stop_children};
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGCHLD);  /* no reaping behind our back while we wait for each child */
    return sigaction(SIGTERM, &sa, NULL) < 0 ? -errno : 0;
}

void uk_child_defaults(void)
{
    signal(SIGTERM, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
}
