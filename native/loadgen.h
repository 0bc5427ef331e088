/* loadgen.h - the load generator the book measures every server with (chapter 04, "The benchmark").
 *
 * One call runs a whole load test and returns when it is over: uk_load_run(&config, &result). Python reaches it
 * through uringkit/load.py (cffi releases the GIL for the duration of the call); C callers may use it directly.
 *
 * What it does, in one paragraph: `threads` threads, each with its own epoll loop and its own share of the
 * `connections`, send `GET path` to one loopback server and read each response in full (status line,
 * Content-Length, body), either as fast as the server answers (closed loop: each connection sends its next request
 * when the previous response is complete) or at a fixed `rate` (open loop: request k is *intended* at
 * t0 + k/rate, and its latency runs from that intended time, so a stalled server cannot hide its stall by slowing
 * the client down - no coordinated omission). With keep-alive, a closed loop may also pipeline: send `pipeline`
 * requests back to back, then read their responses in order. Every outcome is counted: nothing is retried
 * silently, nothing is dropped from the latency histogram.
 */
#ifndef URINGKIT_LOADGEN_H
#define URINGKIT_LOADGEN_H

#include <stddef.h>
#include <stdint.h>

/* Latency histogram: log-linear buckets of 1 us resolution below 256 us, then 128 buckets per power of two
 * (relative error under 0.8 %), up to 2^36 us (19 hours). Fixed memory: 30 KiB per thread, whatever the run. */
#define UK_HIST_LINEAR 256
#define UK_HIST_SUB 128
#define UK_HIST_GROUPS 28
#define UK_HIST_BUCKETS (UK_HIST_LINEAR + UK_HIST_GROUPS * UK_HIST_SUB)

/* The bucket a latency of `us` microseconds is counted in (histogram.c; the last bucket takes everything
 * longer). Not for Python: it reads the buckets through the functions below. */
unsigned uk_hist_index(uint64_t us);

/* cffi-begin */
#define UK_PIPELINE_MAX 1000   /* requests per batch on one connection: the bytes are built once, that many times */

struct uk_load_config {
    const char *address;        /* numeric address of the server: 127.0.0.0/8 or ::1 */
    int port;
    const char *host_header;    /* value of the Host: header */
    const char *path;           /* request target, e.g. "/" or "/delay?ms=20" */
    int connections;            /* concurrent connections (open loop: the most requests in flight at once) */
    int threads;                /* load threads; each owns connections / threads of them */
    const int *cpus;            /* NULL, or n_cpus CPU numbers: thread i runs on cpus[i % n_cpus] */
    int n_cpus;
    double duration_s;          /* stop after this long; 0 = no time limit (then requests must be > 0) */
    uint64_t requests;          /* stop after exactly this many completed responses; 0 = no count limit */
    double rate;                /* open loop: requests per second, all threads together; 0 = closed loop */
    int keepalive;              /* 0: a new connection per request, sent with "Connection: close" */
    int pipeline;               /* closed loop, keep-alive: requests sent back to back before reading (>= 1) */
    int timeout_ms;             /* a request with no complete response this long after it was sent fails */
    int connect_timeout_ms;     /* a connect not established this long after it started fails */
    int ramp_window;            /* most new connections awaiting the server's accept at once, all threads */
    int spread_sources;         /* IPv4: bind each socket to 127.0.0.X first (a port space per source address) */
    const int *cancel;          /* NULL, or a flag another thread sets to non-zero to end the run early */
};

struct uk_load_result {
    uint64_t completed;         /* responses read in full (any status) */
    uint64_t non_2xx;           /* of completed: status outside 200-299 */
    uint64_t connect_errors;    /* connects that failed: refused, reset, EADDRNOTAVAIL, EMFILE... */
    uint64_t timeouts;          /* requests that failed for lack of time, connect timeouts included */
    uint64_t connect_timeouts;  /* of timeouts: requests whose connect was not established in connect_timeout_ms */
    uint64_t read_errors;       /* established connections that failed mid-request: reset, EOF, not HTTP */
    uint64_t connects;          /* connections established */
    uint64_t slow_connects;     /* of connects: took >= 1 s (the server's accept queue overflowed, SYN resent) */
    uint64_t unsent;            /* open loop: sends already due at the end but never made (no free connection) */
    uint64_t peak_connections;  /* most connections established at the same moment */
    uint64_t in_flight;         /* requests started but not finished when the run ended (not counted above) */
    uint64_t unserved;          /* clients (connection slots) that sent requests but never got one response */
    uint64_t bytes_read;
    int last_connect_errno;     /* errno of the latest connect error (0: none) */
    int last_read_errno;        /* errno of the latest read error (0: EOF before the response was complete) */
    int last_non_2xx_status;
    double elapsed_s;           /* from the first connect to the end of the run */
    double ramp_s;              /* closed loop: from the start until every connection had been accepted */
    double cpu_user_s;          /* CPU time of the load threads themselves */
    double cpu_system_s;
    double latency_mean_us;     /* exact (from the sum), unlike the percentiles */
    double latency_max_us;      /* exact */
    double connect_max_us;      /* slowest successful connect */
    uint64_t latency_us[3840];  /* the histogram; 3840 == UK_HIST_BUCKETS (cffi's cdef cannot read macros) */
};

/* Runs the whole test; 0 or -errno (-EINVAL: bad config; -EMFILE: connections exceed the fd hard limit). */
int uk_load_run(const struct uk_load_config *cfg, struct uk_load_result *out);
/* The latency (us) below which `percent` of the completed requests fall (0 < percent <= 100); 0 if none. */
double uk_load_percentile(const struct uk_load_result *r, double percent);
/* Bucket i of the histogram covers [low, low + width) us. */
uint64_t uk_load_bucket_low(unsigned i);
uint64_t uk_load_bucket_width(unsigned i);
/* File descriptors a run with this many connections and threads needs on top of those already open. */
int uk_load_fds_needed(int connections, int threads);
/* cffi-end */

#endif
