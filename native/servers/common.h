/* common.h - what every C server model shares besides HTTP: accepting when fds run out, sending a response,
 * the clock, closing gracefully. */
#ifndef URINGKIT_SERVERS_COMMON_H
#define URINGKIT_SERVERS_COMMON_H

#include <pthread.h>
#include <stdint.h>

#include "http.h"
#include "stats.h"

#define UK_BACKOFF_US 10000     /* out of fds or kernel memory with nothing to free: wait this long, never spin */
#define UK_LINGER_MS 1000       /* after a closing error, drain the client's unread bytes this long at most */
#define UK_SEND_CHUNK (1 << 20) /* sendfile at most this much per call, so one big file cannot hog a loop */

/* accept4 that survives EMFILE/ENFILE: a reserve fd is closed, one pending connection accepted and closed
 * (counted in `refused`), and the reserve reopened. Otherwise the listener stays readable and the server spins. */
struct uk_acceptor {
    int listen_fd;
    int reserve_fd;
    pthread_mutex_t lock;       /* threads of one process share the reserve */
    const struct uk_server_config *cfg;
};

int uk_acceptor_init(struct uk_acceptor *a, int listen_fd, const struct uk_server_config *cfg);
/* A connected fd (counted as accepted and open), or -errno: -EAGAIN when nothing is pending. */
int uk_accept(struct uk_acceptor *a, int flags);
/* The server drops a connection it already accepted (fork/thread failure, fd over FD_SETSIZE). */
void uk_refuse(const struct uk_server_config *cfg, int fd);
/* The connection is over: close it and count it. */
void uk_close(const struct uk_server_config *cfg, int fd);

/* Send the pending output (head, small bodies, then the file with sendfile): 1 all sent, 0 the socket would
 * block (or its SO_SNDTIMEO expired), -1 the peer is gone. */
int uk_flush(int fd, struct uk_http *h);

/* Blocking sockets: half-close, drain what the client still sends (bounded), so that closing does not turn into
 * a reset that destroys the error response before the client reads it. */
void uk_linger_blocking(int fd, char *scratch, size_t size);

uint64_t uk_now_ms(void);       /* CLOCK_MONOTONIC, the clock io_uring's absolute timeouts use too */
void uk_sleep_ms(unsigned ms);
int uk_server_setup(void);      /* process-wide: SIGPIPE ignored (a peer that left must not kill us); 0/-errno */

#endif
