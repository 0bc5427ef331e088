/* iterative.c - the iterative server: one process accepts a connection and serves it to the end before it
 * accepts the next. Nothing is simpler or cheaper per connection, but one slow client stalls every other.
 *
 * Try it:
 *   python -m uringkit.servers iterative --impl c --port 8080
 *   curl -s 'localhost:8080/delay?ms=2000' & curl -w '%{time_total}s\n' localhost:8080/   # waits for the first
 */
#include "blocking.h"
#include "servers.h"

int uk_serve_iterative(int listen_fd, const struct uk_server_config *cfg)
{
    struct uk_blocking b;
    int err = uk_blocking_open(&b, listen_fd, cfg);
    if (err)
        return err;
    uk_blocking_accept_loop(&b, uk_blocking_inline);  /* the hook: serve it here, now */
}
