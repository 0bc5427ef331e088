/* conn.h - the one connection state machine of the event-driven models (select, poll, epoll: chapter 03;
 * io_uring: chapter 07), plus what it needs: the connection table and one timer heap.
 *
 *            accept
 *              |
 *              v           bytes in, no complete request yet
 *   +------> READ <------------------------+
 *   |          | a complete request          |
 *   |          v                             |
 *   |      /delay? --yes--> DELAY            |
 *   |          | no           | timer fires  |
 *   |          v              v              |
 *   |        WRITE <----------+              |
 *   |          | response sent               |
 *   +----------+-- keep-alive ---------------+
 *              | Connection: close / HTTP/1.0       broken framing (400, 413, 414, 431, 505)
 *              v                                        v
 *            CLOSE <---------- EOF or timer ------- LINGER (half-closed, draining the client)
 *
 * Every state has a deadline: READ and WRITE the idle timeout (counted in `timeouts` when it passes), DELAY the
 * end of the delay, LINGER a bound on draining. Peer gone or an error in any state: CLOSE.
 *
 * The functions below make every transition; the models only move bytes (readiness: recv/send/sendfile when
 * the fd is ready; io_uring: submit operations and take their completions) and report what happened.
 */
#ifndef URINGKIT_SERVERS_CONN_H
#define URINGKIT_SERVERS_CONN_H

#include <stdint.h>

#include "common.h"

#define UK_ACCEPT_BATCH 64  /* accepts per wakeup: a connection burst cannot starve the connected clients */

enum uk_conn_state { UK_READ, UK_DELAY, UK_WRITE, UK_LINGER, UK_CLOSE };

struct uk_conn {
    int fd;
    enum uk_conn_state state;
    uint64_t deadline;          /* loop clock (ms): when the current state gives up */
    int timer;                  /* index in the timer heap, -1 when not in it */
    unsigned watching;          /* readiness models: the events registered for fd */
    unsigned inflight;          /* io_uring: operations submitted and not completed (fd stays open until 0) */
    char *chunk;                /* io_uring: file bytes read through the ring, on their way to the socket */
    size_t chunk_len, chunk_sent;
    int chunk_pool;             /* io_uring: which size of chunk (small, big) it came from */
    struct uk_conn *next_free;
    struct uk_http http;        /* last: the big buffers, touched only as far as they are used */
};

struct uk_timer {
    uint64_t key;               /* may be earlier than conn->deadline: deadlines only move by storing the */
    struct uk_conn *conn;       /* later value in the conn, and the heap re-files the entry when it surfaces */
};

struct uk_evserver {
    const struct uk_server_config *cfg;
    struct uk_http_site site;
    struct uk_acceptor acceptor;
    struct uk_conn **by_fd;     /* fd -> connection */
    int max_fds;                /* fds at or above this are refused (RLIMIT_NOFILE; select: FD_SETSIZE) */
    struct uk_conn *free_list;  /* closed connections are recycled: no malloc per request or per connection */
    struct uk_timer *heap;
    int timers;                 /* entries in use; the heap holds max_fds, one per possible connection */
    uint64_t now;               /* the loop clock, read once per wakeup */
};

int uk_evserver_open(struct uk_evserver *s, int listen_fd, const struct uk_server_config *cfg, int max_fds);

/* A new connection in READ, or NULL (then the fd was refused and closed). */
struct uk_conn *uk_conn_new(struct uk_evserver *s, int fd);
/* Close the fd, count it, recycle the connection. */
void uk_conn_free(struct uk_evserver *s, struct uk_conn *c);

/* Bytes arrived (or a delay ended): parse, answer, and return the next state: READ, DELAY or WRITE. */
enum uk_conn_state uk_conn_advance(struct uk_evserver *s, struct uk_conn *c);
/* The output is sent: READ/DELAY/WRITE for the next pipelined request, LINGER or CLOSE. */
enum uk_conn_state uk_conn_sent(struct uk_evserver *s, struct uk_conn *c);
/* The deadline passed: the next state (WRITE after a delay, CLOSE otherwise). */
enum uk_conn_state uk_conn_expired(struct uk_evserver *s, struct uk_conn *c);
/* Sending is blocked on the peer: give it the idle timeout to make progress. */
void uk_conn_writing(struct uk_evserver *s, struct uk_conn *c);

/* Timers: ms until the earliest deadline (-1: none); pop the expired ones, one per call (NULL: none left). */
int uk_timers_wait_ms(struct uk_evserver *s);
struct uk_conn *uk_timers_pop_expired(struct uk_evserver *s);

#endif
