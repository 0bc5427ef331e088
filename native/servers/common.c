/* common.c - accepting under fd exhaustion, sending, the clock, graceful close (see common.h). */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static int open_reserve(void) { return open("/dev/null", O_RDONLY | O_CLOEXEC); }

int uk_acceptor_init(struct uk_acceptor *a, int listen_fd, const struct uk_server_config *cfg)
{
    a->listen_fd = listen_fd;
    a->cfg = cfg;
    /* Accepted sockets inherit TCP_NODELAY from the listener: set once here, no setsockopt per connection.
     * Without it, a response that leaves in two segments waits for the client's delayed ACK (40 ms). */
    int one = 1;
    if (setsockopt(listen_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 && errno != EOPNOTSUPP)
        return -errno;
    a->reserve_fd = open_reserve();
    if (a->reserve_fd < 0)
        return -errno;
    int err = pthread_mutex_init(&a->lock, NULL);
    if (err) {
        close(a->reserve_fd);
        return -err;
    }
    return 0;
}

static void refuse_one(struct uk_acceptor *a)
{
    /* accept4 fails with EMFILE before it looks at the queue, so first ask whether anyone is waiting: a blocking
     * listener would otherwise keep the reserve closed until the next client, long after fds came back. */
    struct pollfd waiting = {.fd = a->listen_fd, .events = POLLIN};
    int refused = 0;
    pthread_mutex_lock(&a->lock);
    if (a->reserve_fd >= 0 && poll(&waiting, 1, 0) == 1) {
        close(a->reserve_fd);
        int fd = accept4(a->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            close(fd);
            UK_STAT(a->cfg, refused, 1);
            refused = 1;
        }
        a->reserve_fd = open_reserve();
    }
    pthread_mutex_unlock(&a->lock);
    if (!refused)
        uk_sleep_ms(UK_BACKOFF_US / 1000);  /* nobody to refuse, or no reserve: wait for fds, never spin */
}

int uk_accept(struct uk_acceptor *a, int flags)
{
    int fd = accept4(a->listen_fd, NULL, NULL, flags | SOCK_CLOEXEC);
    if (fd >= 0) {
        UK_STAT(a->cfg, accepted, 1);
        UK_STAT(a->cfg, open_connections, 1);
        return fd;
    }
    int err = errno;
    if (err == EMFILE || err == ENFILE)
        refuse_one(a);
    else if (err == ENOBUFS || err == ENOMEM)
        uk_sleep_ms(UK_BACKOFF_US / 1000);
    return -err;
}

void uk_refuse(const struct uk_server_config *cfg, int fd)
{
    UK_STAT(cfg, refused, 1);
    uk_close(cfg, fd);
}

void uk_close(const struct uk_server_config *cfg, int fd)
{
    close(fd);
    UK_STAT(cfg, open_connections, -1);
}

int uk_flush(int fd, struct uk_http *h)
{
    while (uk_http_out_pending(h)) {
        ssize_t n;
        if (h->out_end > h->out_start) {
            /* MSG_MORE: the head waits for the first file bytes, so a small file leaves in one segment */
            int more = h->file_left ? MSG_MORE : 0;
            n = send(fd, h->out + h->out_start, h->out_end - h->out_start, MSG_NOSIGNAL | more);
            if (n > 0)
                h->out_start += (size_t)n;
        } else {
            off_t off = (off_t)h->file_off;
            size_t want = h->file_left < UK_SEND_CHUNK ? (size_t)h->file_left : UK_SEND_CHUNK;
            n = sendfile(fd, h->file_fd, &off, want);
            if (n == 0)
                return -1;  /* the file shrank under us: the promised Content-Length cannot be kept */
            if (n > 0) {
                h->file_off += (uint64_t)n;
                h->file_left -= (uint64_t)n;
            }
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    }
    return 1;
}

void uk_linger_blocking(int fd, char *scratch, size_t size)
{
    if (shutdown(fd, SHUT_WR) < 0)
        return;
    uint64_t deadline = uk_now_ms() + UK_LINGER_MS;
    for (uint64_t now = uk_now_ms(); now < deadline; now = uk_now_ms()) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(deadline - now)) <= 0)
            return;
        if (recv(fd, scratch, size, MSG_DONTWAIT) <= 0)
            return;  /* EOF: the client has read our answer and closed */
    }
}

uint64_t uk_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);  /* cannot fail with a valid clock id and pointer */
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void uk_sleep_ms(unsigned ms)
{
    struct timespec left = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&left, &left) < 0 && errno == EINTR)
        ;
}

int uk_server_setup(void)
{
    struct sigaction sa = {.sa_handler = SIG_IGN};
    return sigaction(SIGPIPE, &sa, NULL) < 0 ? -errno : 0;
}
