"""The iterative server: one process accepts a connection and serves it to the end before it accepts the next.
It is the simplest server there is and needs no concurrency at all, but one slow client stalls every other.

Try it::

    python -m uringkit.servers iterative --impl py --port 8080
    curl -i localhost:8080/
"""

from __future__ import annotations

import socket

from ._base import BlockingServer
from ._config import ServerConfig, SharedStats


class IterativeServer(BlockingServer):
    """``BlockingServer`` as it is: ``process_connection`` serves the client in place."""


def serve(listener: socket.socket, config: ServerConfig, stats: SharedStats) -> None:
    IterativeServer(listener, config, stats).serve_forever()
