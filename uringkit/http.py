"""The one HTTP/1.1 request parser and response writer of every Python server (chapter 02, "Process models").

A server keeps the bytes a connection sent in a buffer and asks ``Site.respond(buf, start)`` for the next
answer: ``None`` means "no complete request yet, read more"; otherwise it returns ``(Response, end)`` where
``end`` is where the next (pipelined) request starts. Parsing and routing are one call, so a server does one
Python call per request, and the answer is always a ready-made ``Response``: bytes to send (headers and a small
body built as ONE object, so it leaves in one send and Nagle's algorithm never holds half of it back), optionally
followed by a file to send after them, optionally after a delay. The rules are the contract of
``uringkit.servers`` (routes, keep-alive, limits, status codes); the C twins are ``native/http_parse.c`` and
``native/http.c``.
"""

from __future__ import annotations

import os
import stat

MAX_REQUEST_LINE = 8 * 1024        # longer -> 414 (what nginx's default large_client_header_buffers allows)
MAX_HEADER_BYTES = 16 * 1024       # the header lines together; longer -> 431
MAX_HEADER_LINES = 100             # more -> 431 (every line is Python work: bound it)
MAX_BODY = 1024 * 1024             # a body up to this is read and discarded; longer -> 413
MAX_DELAY_MS = 10_000              # /delay?ms=N accepts 0..10000
MEMO_SIZE = 256                    # distinct request heads remembered (cleared when full: bounded memory)
MEMO_MAX_BYTES = 1024              # longer buffers are not looked up: hashing a 1 MiB body per recv would cost more

HELLO = b"Hello from uringkit\n"
STATIC_PREFIX = b"/static/"
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           413: "Content Too Large", 414: "URI Too Long", 431: "Request Header Fields Too Large",
           505: "HTTP Version Not Supported"}
CLOSING = frozenset({400, 413, 414, 431, 505})           # framing can no longer be trusted: close after these
BAD = frozenset({400, 405, 413, 414, 431, 505})          # counted in the servers' ``bad_requests``
CONTENT_TYPES = {
    b"html": "text/html; charset=utf-8", b"css": "text/css; charset=utf-8", b"js": "text/javascript",
    b"png": "image/png", b"jpg": "image/jpeg", b"jpeg": "image/jpeg", b"svg": "image/svg+xml",
    b"txt": "text/plain; charset=utf-8", b"json": "application/json",
}
OCTET_STREAM = "application/octet-stream"
HEX = frozenset(b"0123456789abcdefABCDEF")
WHITESPACE = frozenset(b" \t")
FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})  # the headers the server reads


class Response:
    """What to send: ``data`` (status line, headers and any small body), then ``size`` bytes of file ``fd``
    (``-1``: none; the server closes it once sent), after ``delay`` seconds; ``close`` after it."""

    __slots__ = ("status", "data", "fd", "size", "delay", "close", "bad")

    def __init__(self, status: int, data: bytes, close: bool, fd: int = -1, size: int = 0, delay: float = 0.0):
        self.status, self.data, self.close = status, data, close
        self.fd, self.size, self.delay = fd, size, delay
        self.bad = status in BAD

    def __repr__(self) -> str:
        return f"<Response {self.status} {len(self.data)} bytes fd={self.fd} delay={self.delay} close={self.close}>"


def head(status: int, content_type: str, length: int, close: bool, extra: str = "") -> bytes:
    """Status line and headers; every response carries Content-Length, a closing one ``Connection: close``."""
    connection = "Connection: close\r\n" if close else ""
    return (f"HTTP/1.1 {status} {REASONS[status]}\r\nServer: uringkit\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\n{extra}{connection}\r\n").encode("latin-1")


def _fixed(status: int, body: bytes, close: bool, is_head: bool, extra: str = "") -> Response:
    data = head(status, "text/plain; charset=utf-8", len(body), close, extra)
    return Response(status, data if is_head else data + body, close)


# Every fixed answer is built once: (status, close, is_head) -> Response. The servers never mutate a Response.
_FIXED = {}
for _status in REASONS:
    for _close in (False, True):
        for _is_head in (False, True):
            _body = HELLO if _status == 200 else f"{_status} {REASONS[_status]}\n".encode()
            _extra = "Allow: GET, HEAD\r\n" if _status == 405 else ""
            _FIXED[_status, _close, _is_head] = _fixed(_status, _body, _close, _is_head, _extra)


