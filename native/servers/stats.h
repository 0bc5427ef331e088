/* stats.h - the counters every server keeps, C and Python alike.
 *
 * They live in one small MAP_SHARED mapping of a file the parent (uk.serve's Server handle) created, so a forking
 * server's children, a threaded server's threads and the notebook reading Server.statistics() all see the same
 * numbers. Updates are atomic adds; readers take a snapshot field by field (each field is consistent, the set is
 * not a transaction, which is all a statistics display needs).
 */
#ifndef URINGKIT_SERVER_STATS_H
#define URINGKIT_SERVER_STATS_H

#include <stdint.h>

/* cffi-begin */
struct uk_server_stats {
    uint64_t requests;          /* responses written in full (any status) */
    uint64_t accepted;          /* connections accepted */
    int64_t open_connections;   /* accepted and not yet closed */
    uint64_t refused;           /* connections dropped because a limit was hit: EMFILE, fork or thread failure */
    uint64_t bad_requests;      /* 4xx answers to malformed or refused requests (400, 405, 413, 414, 431, 505) */
    uint64_t timeouts;          /* idle or slow connections the server closed */
};

struct uk_server_config {
    int workers;                /* pool size of preforked/prethreaded (ignored by the other models) */
    int idle_timeout_ms;        /* close a connection with no complete request for this long */
    const char *docroot;        /* absolute path, already resolved (no symlinks) */
    struct uk_server_stats *stats;
};

void uk_stat_add(uint64_t *counter, int64_t delta);
/* cffi-end */

/* For C callers: UK_STAT(cfg, requests, 1) */
#define UK_STAT(cfg, field, delta) uk_stat_add((uint64_t *)&(cfg)->stats->field, (delta))

#endif
