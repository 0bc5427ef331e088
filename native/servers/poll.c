/* poll.c - the poll server: one thread waits on an array of (fd, events) it hands to the kernel in full at
 * every call. No FD_SETSIZE ceiling, but each wait costs O(all connections) in copying and scanning, however
 * few are ready: thousands of idle clients slow down every busy one.
 *
 * Try it:
 *   python -m uringkit.servers poll --impl c --port 8080
 *   curl -s localhost:8080/
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "evloop.h"
#include "servers.h"

struct poll_state {
    struct pollfd *fds;         /* dense: the kernel scans exactly `n` entries */
    int *slot;                  /* fd -> index in fds, -1 if absent */
    int *owner;                 /* index -> fd (fds[i].fd is -1 while an entry is parked) */
    int n, cap;
};

static int poll_init(struct uk_evloop *loop)
{
    struct poll_state *st = loop->backend;
    st->cap = loop->srv.max_fds;
    st->fds = malloc((size_t)st->cap * sizeof *st->fds);
    st->slot = malloc((size_t)st->cap * sizeof *st->slot);
    st->owner = malloc((size_t)st->cap * sizeof *st->owner);
    if (!st->fds || !st->slot || !st->owner)
        return -ENOMEM;
    for (int i = 0; i < st->cap; i++)
        st->slot[i] = -1;
    return 0;
}

static short poll_events(unsigned events)
{
    return (short)((events & UK_EV_READ ? POLLIN : 0) | (events & UK_EV_WRITE ? POLLOUT : 0));
}

static int poll_watch(struct uk_evloop *loop, int fd, unsigned old, unsigned events)
{
    struct poll_state *st = loop->backend;
    if (fd >= st->cap)
        return -EMFILE;
    int i = st->slot[fd];
    if (i < 0) {
        i = st->slot[fd] = st->n++;
        st->owner[i] = fd;
        st->fds[i].revents = 0;  /* new this round: not ready until the next poll says so */
    }
    /* A negative fd makes poll skip the entry, hang-ups included: DELAY waits on its timer alone. */
    st->fds[i].fd = events ? fd : -1;
    st->fds[i].events = poll_events(events);
    return 0;
}

static void poll_forget(struct uk_evloop *loop, int fd, unsigned old)
{
    struct poll_state *st = loop->backend;
    int i = st->slot[fd];
    if (i < 0)
        return;
    st->slot[fd] = -1;
    if (i != --st->n) {  /* the last entry fills the hole: it was already dispatched (see poll_dispatch) */
        st->fds[i] = st->fds[st->n];
        st->owner[i] = st->owner[st->n];
        st->slot[st->owner[i]] = i;
    }
}

static int poll_wait(struct uk_evloop *loop, int timeout_ms)
{
    struct poll_state *st = loop->backend;
    int n = poll(st->fds, (nfds_t)st->n, timeout_ms);
    return n < 0 ? -errno : n;
}

static void poll_dispatch(struct uk_evloop *loop, int n)
{
    struct poll_state *st = loop->backend;
    /* Downwards: closing entry i moves the last entry (already seen, or new and not ready) into i. */
    for (int i = st->n - 1; i >= 0 && n > 0; i--) {
        short r = st->fds[i].revents;
        if (!r || st->fds[i].fd < 0)
            continue;
        n--;
        st->fds[i].revents = 0;
        unsigned ready = (r & (POLLIN | POLLERR | POLLHUP) ? UK_EV_READ : 0) |
                         (r & (POLLOUT | POLLERR | POLLHUP) ? UK_EV_WRITE : 0);
        uk_evloop_ready(loop, st->fds[i].fd, ready);
    }
}

static const struct uk_poller poll_poller = {
    .init = poll_init, .watch = poll_watch, .forget = poll_forget, .wait = poll_wait, .dispatch = poll_dispatch,
};

int uk_serve_poll(int listen_fd, const struct uk_server_config *cfg)
{
    static struct poll_state state;
    return uk_evloop_run(listen_fd, cfg, &poll_poller, &state);
}