class HttpError(Exception):
    """A request that gets an error status (the connection closes after it if the status is in CLOSING)."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


class Site:
    """The routes of the contract over one docroot: ``/``, ``/static/<path>``, ``/delay?ms=N``."""

    def __init__(self, docroot: str):
        self.root = os.fsencode(os.path.realpath(docroot))
        self.root_prefix = self.root.rstrip(b"/") + b"/"
        # request bytes -> answer, for requests of ``/`` that filled a whole buffer: a load generator sends the
        # same bytes again and again, and a dict lookup is cheaper than parsing them. Only answers that depend
        # on the bytes alone (never on the filesystem) are remembered.
        self.memo: dict[bytes, tuple] = {}

    def respond(self, buf: bytes, start: int = 0):
        """The answer to the request at ``buf[start:]`` and where the next one starts, or ``None`` if it is not
        complete yet. Malformed input never raises: it becomes an error Response that closes the connection."""
        if not start and len(buf) <= MEMO_MAX_BYTES and buf.__class__ is bytes:
            hit = self.memo.get(buf)
            if hit is not None:
                return hit
        end = buf.find(b"\r\n\r\n", start)
        if end < 0:
            return self._incomplete(buf, start)
        try:
            method, target, version11, keep, length = parse_head(bytes(buf[start:end]))
        except HttpError as exc:
            return _FIXED[exc.status, True, False], len(buf)
        end += 4
        if length:
            if end + length > len(buf):
                return None  # the body is still arriving; it is discarded once complete
            end += length
        is_head = method == b"HEAD"
        if not is_head and method != b"GET":
            return _FIXED[405, not keep, False], end
        if target == b"/":  # the hot path: a ready-made answer, remembered for the same request bytes
            answer = _FIXED[200, not keep, is_head], end
            if not start and end == len(buf) <= MEMO_MAX_BYTES and buf.__class__ is bytes:  # (bytearray: unhashable)
                if len(self.memo) >= MEMO_SIZE:
                    self.memo.clear()
                self.memo[buf] = answer
            return answer
        try:
            return self.route(target, not keep, is_head), end
        except HttpError as exc:
            status = exc.status
            return _FIXED[status, not keep or status in CLOSING, is_head], end if status not in CLOSING else len(buf)

    def _incomplete(self, buf, start: int):
        line_end = buf.find(b"\r\n", start)
        if (len(buf) if line_end < 0 else line_end) - start > MAX_REQUEST_LINE:
            return _FIXED[414, True, False], len(buf)
        if line_end >= 0 and len(buf) - line_end > MAX_HEADER_BYTES + 4:
            return _FIXED[431, True, False], len(buf)
        return None

    def route(self, target: bytes, close: bool, is_head: bool) -> Response:
        path, _, query = target.partition(b"?")
        if path.startswith(STATIC_PREFIX):
            return self.static(decode_path(path[len(STATIC_PREFIX):]), close, is_head)
        if path == b"/delay":
            ms = delay_ms(query)
            body = b"delayed %d ms\n" % ms
            data = head(200, "text/plain; charset=utf-8", len(body), close)
            return Response(200, data if is_head else data + body, close, delay=ms / 1000)
        if decode_path(path) == b"/":
            return _FIXED[200, close, is_head]
        raise HttpError(404)

    def static(self, relative: bytes, close: bool, is_head: bool) -> Response:
        """The file ``relative`` under the docroot; anything whose real path leaves the docroot is 403."""
        real = os.path.realpath(self.root_prefix + relative.lstrip(b"/"))
        if not real.startswith(self.root_prefix):
            raise HttpError(403 if real != self.root else 404)
        try:
            fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            raise HttpError(404) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise HttpError(404)
        except BaseException:
            os.close(fd)
            raise
        ext = real.rpartition(b".")[2].lower() if b"." in real.rpartition(b"/")[2] else b""
        data = head(200, CONTENT_TYPES.get(ext, OCTET_STREAM), st.st_size, close)
        if is_head:
            os.close(fd)
            return Response(200, data, close)
        return Response(200, data, close, fd=fd, size=st.st_size)


def parse_head(head: bytes):
    """A request head (without its blank line) -> ``(method, target, is_http11, keep_alive, content_length)``;
    ``HttpError`` for anything the contract refuses."""
    lines = head.split(b"\r\n")
    if len(lines[0]) > MAX_REQUEST_LINE:
        raise HttpError(414)
    try:
        method, target, version = lines[0].split(b" ")
    except ValueError:
        raise HttpError(400) from None
    if version == b"HTTP/1.1":
        keep = version11 = True
    elif version == b"HTTP/1.0":
        keep = version11 = False
    elif len(version) == 8 and version.startswith(b"HTTP/") and version[5:6].isdigit() and version[6] == 46 \
            and version[7:].isdigit():
        raise HttpError(505)
    else:
        raise HttpError(400)
    if not method.isalpha() or target[:1] != b"/":
        raise HttpError(400)
    length = 0
    if len(lines) > 1:
        if len(lines) > MAX_HEADER_LINES + 1:
            raise HttpError(431)
        if len(head) - len(lines[0]) - 2 > MAX_HEADER_BYTES:
            raise HttpError(431)
        seen_length = None
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name[-1] in WHITESPACE or name[0] in WHITESPACE or b" " in name:
                raise HttpError(400)
            name = name.lower()
            if name not in FRAMING:
                continue
            if name == b"content-length":
                value = value.strip()
                if not value.isdigit() or (seen_length is not None and value != seen_length):
                    raise HttpError(400)
                seen_length, length = value, int(value)
                if length > MAX_BODY:
                    raise HttpError(413)
            elif name == b"transfer-encoding":
                raise HttpError(400)  # chunked bodies are not part of the contract: refuse rather than misframe
            elif version11 and b"close" in [token.strip() for token in value.lower().split(b",")]:
                keep = False
    return method, target, version11, keep, length


def decode_path(raw: bytes) -> bytes:
    """Percent-decode a path; NUL or bad escapes -> 400, a ``..`` segment -> 403 (never resolved at all)."""
    if b"%" in raw:
        pieces = raw.split(b"%")
        out = [pieces[0]]
        for piece in pieces[1:]:
            if len(piece) < 2 or piece[0] not in HEX or piece[1] not in HEX:
                raise HttpError(400)
            out.append(bytes((int(piece[:2], 16),)) + piece[2:])
        raw = b"".join(out)
    if b"\0" in raw:
        raise HttpError(400)
    if b".." in raw and b".." in raw.split(b"/"):
        raise HttpError(403)
    return raw


def delay_ms(query: bytes) -> int:
    """``ms=N`` with 0 <= N <= 10000, else 400."""
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        if name == b"ms":
            if value.isdigit() and int(value) <= MAX_DELAY_MS:
                return int(value)
            break
    raise HttpError(400)
