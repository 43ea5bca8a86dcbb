"""Plays indexed videos to the page's browsers straight from their files, with HTTP range requests.

The page hands the browser `<video src=...>` URLs of this small server instead of the file's bytes:
the browser asks for the parts it plays or seeks to (Range: bytes=...), and the server reads them
from disk in small pieces, so its memory stays flat whatever the file's size. Only files the page
has published are served, each under a random token (no paths in URLs, nothing else reachable).

Facing a network (the page's password mode) it serves only browsers holding the page's sign-in
cookie, which it also hands out (GET /signin/<one-time ticket>: a Streamlit page cannot set an
HttpOnly cookie itself). A bounded pool of WORKERS threads answers; a connection idle or half-sent
for IDLE_SECONDS is closed, and at most QUEUED accepted connections wait for a thread.
"""
import logging
import os
import secrets
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import quote

from library.media import CHUNK_BYTES, byte_range, media_type

log = logging.getLogger(__name__)

WORKERS = 32  # connections answered at once (a playing video holds one or two)
QUEUED = 256  # accepted connections waiting for a worker; more are closed at once
BACKLOG = 128  # connections the kernel holds before they are accepted
IDLE_SECONDS = 20  # a connection that sends or reads nothing this long is closed


class _PooledServer(HTTPServer):
    """An HTTP server whose connections are answered by a fixed pool of threads."""

    request_queue_size = BACKLOG
    daemon_threads = True

    def __init__(self, address, handler):
        super().__init__(address, handler)
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix='vced-media')
        self._waiting = threading.BoundedSemaphore(WORKERS + QUEUED)

    def process_request(self, request, client_address) -> None:
        if not self._waiting.acquire(blocking=False):
            self.shutdown_request(request)  # overloaded: the browser retries
            return
        self._pool.submit(self._answer, request, client_address)

    def _answer(self, request, client_address) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._waiting.release()

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


class MediaServer:
    """An HTTP server on `host`:`port` (0: a free port) serving published files by token.

    `allow(cookie header)`: whether a request may be served (None: every request);
    `sign_in(ticket)`: the Set-Cookie header that signs a browser in, None for a bad ticket.
    """

    def __init__(self, host: str = '127.0.0.1', port: int = 0, allow: Callable[[str | None], bool] | None = None,
                 sign_in: Callable[[str], str | None] | None = None):
        self._tokens: dict[str, str] = {}  # token -> real path
        self._paths: dict[str, str] = {}  # real path -> token
        self._lock = threading.Lock()
        self._http = _PooledServer((host, port), _handler(self._lookup, allow, sign_in))
        self._thread = threading.Thread(target=self._http.serve_forever, name='vced-media', daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._http.server_address[1]

    def publish(self, path: str | Path) -> str:
        """The URL path ('/media/<token>/<name>') that serves `path`; the same token each time."""
        real = os.path.realpath(path)
        with self._lock:
            token = self._paths.get(real)
            if token is None:
                token = self._paths[real] = secrets.token_urlsafe(24)
                self._tokens[token] = real
        return f'/media/{token}/{quote(Path(real).name)}'

    def withdraw(self, path: str | Path) -> None:
        """Stop serving `path` (a video deleted from the index)."""
        with self._lock:
            token = self._paths.pop(os.path.realpath(path), None)
            self._tokens.pop(token, None)

    def _lookup(self, token: str) -> str | None:
        with self._lock:
            return self._tokens.get(token)

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)


def _handler(lookup, allow, sign_in):
    class MediaHandler(BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'  # keep-alive: a browser seeking sends many range requests
        timeout = IDLE_SECONDS  # on every read and write of the connection

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            parts = self.path.split('?', 1)[0].split('/')
            if len(parts) == 3 and parts[1] == 'signin' and sign_in is not None:
                cookie = sign_in(parts[2])
                self._empty(HTTPStatus.NO_CONTENT if cookie else HTTPStatus.FORBIDDEN,
                            {'Set-Cookie': cookie, 'Cache-Control': 'no-store'} if cookie else None)
                return
            if allow is not None and not allow(self.headers.get('Cookie')):
                self._empty(HTTPStatus.FORBIDDEN)
                return
            path = lookup(parts[2]) if len(parts) >= 3 and parts[1] == 'media' else None
            try:
                file = open(path, 'rb') if path else None
            except OSError:
                file = None
            if file is None:
                self._empty(HTTPStatus.NOT_FOUND)
                return
            with file:
                size = os.fstat(file.fileno()).st_size
                try:
                    wanted = byte_range(self.headers.get('Range'), size)
                except ValueError:
                    self._empty(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, {'Content-Range': f'bytes */{size}'})
                    return
                first, last = wanted or (0, size - 1)
                self.send_response(HTTPStatus.PARTIAL_CONTENT if wanted else HTTPStatus.OK)
                self.send_header('Content-Type', media_type(path))
                self.send_header('Accept-Ranges', 'bytes')
                self.send_header('Content-Length', str(last - first + 1))
                if wanted:
                    self.send_header('Content-Range', f'bytes {first}-{last}/{size}')
                self.send_header('Cache-Control', 'private, max-age=3600')
                self.end_headers()
                if body:
                    file.seek(first)
                    _copy(file, self.wfile, last - first + 1)

        def _empty(self, status: HTTPStatus, headers: dict | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header('Content-Length', '0')
            self.end_headers()

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except (BrokenPipeError, ConnectionResetError, socket.timeout):  # the browser seeked elsewhere,
                self.close_connection = True  # closed the page, or sent nothing for IDLE_SECONDS

        def log_message(self, format: str, *args) -> None:
            log.debug('%s %s', self.address_string(), format % args)

    return MediaHandler


def _copy(source, target, count: int) -> None:
    while count > 0:
        chunk = source.read(min(CHUNK_BYTES, count))
        if not chunk:
            break
        target.write(chunk)
        count -= len(chunk)

