/* response.c - framing an HTTP/1.x response as its bytes arrive, for the load generator (see response.h). */
#define _GNU_SOURCE /* strcasestr */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "response.h"

void uk_response_reset(struct uk_response *r)
{
    r->phase = UK_RESPONSE_HEAD;
    r->line_len = 0;
    r->head_lines = 0;
    r->head_bytes = 0;
    r->body_left = -1;
    r->status = 0;
    r->server_close = 0;
}

static int has_prefix(const char *line, size_t len, const char *name)
{
    size_t n = strlen(name);
    return len >= n && strncasecmp(line, name, n) == 0;
}

/* One complete line of the head (without its CRLF); -1 if the response is not HTTP/1.x we can frame. */
static int head_line(struct uk_response *r)
{
    size_t len = r->line_len;
    if (len && r->line[len - 1] == '\r')
        len--;
    r->line[len] = '\0';
    const char *s = r->line;
    if (r->head_lines++ == 0) {               /* "HTTP/1.1 200 OK" */
        if (len < 12 || memcmp(s, "HTTP/1.", 7) != 0 || s[8] != ' ')
            return -1;
        for (int i = 9; i < 12; i++)
            if (s[i] < '0' || s[i] > '9')
                return -1;
        r->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
        return 0;
    }
    if (len == 0) {                           /* end of the head */
        if (r->status / 100 == 1) {           /* 1xx: an interim response; the real one follows */
            uk_response_reset(r);
            return 0;
        }
        if (r->status == 204 || r->status == 304)
            r->body_left = 0;
        r->phase = r->body_left == 0 ? UK_RESPONSE_DONE : r->body_left > 0 ? UK_RESPONSE_BODY : UK_RESPONSE_BODY_TO_EOF;
        if (r->phase == UK_RESPONSE_BODY_TO_EOF)
            r->server_close = 1;              /* no length: the body ends where the connection does */
        return 0;
    }
    if (has_prefix(s, len, "content-length:")) {
        char *end;
        const char *v = s + 15;
        while (*v == ' ' || *v == '\t')
            v++;
        errno = 0;
        unsigned long long n = strtoull(v, &end, 10);
        if (end == v || errno || (*end && *end != ' ' && *end != '\t') || *v == '-' ||
            r->line_len == UK_RESPONSE_LINE_KEEP - 1) /* a truncated line may have lost digits */
            return -1;
        r->body_left = (int64_t)n;
    } else if (has_prefix(s, len, "connection:")) {
        r->server_close = strcasestr(s + 11, "close") != NULL;
    } else if (has_prefix(s, len, "transfer-encoding:")) {
        return -1;                            /* chunked framing: none of the book's servers sends it */
    }
    return 0;
}

/* Consume up to n bytes of the response; returns the bytes used (fewer once the response is complete), -1 on
 * a response we cannot frame. */
ssize_t uk_response_feed(struct uk_response *r, const char *p, size_t n)
{
    const char *start = p, *end = p + n;
    while (p < end && r->phase != UK_RESPONSE_DONE) {
        if (r->phase == UK_RESPONSE_HEAD) {
            const char *nl = memchr(p, '\n', end - p);
            size_t take = (nl ? nl : end) - p;
            size_t room = UK_RESPONSE_LINE_KEEP - 1 - r->line_len;
            r->head_bytes += take + (nl != NULL);
            if (r->head_bytes > UK_RESPONSE_HEAD_MAX)
                return -1;
            memcpy(r->line + r->line_len, p, take < room ? take : room);
            r->line_len += take < room ? take : room;
            p += take;
            if (!nl)
                break;
            p++;
            if (head_line(r) < 0)
                return -1;
            r->line_len = 0;
        } else if (r->phase == UK_RESPONSE_BODY) {
            size_t take = (size_t)(end - p) < (uint64_t)r->body_left ? (size_t)(end - p) : (size_t)r->body_left;
            r->body_left -= take;
            p += take;
            if (r->body_left == 0)
                r->phase = UK_RESPONSE_DONE;
        } else {                              /* UK_RESPONSE_BODY_TO_EOF: everything until the server closes */
            p = end;
        }
    }
    return p - start;
}
