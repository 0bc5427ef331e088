"""uringkit.http: the request parser and router of every Python server, without a socket."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from uringkit import http

WWW = Path(http.__file__).resolve().parent.parent / "data" / "www"


@pytest.fixture
def site():
    return http.Site(str(WWW))


def answer(site, raw: bytes, start: int = 0):
    """(status, close, response, end), closing any file the response opened."""
    result = site.respond(raw, start)
    assert result is not None, f"incomplete: {raw[:80]!r}"
    response, end = result
    if response.fd >= 0:
        os.close(response.fd)
    return response.status, response.close, response, end


def headers_of(response) -> dict[str, str]:
    head = response.data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    return {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}


# --- routes --------------------------------------------------------------------------------------------------
def test_root_is_precomputed_and_keeps_alive(site):
    raw = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    status, close, response, end = answer(site, raw)
    assert (status, close, end) == (200, False, len(raw))
    assert response.data.endswith(b"\r\n\r\nHello from uringkit\n")
    assert headers_of(response)["content-length"] == str(len(http.HELLO))
    assert site.respond(raw)[0] is response  # the same object every time: no per-request building
    assert site.respond(bytes(raw))[0] is response  # remembered: the same bytes are not parsed twice
    assert site.respond(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0].close


def test_memo_is_bounded_and_skips_partial_buffers(site):
    for i in range(3 * http.MEMO_SIZE):
        site.respond(b"GET / HTTP/1.1\r\nX-N: %d\r\n\r\n" % i)
    assert len(site.memo) <= http.MEMO_SIZE
    site.memo.clear()
    site.respond(b"GET / HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n")   # a pipelined pair: not remembered
    site.respond(b"GET /nope HTTP/1.1\r\n\r\n")                           # depends on the filesystem: not either
    assert not site.memo


def test_head_has_headers_and_no_body(site):
    _, _, response, _ = answer(site, b"HEAD / HTTP/1.1\r\n\r\n")
    assert response.data.endswith(b"\r\n\r\n") and headers_of(response)["content-length"] == str(len(http.HELLO))
    _, _, response, _ = answer(site, b"HEAD /static/style.css HTTP/1.1\r\n\r\n")
    assert response.fd == -1 and int(headers_of(response)["content-length"]) == (WWW / "style.css").stat().st_size


@pytest.mark.parametrize("path, ctype", [("index.html", "text/html"), ("style.css", "text/css"),
                                         ("img/ring.png", "image/png"), ("files/1mib.bin", "application/octet")])
def test_static_file_opens_the_file_with_its_type(site, path, ctype):
    response, _ = site.respond(f"GET /static/{path} HTTP/1.1\r\n\r\n".encode())
    try:
        assert response.status == 200 and response.fd >= 0 and response.size == (WWW / path).stat().st_size
        assert headers_of(response)["content-type"].startswith(ctype)
        assert os.pread(response.fd, 16, 0) == (WWW / path).read_bytes()[:16]
    finally:
        os.close(response.fd)


def test_delay_is_a_response_with_a_delay(site):
    _, _, response, _ = answer(site, b"GET /delay?ms=250 HTTP/1.1\r\n\r\n")
    assert response.delay == 0.25 and response.data.endswith(b"delayed 250 ms\n")


@pytest.mark.parametrize("query", [b"ms=-1", b"ms=10001", b"ms=abc", b"", b"ms=", b"x=5"])
def test_delay_rejects_bad_values(site, query):
    status, close, _, _ = answer(site, b"GET /delay?" + query + b" HTTP/1.1\r\n\r\n")
    assert (status, close) == (400, True)


@pytest.mark.parametrize("path", [b"/nope", b"/static/", b"/static/img", b"/static/img/", b"/static/missing"])
def test_unknown_paths_and_directories_are_404_and_keep_alive(site, path):
    assert answer(site, b"GET " + path + b" HTTP/1.1\r\n\r\n")[:2] == (404, False)


@pytest.mark.parametrize("path, statuses", [
    (b"/static/../pyproject.toml", {403}), (b"/static/%2e%2e/%2e%2e/pyproject.toml", {403}),
    (b"/static/img/../../../README.md", {403}), (b"/static/..%2f..%2fREADME.md", {403}),
    (b"/static//etc/passwd", {404}), (b"/static/%2fetc%2fpasswd", {404}), (b"/static/img/%00.png", {400}),
    (b"/static/%zz", {400}), (b"/static/%4", {400}),
])
def test_paths_outside_the_docroot_are_refused(site, path, statuses):
    status, _, response, _ = answer(site, b"GET " + path + b" HTTP/1.1\r\n\r\n")
    assert status in statuses and response.fd == -1


def test_symlinks_out_of_the_docroot_are_403(tmp_path):
    (tmp_path / "ok.txt").write_text("inside\n")
    (tmp_path / "escape.txt").symlink_to("/etc/passwd")
    (tmp_path / "dir").symlink_to("/etc")
    site = http.Site(str(tmp_path))
    assert answer(site, b"GET /static/ok.txt HTTP/1.1\r\n\r\n")[0] == 200
    for path in (b"/static/escape.txt", b"/static/dir/passwd"):
        assert answer(site, b"GET " + path + b" HTTP/1.1\r\n\r\n")[0] == 403


def test_percent_decoding():
    assert http.decode_path(b"/a%20b%2Fc") == b"/a b/c"
    assert http.decode_path(b"/a..b/..c") == b"/a..b/..c"   # '..' inside a name is fine; only a segment is not
    for bad, status in ((b"/%", 400), (b"/%g0", 400), (b"/a%00", 400), (b"/a/%2E%2E/b", 403)):
        with pytest.raises(http.HttpError) as info:
            http.decode_path(bad)
        assert info.value.status == status


# --- connections ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, close", [
    (b"GET / HTTP/1.1\r\n\r\n", False),
    (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", True),
    (b"GET / HTTP/1.1\r\nconnection: Keep-Alive, CLOSE\r\n\r\n", True),
    (b"GET / HTTP/1.0\r\n\r\n", True),
    (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),   # the contract: HTTP/1.0 always closes
])
def test_keep_alive_rules(site, raw, close):
    status, closes, response, _ = answer(site, raw)
    assert (status, closes) == (200, close)
    assert (headers_of(response).get("connection") == "close") == close


def test_incremental_feeding_byte_by_byte(site):
    raw = b"GET /static/style.css HTTP/1.1\r\nHost: x\r\nX-A: b\r\n\r\n"
    for i in range(len(raw)):
        assert site.respond(raw[:i]) is None, i
    status, _, _, end = answer(site, bytearray(raw))  # servers may keep their buffer as a bytearray
    assert (status, end) == (200, len(raw))


def test_pipelined_requests_are_answered_in_order(site):
    paths = [b"/", b"/static/style.css", b"/nope", b"/", b"/delay?ms=1"]
    raw = b"".join(b"GET " + p + b" HTTP/1.1\r\nHost: t\r\n\r\n" for p in paths) + b"GET / HT"
    start, statuses = 0, []
    while (result := site.respond(raw, start)) is not None:
        response, start = result
        statuses.append(response.status)
        if response.fd >= 0:
            os.close(response.fd)
    assert statuses == [200, 200, 404, 200, 200] and raw[start:] == b"GET / HT"


def test_a_body_is_consumed_before_the_next_request(site):
    raw = b"GET / HTTP/1.1\r\nContent-Length: 11\r\n\r\nGET /nope xGET /nope HTTP/1.1\r\n\r\n"
    assert site.respond(raw[:-40]) is None  # the body is not complete yet: wait for it
    status, _, _, end = answer(site, raw)
    assert status == 200 and raw[end:] == b"GET /nope HTTP/1.1\r\n\r\n"


def test_a_1_mib_body_is_allowed(site):
    raw = b"GET / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % http.MAX_BODY
    assert site.respond(raw) is None
    assert answer(site, raw + b"x" * http.MAX_BODY)[:2] == (200, False)


# --- bad input -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, expected", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /\r\n\r\n", 400),
    (b"GET  / HTTP/1.1\r\n\r\n", 400),
    (b"GET x HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nNoColonHere\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n: empty-name\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\n\r\n", 505),
    (b"GET / HTTP/0.9\r\n\r\n", 505),
    (b"GET / HTTPS/1.1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n", 413),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 17000 + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(101)) + b"\r\n", 431),
])
def test_malformed_requests_get_a_closing_status(site, raw, expected):
    status, close, response, end = answer(site, raw)
    assert (status, close, end) == (expected, True, len(raw)) and response.bad
    assert headers_of(response)["connection"] == "close"


def test_100_header_lines_are_allowed(site):
    raw = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(100)) + b"\r\n"
    assert answer(site, raw)[:2] == (200, False)


@pytest.mark.parametrize("raw, expected", [
    (b"GET /" + b"a" * 9000, 414),                                  # the line alone is already too long
    (b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 17000, 431),             # the headers, before their end arrives
])
def test_limits_apply_before_the_request_is_complete(site, raw, expected):
    assert answer(site, raw)[:2] == (expected, True)


@pytest.mark.parametrize("method", [b"POST", b"PUT", b"DELETE", b"OPTIONS", b"BREW"])
def test_other_methods_are_405_with_allow_and_keep_alive(site, method):
    raw = method + b" / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
    status, close, response, end = answer(site, raw)
    assert (status, close, end) == (405, False, len(raw)) and response.bad
    assert headers_of(response)["allow"] == "GET, HEAD"


def test_every_response_has_a_content_length_and_no_date(site):
    for raw in (b"GET / HTTP/1.1\r\n\r\n", b"GET /nope HTTP/1.1\r\n\r\n", b"GARBAGE\r\n\r\n",
                b"GET /delay?ms=0 HTTP/1.1\r\n\r\n"):
        headers = headers_of(answer(site, raw)[2])
        assert "content-length" in headers and "date" not in headers
