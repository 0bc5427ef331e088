/* servers.h - the C server models Python can start, one per Linux process model (chapters 02, 03 and 07).
 *
 * Each takes the listening socket the CLI bound (python -m uringkit.servers MODEL --impl c) and serves until it
 * is killed; it returns only when setup fails, with -errno.
 */
#ifndef URINGKIT_SERVERS_H
#define URINGKIT_SERVERS_H

#include "stats.h"

/* cffi-begin */
int uk_serve_iterative(int listen_fd, const struct uk_server_config *cfg);
int uk_serve_forking(int listen_fd, const struct uk_server_config *cfg);
int uk_serve_preforked(int listen_fd, const struct uk_server_config *cfg);
int uk_serve_threaded(int listen_fd, const struct uk_server_config *cfg);
int uk_serve_prethreaded(int listen_fd, const struct uk_server_config *cfg);
int uk_serve_select(int listen_fd, const struct uk_server_config *cfg);
int uk_serve_poll(int listen_fd, const struct uk_server_config *cfg);
int uk_serve_epoll(int listen_fd, const struct uk_server_config *cfg);
int uk_serve_io_uring(int listen_fd, const struct uk_server_config *cfg);
/* cffi-end */

#endif
