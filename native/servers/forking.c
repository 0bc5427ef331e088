/* forking.c - the forking server: the parent accepts and forks one child per connection, which serves it and
 * exits. Clients are isolated from each other, but every connection pays for a fork (page tables, COW faults)
 * and thousands of clients mean thousands of processes.
 *
 * Try it:
 *   python -m uringkit.servers forking --impl c --port 8080
 *   curl -s localhost:8080/
 */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blocking.h"
#include "servers.h"

static void reap(int sig)
{
    /* Async-signal-safe: waitpid only, errno preserved for the accept it interrupted. */
    int saved = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    errno = saved;
}

static void fork_per_connection(struct uk_blocking *b, int fd)
{
    pid_t pid = fork();
    if (pid == 0) {
        uk_child_defaults();
        close(b->acceptor.listen_fd);  /* the child serves one client; only the parent accepts */
        uk_blocking_serve(b, fd, b->http);
        _exit(0);  /* never return into the parent's stack (or into Python's atexit handlers) */
    }
    if (pid < 0)
        uk_refuse(b->cfg, fd);  /* EAGAIN/ENOMEM: out of processes or memory; this client is dropped */
    else
        close(fd);  /* the child has its own copy; the connection is counted closed by the child */
}

int uk_serve_forking(int listen_fd, const struct uk_server_config *cfg)
{
    struct uk_blocking b;
    int err = uk_blocking_open(&b, listen_fd, cfg);
    if (err)
        return err;
    /* SA_RESTART: accept resumes after a child is reaped. Reaping in the handler, not between accepts, keeps
     * zombies from piling up while the parent sleeps in accept. */
    struct sigaction sa = {.sa_handler = reap, .sa_flags = SA_RESTART | SA_NOCLDSTOP};
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGCHLD, &sa, NULL) < 0)
        return -errno;
    if ((err = uk_stop_children_on_term()) < 0)
        return err;
    uk_blocking_accept_loop(&b, fork_per_connection);
}
