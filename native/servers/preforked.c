/* preforked.c - the preforked server: a pool of cfg->workers processes, forked once, each blocking in accept on
 * the shared listener and serving one connection at a time. No fork per connection, but at most `workers`
 * clients are served at once; the others wait in the backlog.
 *
 * Try it:
 *   python -m uringkit.servers preforked --impl c --port 8080 --workers 8
 *   curl -s localhost:8080/
 */
#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blocking.h"
#include "servers.h"

#define RESPAWN_BACKOFF_MS 100  /* a worker that cannot be forked is retried at this pace, not in a tight loop */

static pid_t spawn_worker(struct uk_blocking *b, pid_t parent)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    uk_child_defaults();
    /* If the parent dies (SIGKILL), the workers go too: nobody would respawn or stop them otherwise. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
        _exit(1);
    uk_blocking_accept_loop(b, uk_blocking_inline);  /* the kernel hands each connection to one waiter */
    _exit(0);
}

int uk_serve_preforked(int listen_fd, const struct uk_server_config *cfg)
{
    struct uk_blocking b;
    int err = uk_blocking_open(&b, listen_fd, cfg);
    if (err)
        return err;
    if ((err = uk_stop_children_on_term()) < 0)
        return err;
    pid_t parent = getpid();
    int running = 0;
    for (int i = 0; i < cfg->workers; i++)
        if (spawn_worker(&b, parent) > 0)
            running++;
    if (running == 0)
        return -errno;
    /* The parent only keeps the pool full: a worker that died (a crash, the OOM killer) is replaced. */
    for (;;) {
        pid_t pid = waitpid(-1, NULL, 0);
        if (pid < 0 && errno != EINTR && errno != ECHILD)
            return -errno;
        if (pid > 0 || errno == ECHILD) {
            while (spawn_worker(&b, parent) < 0)
                uk_sleep_ms(RESPAWN_BACKOFF_MS);
        }
    }
}
