"""A small fault-injecting HTTP proxy for the S3 tests, listening on 127.0.0.1.

It forwards HTTP/1.1 requests, unchanged byte for byte, to one upstream S3-API server, and on a chosen
fraction of requests (a seeded random draw) does one of:

- `500` / `503`: answers an S3 error itself, without forwarding;
- `reset`: resets the client connection without forwarding;
- `drop`: forwards a PUT, reads the server's answer, then resets the client connection, so that the
  write happened but the client never learns it (the lost-acknowledgement case).

It also imitates stores without conditional writes (`conditional="ignore"`: a PUT with
`If-None-Match` is answered 200 and not stored; `"refuse"`: answered 501 NotImplemented), and records
every request (method, path) so that tests can count what a query read.

Requests are not modified, so signatures stay valid against any S3-compatible endpoint.
"""

from __future__ import annotations

import random
import socket
import socketserver
import struct
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

FAULTS = ("500", "503", "reset", "drop")


@dataclass
class Stats:
    """What the proxy saw and did; every field is a running total."""

    requests: int = 0
    forwarded: int = 0
    faults: Counter = field(default_factory=Counter)
    log: list[tuple[str, str]] = field(default_factory=list)  # (method, unquoted path without query)

    @property
    def failed(self) -> int:
        return sum(self.faults.values())


class _Closed(Exception):
    pass


def _read_line(f) -> bytes:
    line = f.readline(65537)
    if not line:
        raise _Closed()
    return line


def _read_head(f) -> tuple[bytes, list[tuple[str, str]], bytes]:
    """(start line, headers, raw head bytes) of one HTTP message."""
    start = _read_line(f)
    while start in (b"\r\n", b"\n"):  # tolerate stray blank lines between messages
        start = _read_line(f)
    raw = [start]
    headers = []
    while True:
        line = _read_line(f)
        raw.append(line)
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return start, headers, b"".join(raw)


def _read_body(f, headers: list[tuple[str, str]], *, until_close: bool = False) -> bytes:
    h = dict(headers)
    if "chunked" in h.get("transfer-encoding", "").lower():
        out = []
        while True:
            size_line = _read_line(f)
            out.append(size_line)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:  # trailers, then the blank line
                    t = _read_line(f)
                    out.append(t)
                    if t in (b"\r\n", b"\n"):
                        return b"".join(out)
            chunk = f.read(size + 2)
            if len(chunk) < size + 2:
                raise _Closed()
            out.append(chunk)
    if "content-length" in h:
        n = int(h["content-length"])
        data = f.read(n)
        if len(data) < n:
            raise _Closed()
        return data
    return f.read() if until_close else b""


def _reset(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a crashed peer or a middlebox would."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _error_response(status: int, code: str, message: str) -> bytes:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
        f"<RequestId>faultproxy</RequestId></Error>"
    ).encode()
    reason = {500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable"}[status]
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {len(body)}\r\n"
        f"x-amz-request-id: faultproxy\r\n\r\n"
    ).encode() + body


class FaultProxy:
    """`FaultProxy(upstream_url, rate=0.1, faults=FAULTS, seed=0)`; `.url` is where clients connect.

    `rate` is the fraction of requests that get a fault (only PUTs can get `drop`); `only(method,
    path)`, if given, limits faults to the requests it accepts; `budget`, if given, is how many faults
    to inject at most. Change any of them at any time. Use as a context manager or call `close()`.
    """

    def __init__(
        self,
        upstream: str,
        *,
        rate: float = 0.0,
        faults: tuple[str, ...] = FAULTS,
        seed: int = 0,
        conditional: str | None = None,
        only: Callable[[str, str], bool] | None = None,
        budget: int | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rate, self.faults, self.conditional = rate, tuple(faults), conditional
        self.only, self.budget = only, budget
        self.stats = Stats()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="faultproxy", daemon=True)
        self._thread.start()

    def _draw(self, method: str, path: str) -> str | None:
        with self._lock:
            if self.rate <= 0 or (self.budget is not None and self.budget <= 0):
                return None
            if self.only is not None and not self.only(method, path):
                return None
            if self._rng.random() >= self.rate:
                return None
            choices = [f for f in self.faults if f != "drop" or method == "PUT"]
            if not choices:
                return None
            if self.budget is not None:
                self.budget -= 1
            fault = self._rng.choice(choices)
            self.stats.faults[fault] += 1
            return fault

    def _serve(self, client: socket.socket) -> None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cin = client.makefile("rb")
        upstream: socket.socket | None = None
        uin = None
        try:
            while True:
                start, headers, head = _read_head(cin)
                method, target = start.decode("latin-1").split(" ")[:2]
                h = dict(headers)
                if h.get("expect", "").lower() == "100-continue":
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = _read_body(cin, headers)
                path = unquote(target.split("?")[0])
                with self._lock:
                    self.stats.requests += 1
                    self.stats.log.append((method, path))
                conditional_put = method == "PUT" and "if-none-match" in h
                if conditional_put and self.conditional == "refuse":
                    client.sendall(
                        _error_response(
                            501,
                            "NotImplemented",
                            "A header you provided implies functionality that is not implemented (If-None-Match)",
                        )
                    )
                    continue
                if conditional_put and self.conditional == "ignore":
                    client.sendall(
                        b'HTTP/1.1 200 OK\r\nETag: "d41d8cd98f00b204e9800998ecf8427e"\r\nContent-Length: 0\r\n\r\n'
                    )
                    continue
                fault = self._draw(method, path)
                if fault == "500":
                    client.sendall(
                        _error_response(500, "InternalError", "We encountered an internal error. Please try again.")
                    )
                    continue
                if fault == "503":
                    client.sendall(_error_response(503, "SlowDown", "Please reduce your request rate."))
                    continue
                if fault == "reset":
                    _reset(client)
                    return
                if upstream is None:
                    upstream = socket.create_connection(self.upstream, timeout=60)
                    upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    uin = upstream.makefile("rb")
                upstream.sendall(head + body)
                rstart, rheaders, rhead = _read_head(uin)
                while rstart.split()[1].startswith(b"1"):  # interim answers (100 Continue): already given
                    rstart, rheaders, rhead = _read_head(uin)
                status = int(rstart.split()[1])
                no_body = method == "HEAD" or status in (204, 304)
                rbody = (
                    b""
                    if no_body
                    else _read_body(
                        uin,
                        rheaders,
                        until_close="content-length" not in dict(rheaders)
                        and "transfer-encoding" not in dict(rheaders),
                    )
                )
                with self._lock:
                    self.stats.forwarded += 1
                if fault == "drop":
                    _reset(client)
                    return
                client.sendall(rhead + rbody)
                if dict(rheaders).get("connection", "").lower() == "close" or rstart.startswith(b"HTTP/1.0"):
                    upstream.close()  # the server ends this connection; the next request opens another
                    upstream = None
                if h.get("connection", "").lower() == "close":
                    return
        except (_Closed, OSError, ValueError, IndexError):
            pass
        finally:
            for s in (upstream, client):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass

    def reset_stats(self) -> Stats:
        """Return the stats so far and start counting afresh."""
        with self._lock:
            old, self.stats = self.stats, Stats()
        return old

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
