"""Plays indexed videos to the page's browsers straight from their files, with HTTP range requests.

The page hands the browser `<video src=...>` URLs of this small server instead of the file's bytes:
the browser asks for the parts it plays or seeks to (Range: bytes=...), and the server reads them
from disk in small pieces, so its memory stays flat whatever the file's size. Only files the page
has published are served, each under a random token (no paths in URLs, nothing else reachable).
"""
import logging
import os
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

from library.media import CHUNK_BYTES, byte_range, media_type

log = logging.getLogger(__name__)

class MediaServer:
    """A threaded HTTP server on `host`:`port` (0: a free port) serving published files by token."""

    def __init__(self, host: str = '127.0.0.1', port: int = 0):
        self._tokens: dict[str, str] = {}  # token -> real path
        self._paths: dict[str, str] = {}  # real path -> token
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer((host, port), _handler(self._lookup))
        self._http.daemon_threads = True
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


def _handler(lookup):
    class MediaHandler(BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'  # keep-alive: a browser seeking sends many range requests

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            parts = self.path.split('?', 1)[0].split('/')
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
            except (BrokenPipeError, ConnectionResetError):  # the browser seeked elsewhere or closed the page
                self.close_connection = True

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

