"""`flow.py serve`: the API on uvicorn, bound to loopback unless a token protects it."""
import logging
import socket
import sys
from pathlib import Path
from typing import Callable

from api.app import create_app
from api.auth import is_loopback, load_token_hashes, new_token
from api.settings import Settings
from executors.errors import VcedError
from library import Library

__all__ = ['serve']

log = logging.getLogger(__name__)


def serve(open_library: Callable[[], Library], settings: Settings, host: str = '127.0.0.1', port: int = 8000,
          token_file: str | None = None) -> int:
    """Serve until interrupted. With `token_file` every /v1 route but health needs a bearer token whose hash it
    holds (a missing file is created with a new token, printed once); off loopback a token file is required."""
    if token_file:
        if not Path(token_file).exists():
            print(f'new API token (stored hashed in {token_file}; shown only now): {new_token(token_file)}',
                  file=sys.stderr)
        settings.token_hashes = load_token_hashes(token_file)
    elif not is_loopback(host):
        raise VcedError(f'--host {host}: serving beyond this machine needs a token (--token-file F)')
    _check_free(host, port)
    import uvicorn

    library = open_library()
    try:
        print(f"serving VCED on http://{host}:{port} "
              f"(OpenAPI at /docs; token {'required' if settings.token_hashes else 'off'})", file=sys.stderr)
        uvicorn.run(create_app(library, settings), host=host, port=port, log_level='warning', access_log=False,
                    timeout_keep_alive=30, timeout_graceful_shutdown=10)
    finally:
        library.close()
    return 0


def _check_free(host: str, port: int) -> None:
    """VcedError now, before the models load, when `host`:`port` cannot be listened on."""
    if not 1 <= port <= 65535:
        raise VcedError(f'--port must be 1 to 65535, not {port}')
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError as e:
        raise VcedError(f'--host {host} --port {port}: cannot listen there ({e.strerror or e})') from e
