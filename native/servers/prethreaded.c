/* prethreaded.c - the prethreaded server: a pool of cfg->workers threads, started once, each blocking in accept
 * on the shared listener and serving one connection at a time. No thread creation per connection and little
 * memory, but at most `workers` clients are served at once; the others wait in the backlog.
 *
 * Try it:
 *   python -m uringkit.servers prethreaded --impl c --port 8080 --workers 8
 *   curl -s localhost:8080/
 */
#include <errno.h>
#include <stdlib.h>

#include "blocking.h"
#include "servers.h"

static struct uk_blocking server;  /* shared by the pool: the acceptor's reserve fd is under its mutex */

static void serve_own_buffer(struct uk_blocking *b, int fd)
{
    static __thread struct uk_http *h;  /* each worker's connection buffer, allocated on its first client */
    if (!h && !(h = malloc(sizeof *h))) {
        uk_refuse(b->cfg, fd);
        return;
    }
    uk_blocking_serve(b, fd, h);
}

static void *worker(void *arg)
{
    uk_blocking_accept_loop(&server, serve_own_buffer);
    return NULL;
}

int uk_serve_prethreaded(int listen_fd, const struct uk_server_config *cfg)
{
    int err = uk_blocking_open(&server, listen_fd, cfg);
    if (err)
        return err;
    pthread_t first = 0;
    int started = 0;
    for (int i = 0; i < cfg->workers; i++) {
        pthread_t t;
        err = uk_thread_start(&t, worker, NULL, 0);
        if (err == 0 && started++ == 0)
            first = t;
    }
    if (started == 0)
        return -err;
    pthread_join(first, NULL);  /* workers never return: the main thread just waits with them */
    return -EINTR;
}
