"""A raw HTTP/1.1 client for the contract tests: bytes in, parsed responses out, nothing hidden by a library."""

from __future__ import annotations

import dataclasses
import socket
import time


@dataclasses.dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: dict[str, str]      # lower-cased names
    body: bytes

    @property
    def closes(self) -> bool:
        return self.headers.get("connection", "").lower() == "close"


class Connection:
    """One TCP connection; ``send`` raw bytes, ``read_response`` parses exactly one response."""

    def __init__(self, address: tuple[str, int], timeout: float = 10.0):
        self.sock = socket.create_connection(address, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def read_response(self, head_request: bool = False) -> Response:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError(f"connection closed before a full response head: {self.buf[:200]!r}")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head_request else int(headers["content-length"])
        while len(self.buf) < length:
            if not self._fill():
                raise ConnectionError("connection closed inside a response body")
        body, self.buf = self.buf[:length], self.buf[length:]
        return Response(version, int(status), reason, headers, body)

    def is_closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True if the server closes the connection (EOF or reset) within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def get(address, path: str = "/", *, version: str = "HTTP/1.1", headers: str = "", method: str = "GET",
        timeout: float = 10.0) -> Response:
    """One request on a fresh connection."""
    with Connection(address, timeout) as conn:
        conn.send(f"{method} {path} {version}\r\nHost: test\r\n{headers}\r\n".encode("latin-1"))
        return conn.read_response(head_request=(method == "HEAD"))


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
