/* evloop.h - the readiness loop select, poll and epoll share (chapter 03): one connection state machine
 * (conn.h) driven by "this fd is ready" events. The three differ only in how they register interest and
 * wait, the few functions of struct uk_poller - like CPython's selectors module.
 */
#ifndef URINGKIT_SERVERS_EVLOOP_H
#define URINGKIT_SERVERS_EVLOOP_H

#include "conn.h"

#define UK_EV_READ 1u
#define UK_EV_WRITE 2u

struct uk_evloop;

struct uk_poller {
    int max_fds;  /* fds at or above this cannot be watched (select: FD_SETSIZE); 0: no limit of its own */
    int (*init)(struct uk_evloop *loop);                                           /* 0 or -errno */
    /* The interest in fd changes from `old` to `events` (0: none). 0 or -errno. */
    int (*watch)(struct uk_evloop *loop, int fd, unsigned old, unsigned events);
    /* fd is about to be closed while watched (NULL: closing is enough, as with epoll). */
    void (*forget)(struct uk_evloop *loop, int fd, unsigned old);
    /* Block up to timeout_ms (-1: no limit) for readiness: the number of ready entries, or -errno. */
    int (*wait)(struct uk_evloop *loop, int timeout_ms);
    /* Hand the n ready entries of the last wait to uk_evloop_ready. */
    void (*dispatch)(struct uk_evloop *loop, int n);
};

struct uk_evloop {
    struct uk_evserver srv;
    const struct uk_poller *poller;
    int listen_fd;
    void *backend;              /* the poller's own state */
};

/* Serve forever; returns -errno only if setup or the wait itself fails. */
int uk_evloop_run(int listen_fd, const struct uk_server_config *cfg, const struct uk_poller *poller,
                  void *backend);
/* Called by dispatch: fd is ready for `events` (errors and hang-ups count as both). */
void uk_evloop_ready(struct uk_evloop *loop, int fd, unsigned events);

#endif
