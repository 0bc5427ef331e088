"""One small HTTP server per process model, in C and in Python (introduced in chapter 02, "Process models").

``uk.serve(model, impl="c", **tunables)`` starts one as a child process and returns a ``Server`` handle::

    with uk.serve("epoll", impl="c") as server:
        print(server.url, server.statistics())

From a shell: ``python -m uringkit.servers epoll --impl c --port 8080`` then ``curl localhost:8080/``.

Models: iterative, forking, preforked, threaded, prethreaded (blocking: they differ in where a connection is
handed off), select, poll, epoll, io_uring (event-driven: one connection state machine, differing in how they
wait). Every one of the 18 (model x impl) obeys the same HTTP contract, checked by tests/test_server_contract.py:

Routes
    ``GET /``                 200, ``text/plain; charset=utf-8``, body ``Hello from uringkit\\n``.
    ``GET /static/<path>``    the file under the docroot (default ``data/www``), Content-Type from its extension
                              (html, css, js, png, jpg, svg, txt, json; else application/octet-stream).
    ``GET /delay?ms=N``       200 ``delayed N ms\\n`` after N ms (0 <= N <= 10000): a blocking sleep in blocking
                              models, a timer in event loops. Bad N -> 400.
    ``HEAD`` of each          the same headers, no body.

Connections
    HTTP/1.1 keeps the connection open unless the request says ``Connection: close``; HTTP/1.0 always closes.
    Pipelined requests are answered in order. A response that closes carries ``Connection: close``. Every
    response carries ``Content-Length``. No ``Date`` header (it would cost a clock read and a format per request
    and the book never needs it).

Bad input (the server answers, keeps serving everyone else, and never returns a byte from outside the docroot)
    400  malformed request line or header, bad percent-encoding, bad Content-Length, any Transfer-Encoding
    403  a path that resolves outside the docroot (``..``, ``%2e%2e``, a symlink pointing out) - or 404
    404  unknown path, missing file, a directory
    405  a method other than GET or HEAD, with ``Allow: GET, HEAD``
    413  a request body over 1 MiB (a body up to that is read and discarded: it must not poison the next request)
    414  request line over 8 KiB
    431  headers over 16 KiB in total, or over 100 header lines
    505  an HTTP version other than 1.0 and 1.1
    After 400, 413, 414, 431 and 505 the server closes the connection (it can no longer trust the framing); after
    403, 404 and 405 the connection stays usable. A connection with no complete request within ``idle_timeout``
    (default 10 s; also bounds a client that sends its headers one byte at a time) is closed and counted.

Limits are survived, not fatal: EMFILE/ENFILE on accept, a failed fork or thread creation -> that connection is
closed and counted in ``refused``; the server neither dies nor spins.
"""

from __future__ import annotations

from ._config import BLOCKING_MODELS, EVENT_MODELS, IMPLS, MODELS, ServerConfig
from ._process import Server, ServerStatistics, serve

__all__ = ["BLOCKING_MODELS", "EVENT_MODELS", "IMPLS", "MODELS", "Server", "ServerConfig", "ServerStatistics",
           "serve"]
