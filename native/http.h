/* http.h - the one HTTP/1.1 request parser and response writer every C server shares (chapter 02).
 *
 * Bounded and allocation-free: a connection owns one struct uk_http (its input and output buffers live inside
 * it) and the servers feed it bytes as they arrive. uk_http_step() parses every complete request in the input
 * (pipelining), answers it by appending the response to the output buffer, and stops when the output needs to
 * be sent first (a file body, a /delay, a closing response, a full buffer) or when the next request is not
 * complete yet. Blocking and event-driven servers differ only in how they move bytes in and out.
 *
 * The HTTP contract (routes, statuses, limits) is the one in uringkit/servers/__init__.py.
 */
#ifndef URINGKIT_HTTP_H
#define URINGKIT_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "servers/stats.h"

#define UK_HTTP_MAX_LINE 8192             /* request line longer than this: 414 */
#define UK_HTTP_MAX_HEADER_BYTES 16384    /* header block longer than this: 431 */
#define UK_HTTP_MAX_HEADER_LINES 100      /* more header lines than this: 431 */
#define UK_HTTP_MAX_BODY (1024 * 1024)    /* a body up to this is read and discarded; over it: 413 */
#define UK_HTTP_MAX_DELAY_MS 10000        /* /delay?ms=N accepts 0..N */
/* The input holds one whole request head at its largest (line + CRLF + headers + CRLF CRLF), so a full input
 * buffer without a complete head has always crossed a limit: the parser never needs to see more. */
#define UK_HTTP_IN_SIZE (UK_HTTP_MAX_LINE + 2 + UK_HTTP_MAX_HEADER_BYTES + 4)
#define UK_HTTP_OUT_SIZE 4096             /* pipelined small responses are batched into one send */
#define UK_HTTP_RESPONSE_MAX 1024         /* room a head (+ small body) needs before the parser takes a request */

/* Where static files come from: the docroot opened once (O_PATH) plus its resolved path for the fallback. */
struct uk_http_site {
    int docroot_fd;
    const struct uk_server_config *cfg;   /* docroot path and the shared counters */
};

struct uk_http {
    size_t in_start, in_end;    /* unparsed input: in[in_start..in_end) */
    size_t scanned;             /* bytes after in_start already known to hold no end of head */
    uint64_t discard;           /* body bytes of the last request still to skip */
    size_t out_start, out_end;  /* output to send: out[out_start..out_end), then the file */
    int file_fd;                /* body of the last response still to send, or -1 */
    uint64_t file_off, file_left;
    unsigned delay_ms;          /* wait this long before sending the output (a /delay request) */
    unsigned responses;         /* responses in the output not yet counted as sent */
    unsigned char close_after;  /* close the connection once the output is sent */
    unsigned char linger;       /* ... gracefully: the framing is broken, unread input may follow */
    char out[UK_HTTP_OUT_SIZE];
    char in[UK_HTTP_IN_SIZE];
};

int uk_http_site_open(struct uk_http_site *site, const struct uk_server_config *cfg);  /* 0 or -errno */
void uk_http_site_close(struct uk_http_site *site);

void uk_http_init(struct uk_http *h);
void uk_http_reset(struct uk_http *h);  /* drops a pending file body (closes its fd); the buffers stay */

/* Parse and answer what the input holds (see the top of this file). */
void uk_http_step(struct uk_http *h, const struct uk_http_site *site);

/* Room for the next recv: compacts the input when needed. 0 only while a response is pending. */
size_t uk_http_in_room(struct uk_http *h, char **at);

static inline int uk_http_out_pending(const struct uk_http *h)
{
    return h->out_end > h->out_start || h->file_left > 0;
}

/* The output was sent: count the responses, reset the output buffer. */
void uk_http_sent(struct uk_http *h, const struct uk_http_site *site);

/* --- the parser alone, also callable from Python (uringkit._native.lib) to show or test it on raw bytes --- */
/* cffi-begin */
enum uk_http_method { UK_HTTP_GET, UK_HTTP_HEAD, UK_HTTP_OTHER };

struct uk_request {
    enum uk_http_method method;
    int close;                  /* HTTP/1.0, or Connection: close */
    int traversal;              /* a '..' segment after percent-decoding */
    uint64_t content_length;
    char *path;                 /* percent-decoded, NUL-terminated, inside the input buffer */
    size_t path_len;
    const char *query;          /* raw, not terminated */
    size_t query_len;
};

/* > 0: a complete head of that many bytes; 0: incomplete so far (*scanned remembers how far it looked);
 * < 0: -status (400, 413, 414, 431, 505). The path is decoded in place: buf is modified. */
int uk_http_parse(char *buf, size_t len, size_t *scanned, struct uk_request *req);
/* cffi-end */

#endif
