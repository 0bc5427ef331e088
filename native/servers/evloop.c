/* evloop.c - the readiness loop: move bytes when an fd is ready, let conn.c decide what comes next. */
#define _GNU_SOURCE /* SOCK_NONBLOCK */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evloop.h"

static void close_conn(struct uk_evloop *loop, struct uk_conn *c)
{
    if (loop->poller->forget)  /* even when not watching: poll keeps a parked entry for a DELAY */
        loop->poller->forget(loop, c->fd, c->watching);
    uk_conn_free(&loop->srv, c);
}

/* Enter state `st`: send while there is output and the socket takes it, then watch what the state waits for. */
static void drive(struct uk_evloop *loop, struct uk_conn *c, enum uk_conn_state st)
{
    while (st == UK_WRITE) {
        int sent = uk_flush(c->fd, &c->http);
        if (sent == 0) {
            uk_conn_writing(&loop->srv, c);
            break;
        }
        st = sent > 0 ? uk_conn_sent(&loop->srv, c) : UK_CLOSE;
        if (st == UK_LINGER && shutdown(c->fd, SHUT_WR) < 0)
            st = UK_CLOSE;
    }
    if (st == UK_CLOSE) {
        close_conn(loop, c);
        return;
    }
    c->state = st;
    unsigned want = st == UK_WRITE ? UK_EV_WRITE : st == UK_DELAY ? 0 : UK_EV_READ;
    if (want != c->watching) {
        if (loop->poller->watch(loop, c->fd, c->watching, want) < 0) {
            close_conn(loop, c);
            return;
        }
        c->watching = want;
    }
}

static void on_readable(struct uk_evloop *loop, struct uk_conn *c)
{
    char *at = c->http.in;
    /* LINGER only drains: the bytes go over the input buffer, which no request needs any more */
    size_t room = c->state == UK_LINGER ? sizeof c->http.in : uk_http_in_room(&c->http, &at);
    ssize_t n = recv(c->fd, at, room, 0);
    if (n > 0 && c->state == UK_READ) {
        c->http.in_end += (size_t)n;
        drive(loop, c, uk_conn_advance(&loop->srv, c));
    } else if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        close_conn(loop, c);  /* the peer is gone (or, lingering, done reading our answer) */
    } else if (!c->watching) {
        drive(loop, c, c->state);  /* a new connection with nothing to read yet: now it is watched */
    }
}

static void accept_some(struct uk_evloop *loop)
{
    for (int i = 0; i < UK_ACCEPT_BATCH; i++) {
        int fd = uk_accept(&loop->srv.acceptor, SOCK_NONBLOCK);
        if (fd == -EMFILE || fd == -ENFILE || fd == -ECONNABORTED)
            continue;  /* one pending connection was refused (or had already left): take the next */
        if (fd < 0)
            return;    /* EAGAIN: the backlog is empty */
        /* Read before watching: the request has usually arrived with the handshake, and a client that
         * sends one request and closes then costs no interest-list update at all. */
        struct uk_conn *c = uk_conn_new(&loop->srv, fd);
        if (c)
            on_readable(loop, c);
    }
}

void uk_evloop_ready(struct uk_evloop *loop, int fd, unsigned events)
{
    if (fd == loop->listen_fd) {
        accept_some(loop);
        return;
    }
    struct uk_conn *c = fd < loop->srv.max_fds ? loop->srv.by_fd[fd] : NULL;
    if (!c)
        return;  /* closed earlier in this same batch of events */
    if ((events & UK_EV_READ) && (c->state == UK_READ || c->state == UK_LINGER))
        on_readable(loop, c);
    else if ((events & UK_EV_WRITE) && c->state == UK_WRITE)
        drive(loop, c, UK_WRITE);
}

int uk_evloop_run(int listen_fd, const struct uk_server_config *cfg, const struct uk_poller *poller,
                  void *backend)
{
    static struct uk_evloop loop;  /* one loop per process */
    loop.poller = poller;
    loop.listen_fd = listen_fd;
    loop.backend = backend;
    int err = uk_evserver_open(&loop.srv, listen_fd, cfg, poller->max_fds);
    if (err)
        return err;
    int flags = fcntl(listen_fd, F_GETFL);
    if (flags < 0 || fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -errno;  /* an event loop must never block in accept */
    if ((err = poller->init(&loop)) < 0 || (err = poller->watch(&loop, listen_fd, 0, UK_EV_READ)) < 0)
        return err;
    for (;;) {
        int n = poller->wait(&loop, uk_timers_wait_ms(&loop.srv));
        if (n < 0 && n != -EINTR)
            return n;
        loop.srv.now = uk_now_ms();
        if (n > 0)
            poller->dispatch(&loop, n);
        struct uk_conn *c;
        while ((c = uk_timers_pop_expired(&loop.srv)))
            drive(&loop, c, uk_conn_expired(&loop.srv, c));
    }
}
