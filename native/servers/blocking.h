/* blocking.h - the base every blocking model shares (chapter 02), like CPython's socketserver.BaseServer.
 *
 * It owns the accept loop and the per-connection request loop; the models (iterative, forking, preforked,
 * threaded, prethreaded) differ only in the hook that receives each accepted connection, and in how many
 * processes or threads run the loop.
 */
#ifndef URINGKIT_SERVERS_BLOCKING_H
#define URINGKIT_SERVERS_BLOCKING_H

#include <pthread.h>

#include "common.h"

#define UK_THREAD_STACK (64 * 1024)  /* a connection thread needs little stack: its buffers are on the heap */

struct uk_blocking {
    const struct uk_server_config *cfg;
    struct uk_acceptor acceptor;
    struct uk_http_site site;
    struct uk_http *http;       /* the connection buffer of single-threaded processes (iterative, forking...) */
};

typedef void (*uk_handoff)(struct uk_blocking *b, int fd);

/* Setup shared by all: SIGPIPE, the docroot, the fd reserve, one connection buffer. 0 or -errno. */
int uk_blocking_open(struct uk_blocking *b, int listen_fd, const struct uk_server_config *cfg);

/* Accept forever, handing every connection to the hook (socketserver's process_request). Never returns. */
__attribute__((noreturn)) void uk_blocking_accept_loop(struct uk_blocking *b, uk_handoff handoff);

/* Serve one connection until it closes, times out or fails; closes it (socketserver's finish_request). */
void uk_blocking_serve(struct uk_blocking *b, int fd, struct uk_http *h);

/* The hook of the iterative model and of every pre-spawned worker: serve it right here. */
void uk_blocking_inline(struct uk_blocking *b, int fd);

/* Process models: on SIGTERM the parent stops its children and waits for every one before it exits, so a
 * Server handle that reaped the parent finds nothing left. A child calls uk_child_defaults() first thing. */
int uk_stop_children_on_term(void);
void uk_child_defaults(void);

/* Threads with a small stack; detached ones clean up after themselves. 0 or an errno value. */
int uk_thread_start(pthread_t *t, void *(*fn)(void *), void *arg, int detached);

#endif
