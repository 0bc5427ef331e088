/* select.c - the select server: one thread waits on bitmaps of fds, rebuilt and scanned in full at every call.
 * The oldest portable readiness API, but a wait costs O(highest fd) and the bitmaps end at FD_SETSIZE (1024):
 * connections past it are refused (and counted), never written past the end of an fd_set.
 *
 * Try it:
 *   python -m uringkit.servers select --impl c --port 8080
 *   curl -s localhost:8080/
 */
#include <errno.h>
#include <sys/select.h>

#include "evloop.h"
#include "servers.h"

struct select_state {
    fd_set read, write;         /* the interest: copied before every select, which overwrites its arguments */
    fd_set ready_read, ready_write;
    int max_fd;                 /* highest fd of interest, -1 if none */
};

static int select_init(struct uk_evloop *loop)
{
    struct select_state *st = loop->backend;
    FD_ZERO(&st->read);
    FD_ZERO(&st->write);
    st->max_fd = -1;
    return 0;
}

static int select_watch(struct uk_evloop *loop, int fd, unsigned old, unsigned events)
{
    struct select_state *st = loop->backend;
    if (fd < 0 || fd >= FD_SETSIZE)
        return -EMFILE;  /* FD_SET past FD_SETSIZE would write outside the bitmap */
    if (events & UK_EV_READ)
        FD_SET(fd, &st->read);
    else
        FD_CLR(fd, &st->read);
    if (events & UK_EV_WRITE)
        FD_SET(fd, &st->write);
    else
        FD_CLR(fd, &st->write);
    if (events && fd > st->max_fd)
        st->max_fd = fd;
    while (st->max_fd >= 0 && !FD_ISSET(st->max_fd, &st->read) && !FD_ISSET(st->max_fd, &st->write))
        st->max_fd--;
    return 0;
}

static void select_forget(struct uk_evloop *loop, int fd, unsigned old)
{
    select_watch(loop, fd, old, 0);
}

static int select_wait(struct uk_evloop *loop, int timeout_ms)
{
    struct select_state *st = loop->backend;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    st->ready_read = st->read;
    st->ready_write = st->write;
    int n = select(st->max_fd + 1, &st->ready_read, &st->ready_write, NULL, timeout_ms < 0 ? NULL : &tv);
    return n < 0 ? -errno : n;
}

static void select_dispatch(struct uk_evloop *loop, int n)
{
    struct select_state *st = loop->backend;
    for (int fd = 0; fd <= st->max_fd && n > 0; fd++) {
        unsigned ready = (FD_ISSET(fd, &st->ready_read) ? UK_EV_READ : 0) |
                         (FD_ISSET(fd, &st->ready_write) ? UK_EV_WRITE : 0);
        if (ready) {
            n -= (ready & UK_EV_READ ? 1 : 0) + (ready & UK_EV_WRITE ? 1 : 0);
            uk_evloop_ready(loop, fd, ready);
        }
    }
}

static const struct uk_poller select_poller = {
    .max_fds = FD_SETSIZE, .init = select_init, .watch = select_watch, .forget = select_forget,
    .wait = select_wait, .dispatch = select_dispatch,
};

int uk_serve_select(int listen_fd, const struct uk_server_config *cfg)
{
    static struct select_state state;
    return uk_evloop_run(listen_fd, cfg, &select_poller, &state);
}
