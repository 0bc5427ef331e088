/* http.c - the routes and the response writer around the bounded parser of http_parse.c (see http.h). */
#define _GNU_SOURCE /* O_PATH */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "http.h"

/* --- writing ------------------------------------------------------------------------------------------------ */
struct writer {
    char *p, *end;
    int overflow;
};

static void put(struct writer *w, const char *s, size_t n)
{
    if ((size_t)(w->end - w->p) < n) {
        w->overflow = 1;
        return;
    }
    memcpy(w->p, s, n);
    w->p += n;
}

static void puts_(struct writer *w, const char *s) { put(w, s, strlen(s)); }

static void put_uint(struct writer *w, uint64_t n)
{
    char digits[24];
    int i = sizeof digits;
    do
        digits[--i] = (char)('0' + n % 10);
    while ((n /= 10) && i > 0);
    put(w, digits + i, sizeof digits - (size_t)i);
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

/* Status line and headers (+ the body when it is given) appended to the output in one piece. */
static void respond(struct uk_http *h, int status, const char *ctype, uint64_t length, const char *body,
                    int head_only)
{
    struct writer w = {h->out + h->out_end, h->out + UK_HTTP_OUT_SIZE, 0};
    puts_(&w, "HTTP/1.1 ");
    put_uint(&w, (uint64_t)status);
    puts_(&w, " ");
    puts_(&w, reason(status));
    puts_(&w, "\r\nContent-Type: ");
    puts_(&w, ctype);
    puts_(&w, "\r\nContent-Length: ");
    put_uint(&w, length);
    if (status == 405)
        puts_(&w, "\r\nAllow: GET, HEAD");
    puts_(&w, h->close_after ? "\r\nConnection: close\r\n\r\n" : "\r\n\r\n");
    if (body && !head_only)
        put(&w, body, length);
    /* UK_HTTP_RESPONSE_MAX of room is guaranteed before a request is taken, and every head plus small body
     * here is shorter; an overflow would be a bug in this file, answered by closing rather than misframing. */
    if (w.overflow) {
        h->close_after = 1;
        return;
    }
    h->out_end = (size_t)(w.p - h->out);
    h->responses++;
}

static void respond_error(struct uk_http *h, const struct uk_http_site *site, int status, int head_only)
{
    static const char *const bodies[] = {"Bad Request\n", "Forbidden\n", "Not Found\n", "Method Not Allowed\n",
                                         "Content Too Large\n", "URI Too Long\n",
                                         "Request Header Fields Too Large\n", "Service Unavailable\n",
                                         "HTTP Version Not Supported\n"};
    static const int codes[] = {400, 403, 404, 405, 413, 414, 431, 503, 505};
    const char *body = "Error\n";
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (codes[i] == status)
            body = bodies[i];
    if (status != 403 && status != 404) {
        UK_STAT(site->cfg, bad_requests, 1);
        if (status != 405) {
            h->close_after = 1;  /* the framing can no longer be trusted */
            h->linger = 1;
        }
    }
    respond(h, status, "text/plain; charset=utf-8", strlen(body), body, head_only);
}

/* --- routes ------------------------------------------------------------------------------------------------- */
#define HELLO "Hello from uringkit\n"

static const char *content_type(const char *path, size_t len)
{
    static const char *const table[][2] = {
        {".html", "text/html; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"}, {".png", "image/png"}, {".jpg", "image/jpeg"},
        {".jpeg", "image/jpeg"}, {".svg", "image/svg+xml"}, {".txt", "text/plain; charset=utf-8"},
        {".json", "application/json"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        size_t n = strlen(table[i][0]);
        if (len >= n && strcasecmp(path + len - n, table[i][0]) == 0)
            return table[i][1];
    }
    return "application/octet-stream";
}

/* The whole "/" response is a constant (one per connection disposition): a memcpy, no formatting. */
static void respond_hello(struct uk_http *h, int head_only)
{
    static const char keep[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                               "Content-Length: 20\r\n\r\n" HELLO;
    static const char closing[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                  "Content-Length: 20\r\nConnection: close\r\n\r\n" HELLO;
    _Static_assert(sizeof HELLO - 1 == 20, "Content-Length above must match HELLO");
    const char *r = h->close_after ? closing : keep;
    size_t n = (h->close_after ? sizeof closing : sizeof keep) - 1 - (head_only ? sizeof HELLO - 1 : 0);
    memcpy(h->out + h->out_end, r, n);  /* n < UK_HTTP_RESPONSE_MAX, which step() keeps free */
    h->out_end += n;
    h->responses++;
}

static void respond_delay(struct uk_http *h, const struct uk_http_site *site, const struct uk_request *req,
                          int head_only)
{
    const char *q = req->query, *end = req->query + req->query_len;
    unsigned long ms = 0;
    int found = 0, digits = 0;
    while (q < end && !found) {  /* find the ms=N parameter among &-separated ones */
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pend = amp ? amp : end;
        if (pend - q > 3 && memcmp(q, "ms=", 3) == 0) {
            found = 1;
            for (const char *d = q + 3; d < pend; d++, digits++) {
                if (*d < '0' || *d > '9' || digits > 5) {
                    respond_error(h, site, 400, head_only);
                    return;
                }
                ms = ms * 10 + (unsigned long)(*d - '0');
            }
        }
        q = pend + 1;
    }
    if (!found || ms > UK_HTTP_MAX_DELAY_MS) {
        respond_error(h, site, 400, head_only);
        return;
    }
    char body[32];
    struct writer w = {body, body + sizeof body, 0};
    puts_(&w, "delayed ");
    put_uint(&w, ms);
    puts_(&w, " ms\n");
    respond(h, 200, "text/plain; charset=utf-8", (uint64_t)(w.p - body), body, head_only);
    h->delay_ms = (unsigned)ms;
}

static int open_beneath_fallback(const struct uk_http_site *site, const char *rel)
{
    /* No openat2 (Linux < 5.6): resolve the path and check it is still under the docroot. */
    char full[PATH_MAX], real[PATH_MAX];
    const char *root = site->cfg->docroot;
    size_t rl = strlen(root), pl = strlen(rel);
    if (rl + 1 + pl + 1 > sizeof full)
        return -ENAMETOOLONG;
    memcpy(full, root, rl);
    full[rl] = '/';
    memcpy(full + rl + 1, rel, pl + 1);
    if (!realpath(full, real))
        return -errno;
    if (strncmp(real, root, rl) != 0 || (real[rl] != '/' && real[rl] != '\0'))
        return -EXDEV;
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

static int open_beneath(const struct uk_http_site *site, const char *rel)
{
    static int no_openat2;  /* set once the kernel says ENOSYS; a benign race between threads */
    if (!no_openat2) {
        /* RESOLVE_BENEATH: no absolute paths, no '..' above the docroot, no symlink out of it, atomically.
         * O_NONBLOCK: a FIFO planted in the docroot must not block the server on open. */
        struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
                               .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
        long fd = syscall(SYS_openat2, site->docroot_fd, rel, &how, sizeof how);
        if (fd >= 0 || errno != ENOSYS)
            return fd >= 0 ? (int)fd : -errno;
        no_openat2 = 1;
    }
    return open_beneath_fallback(site, rel);
}

static void respond_static(struct uk_http *h, const struct uk_http_site *site, const char *rel, size_t len,
                           int head_only)
{
    if (len == 0) {
        respond_error(h, site, 404, head_only);
        return;
    }
    int fd = open_beneath(site, rel);
    if (fd == -EXDEV || fd == -ELOOP || fd == -EACCES || fd == -EPERM) {
        respond_error(h, site, 403, head_only);  /* outside the docroot, or not ours to serve */
        return;
    }
    if (fd == -EMFILE || fd == -ENFILE || fd == -ENOMEM) {
        h->close_after = 1;  /* out of fds: shed this connection rather than keep it waiting */
        respond_error(h, site, 503, head_only);
        return;
    }
    if (fd < 0) {
        respond_error(h, site, 404, head_only);
        return;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        respond_error(h, site, 404, head_only);
        return;
    }
    respond(h, 200, content_type(rel, len), (uint64_t)st.st_size, NULL, head_only);
    if (head_only || st.st_size == 0) {
        close(fd);
        return;
    }
    h->file_fd = fd;
    h->file_off = 0;
    h->file_left = (uint64_t)st.st_size;
}

static void route(struct uk_http *h, const struct uk_http_site *site, struct uk_request *req)
{
    int head_only = req->method == UK_HTTP_HEAD;
    if (req->close)
        h->close_after = 1;
    if (req->method == UK_HTTP_OTHER)
        respond_error(h, site, 405, 0);
    else if (req->path_len == 1)
        respond_hello(h, head_only);
    else if (strcmp(req->path, "/delay") == 0)
        respond_delay(h, site, req, head_only);
    else if (strncmp(req->path, "/static/", 8) != 0)
        respond_error(h, site, 404, head_only);
    else if (req->traversal)
        respond_error(h, site, 403, head_only);
    else
        respond_static(h, site, req->path + 8, req->path_len - 8, head_only);
}

/* --- the connection buffer ---------------------------------------------------------------------------------- */
void uk_http_init(struct uk_http *h)
{
    h->in_start = h->in_end = h->scanned = 0;
    h->discard = 0;
    h->out_start = h->out_end = 0;
    h->file_fd = -1;
    h->file_off = h->file_left = 0;
    h->delay_ms = h->responses = 0;
    h->close_after = h->linger = 0;
}

void uk_http_reset(struct uk_http *h)
{
    if (h->file_fd >= 0)
        close(h->file_fd);
    uk_http_init(h);
}

void uk_http_step(struct uk_http *h, const struct uk_http_site *site)
{
    while (!h->close_after && !h->file_left && !h->delay_ms &&
           UK_HTTP_OUT_SIZE - h->out_end >= UK_HTTP_RESPONSE_MAX) {
        size_t avail = h->in_end - h->in_start;
        if (h->discard) {  /* the body of the previous request: skip it */
            size_t take = h->discard < avail ? (size_t)h->discard : avail;
            h->in_start += take;
            h->discard -= take;
            avail -= take;
        }
        if (avail == 0 || h->discard) {
            if (avail == 0)
                h->in_start = h->in_end = h->scanned = 0;
            return;
        }
        struct uk_request req;
        int n = uk_http_parse(h->in + h->in_start, avail, &h->scanned, &req);
        if (n == 0)
            return;
        if (n < 0) {
            respond_error(h, site, -n, 0);
            return;
        }
        h->in_start += (size_t)n;
        h->scanned = 0;
        h->discard = req.content_length;
        route(h, site, &req);
    }
}

size_t uk_http_in_room(struct uk_http *h, char **at)
{
    if (h->in_start > 0 && h->in_end == UK_HTTP_IN_SIZE) {
        memmove(h->in, h->in + h->in_start, h->in_end - h->in_start);
        h->in_end -= h->in_start;
        h->in_start = 0;
    }
    *at = h->in + h->in_end;
    return UK_HTTP_IN_SIZE - h->in_end;
}

void uk_http_sent(struct uk_http *h, const struct uk_http_site *site)
{
    if (h->responses)
        UK_STAT(site->cfg, requests, h->responses);
    h->responses = 0;
    h->out_start = h->out_end = 0;
    if (h->file_fd >= 0) {
        close(h->file_fd);
        h->file_fd = -1;
    }
    h->file_left = 0;
}

int uk_http_site_open(struct uk_http_site *site, const struct uk_server_config *cfg)
{
    site->cfg = cfg;
    site->docroot_fd = open(cfg->docroot, O_PATH | O_DIRECTORY | O_CLOEXEC);
    return site->docroot_fd < 0 ? -errno : 0;
}

void uk_http_site_close(struct uk_http_site *site)
{
    if (site->docroot_fd >= 0)
        close(site->docroot_fd);
    site->docroot_fd = -1;
}
