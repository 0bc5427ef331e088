/* threaded.c - the threaded server: the main thread accepts and starts one detached thread per connection.
 * Threads share one address space, so starting one is far cheaper than a fork, but each still costs a stack
 * and a context switch per blocking call, and thousands of them crowd the scheduler.
 *
 * Try it:
 *   python -m uringkit.servers threaded --impl c --port 8080
 *   curl -s localhost:8080/
 */
#include <stdint.h>
#include <stdlib.h>

#include "blocking.h"
#include "servers.h"

static struct uk_blocking server;  /* one per process; the threads only read it */

static void *serve_thread(void *arg)
{
    int fd = (int)(intptr_t)arg;
    struct uk_http *h = malloc(sizeof *h);  /* per connection: a 64 KiB stack cannot hold 28 KiB of buffers */
    if (!h) {
        uk_refuse(server.cfg, fd);
        return NULL;
    }
    uk_blocking_serve(&server, fd, h);
    free(h);
    return NULL;
}

static void thread_per_connection(struct uk_blocking *b, int fd)
{
    pthread_t t;
    if (uk_thread_start(&t, serve_thread, (void *)(intptr_t)fd, 1) != 0)
        uk_refuse(b->cfg, fd);  /* EAGAIN: thread limit or memory; this client is dropped, the server goes on */
}

int uk_serve_threaded(int listen_fd, const struct uk_server_config *cfg)
{
    int err = uk_blocking_open(&server, listen_fd, cfg);
    if (err)
        return err;
    uk_blocking_accept_loop(&server, thread_per_connection);
}
