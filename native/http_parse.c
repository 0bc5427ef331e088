/* http_parse.c - the bounded, allocation-free HTTP/1.1 request parser every C server shares (see http.h for its
 * limits and uk_http_parse's contract; http.c answers what it parses). */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "http.h"

#define UK_HTTP_MAX_LENGTH_DIGITS 18  /* more digits than this cannot fit a uint64_t safely: over the limit */

static int is_tchar(unsigned char c)
{
    /* RFC 9110 token characters */
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

static int header_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* Percent-decode in place; -400 on a bad escape or a NUL, else the decoded length. */
static long decode_path(char *p, size_t len)
{
    size_t r = 0, w = 0;
    while (r < len) {
        unsigned char c = (unsigned char)p[r];
        if (c == '%') {
            if (len - r < 3)
                return -400;
            int hi = hexval((unsigned char)p[r + 1]), lo = hexval((unsigned char)p[r + 2]);
            if (hi < 0 || lo < 0)
                return -400;
            c = (unsigned char)(hi * 16 + lo);
            r += 3;
        } else {
            r += 1;
        }
        if (c == 0)
            return -400;
        p[w++] = (char)c;
    }
    return (long)w;
}

static int has_dotdot_segment(const char *p, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && p[j] != '/')
            j++;
        if (j - i == 2 && p[i] == '.' && p[i + 1] == '.')
            return 1;
        i = j + 1;
    }
    return 0;
}

static int parse_version(const char *v, size_t len, int *minor)
{
    if (len == 8 && memcmp(v, "HTTP/1.", 7) == 0 && (v[7] == '0' || v[7] == '1')) {
        *minor = v[7] - '0';
        return 0;
    }
    if (len < 6 || memcmp(v, "HTTP/", 5) != 0)
        return -400;
    for (size_t i = 5; i < len; i++)  /* HTTP/<digits>[.<digits>]: well-formed, just not ours */
        if (!((v[i] >= '0' && v[i] <= '9') || (v[i] == '.' && i > 5 && i + 1 < len)))
            return -400;
    return -505;
}

static int parse_request_line(char *line, size_t len, struct uk_request *req, int *minor)
{
    char *sp1 = memchr(line, ' ', len);
    if (!sp1 || sp1 == line)
        return -400;
    char *target = sp1 + 1;
    char *sp2 = memchr(target, ' ', (size_t)(line + len - target));
    if (!sp2 || sp2 == target || *target != '/')
        return -400;
    for (char *m = line; m < sp1; m++)
        if (!is_tchar((unsigned char)*m))
            return -400;
    for (char *t = target; t < sp2; t++)
        if ((unsigned char)*t <= ' ' || *t == 0x7f)
            return -400;
    int v = parse_version(sp2 + 1, (size_t)(line + len - sp2 - 1), minor);
    if (v < 0)
        return v;

    size_t mlen = (size_t)(sp1 - line);
    req->method = (mlen == 3 && memcmp(line, "GET", 3) == 0)    ? UK_HTTP_GET
                  : (mlen == 4 && memcmp(line, "HEAD", 4) == 0) ? UK_HTTP_HEAD
                                                                 : UK_HTTP_OTHER;
    char *q = memchr(target, '?', (size_t)(sp2 - target));
    char *path_end = q ? q : sp2;
    req->query = q ? q + 1 : sp2;
    req->query_len = q ? (size_t)(sp2 - q - 1) : 0;
    long n = decode_path(target, (size_t)(path_end - target));
    if (n < 0)
        return (int)n;
    target[n] = '\0';  /* decoding only shrinks, and the query was located first */
    req->path = target;
    req->path_len = (size_t)n;
    req->traversal = has_dotdot_segment(target, (size_t)n);
    return 0;
}

static int parse_content_length(const char *v, size_t len, uint64_t *out)
{
    if (len == 0)
        return -400;
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -400;
        if (i < UK_HTTP_MAX_LENGTH_DIGITS)
            n = n * 10 + (uint64_t)(v[i] - '0');
    }
    if (len > UK_HTTP_MAX_LENGTH_DIGITS)
        n = UINT64_MAX;
    *out = n;
    return 0;
}

static int has_close_token(const char *v, size_t len)
{
    for (size_t i = 0; i < len;) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t j = i;
        while (j < len && v[j] != ',' && v[j] != ' ' && v[j] != '\t')
            j++;
        if (j - i == 5 && strncasecmp(v + i, "close", 5) == 0)
            return 1;
        i = j;
    }
    return 0;
}

/* The header block: from after the request line's CRLF up to (not including) the final empty line's CRLF. */
static int parse_headers(char *p, char *end, struct uk_request *req)
{
    int lines = 0, have_length = 0;
    while (p < end) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol || eol == p || eol[-1] != '\r')
            return -400;
        if (++lines > UK_HTTP_MAX_HEADER_LINES)
            return -431;
        char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p)
            return -400;  /* no colon, an empty name, or an obsolete folded line (starts with a space) */
        for (char *c = p; c < colon; c++)
            if (!is_tchar((unsigned char)*c))
                return -400;
        char *v = colon + 1, *vend = eol - 1;
        while (v < vend && (*v == ' ' || *v == '\t'))
            v++;
        while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
        size_t nlen = (size_t)(colon - p), vlen = (size_t)(vend - v);
        if (header_is(p, nlen, "content-length")) {
            uint64_t n;
            if (parse_content_length(v, vlen, &n) < 0 || (have_length && n != req->content_length))
                return -400;
            req->content_length = n;
            have_length = 1;
        } else if (header_is(p, nlen, "transfer-encoding")) {
            return -400;  /* we do not speak chunked bodies: refuse rather than misframe */
        } else if (header_is(p, nlen, "connection") && has_close_token(v, vlen)) {
            req->close = 1;
        }
        p = eol + 1;
    }
    return req->content_length > UK_HTTP_MAX_BODY ? -413 : 0;
}

int uk_http_parse(char *buf, size_t len, size_t *scanned, struct uk_request *req)
{
    size_t from = *scanned > 3 ? *scanned - 3 : 0;
    char *line_end = memchr(buf, '\n', len < UK_HTTP_MAX_LINE + 2 ? len : UK_HTTP_MAX_LINE + 2);
    if (!line_end)
        return len > UK_HTTP_MAX_LINE + 1 ? -414 : 0;
    if (line_end == buf || line_end[-1] != '\r')
        return -400;
    size_t line_len = (size_t)(line_end - 1 - buf);
    if (line_len > UK_HTTP_MAX_LINE)
        return -414;
    /* The end of head may overlap the request line's CRLF ("GET / HTTP/1.1\r\n\r\n": no headers). */
    char *head_end = from < len ? memmem(buf + from, len - from, "\r\n\r\n", 4) : NULL;
    size_t header_bytes = (head_end ? (size_t)(head_end + 4 - buf) : len) - (size_t)(line_end + 1 - buf);
    if (header_bytes > UK_HTTP_MAX_HEADER_BYTES + 2)
        return -431;
    if (!head_end) {
        *scanned = len;
        return 0;
    }
    int minor = 1;
    memset(req, 0, sizeof *req);
    int res = parse_request_line(buf, line_len, req, &minor);
    if (res < 0)
        return res;
    res = parse_headers(line_end + 1, head_end + 2, req);
    if (res < 0)
        return res;
    if (minor == 0)
        req->close = 1;
    return (int)(head_end + 4 - buf);
}
