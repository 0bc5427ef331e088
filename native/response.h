/* response.h - the load generator's HTTP/1.x response framer (chapter 04, "The benchmark").
 *
 * Fed whatever bytes arrive, in pieces of any size, it tells when a response is complete: status line, headers
 * (Content-Length and Connection read, the rest skipped), then Content-Length bytes of body, or a body that runs
 * to EOF when there is no length. It keeps one truncated header line at a time, so it needs no allocation and a
 * connection costs the same memory at 15,000 connections as at one. Chunked bodies and heads longer than
 * UK_RESPONSE_HEAD_MAX are refused: none of the book's servers sends them, so they mean something else answered.
 */
#ifndef URINGKIT_RESPONSE_H
#define URINGKIT_RESPONSE_H

#include <stdint.h>
#include <sys/types.h>

#define UK_RESPONSE_LINE_KEEP 64          /* bytes of each header line kept: enough for the names and values read */
#define UK_RESPONSE_HEAD_MAX (64 * 1024)  /* a response head longer than this is not one of our servers talking */

enum uk_response_phase { UK_RESPONSE_HEAD, UK_RESPONSE_BODY, UK_RESPONSE_BODY_TO_EOF, UK_RESPONSE_DONE };

struct uk_response {
    uint8_t phase;              /* enum uk_response_phase */
    uint8_t line_len;
    uint8_t server_close;       /* the server said Connection: close, or the body runs to EOF */
    uint16_t status;
    uint16_t head_lines;
    uint32_t head_bytes;
    int64_t body_left;          /* -1: no Content-Length seen (yet) */
    char line[UK_RESPONSE_LINE_KEEP];  /* the current header line, truncated */
};

/* Ready for the next response on the connection. */
void uk_response_reset(struct uk_response *r);
/* Consume up to n bytes; returns the bytes used (fewer once the response is complete: phase is then
 * UK_RESPONSE_DONE and the rest belongs to the next response), or -1 for a response that cannot be framed. */
ssize_t uk_response_feed(struct uk_response *r, const char *p, size_t n);

#endif
