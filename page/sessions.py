"""Signed-in sessions in password mode: the sign-in cookie, the throttle on wrong passwords, and the
guard that keeps Streamlit's upload endpoint closed to sessions that have not signed in.

Everything here lives in this process only: a restart signs everyone out.
"""
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import deque
from typing import Callable

COOKIE = 'vced_session'
COOKIE_SECONDS = 12 * 3600  # a signed-in browser stays signed in this long (reloads and new tabs included)
TICKET_SECONDS = 60  # a sign-in ticket must be exchanged for the cookie this quickly, and only once
_KEY = secrets.token_bytes(32)  # signs cookies; new on every start


def make_cookie(now: float | None = None) -> str:
    """A cookie value '<expiry>.<nonce>.<signature>' valid for COOKIE_SECONDS."""
    expiry = int((now if now is not None else time.time()) + COOKIE_SECONDS)
    body = f'{expiry}.{secrets.token_urlsafe(16)}'
    return f'{body}.{_sign(body)}'


def valid_cookie(value: str | None, now: float | None = None) -> bool:
    """Whether `value` is a cookie this process signed that has not expired."""
    try:
        expiry, nonce, signature = (value or '').split('.')
        fresh = int(expiry) > (now if now is not None else time.time())
    except ValueError:
        return False
    return fresh and hmac.compare_digest(signature, _sign(f'{expiry}.{nonce}'))


def _sign(body: str) -> str:
    return hmac.new(_KEY, body.encode(), hashlib.sha256).hexdigest()


def set_cookie_header(value: str) -> str:
    """The Set-Cookie header that stores `value`: not readable by scripts, never sent by other sites."""
    return f'{COOKIE}={value}; Max-Age={COOKIE_SECONDS}; Path=/; HttpOnly; SameSite=Strict'


def cookie_from(header: str | None) -> str | None:
    """Our cookie's value from a Cookie request header."""
    for part in (header or '').split(';'):
        name, _, value = part.strip().partition('=')
        if name == COOKIE:
            return value
    return None


class Tickets:
    """One-time tickets a signed-in page hands its browser to fetch the cookie from the media server
    (a Streamlit page cannot set an HttpOnly cookie itself)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock, self._lock, self._open = clock, threading.Lock(), {}

    def issue(self) -> str:
        ticket = secrets.token_urlsafe(24)
        with self._lock:
            now = self._clock()
            self._open = {t: e for t, e in self._open.items() if e > now}
            self._open[ticket] = now + TICKET_SECONDS
        return ticket

    def redeem(self, ticket: str) -> bool:
        with self._lock:
            expiry = self._open.pop(ticket, None)
        return expiry is not None and expiry > self._clock()


class Throttle:
    """Wrong passwords slow sign-in down: per client (its address, else its session) FREE tries, then
    a wait that doubles with each failure; and for everyone once more than GLOBAL_FREE failures came
    in the last WINDOW seconds (many sessions or addresses guessing together)."""

    FREE, GLOBAL_FREE, WINDOW, LONGEST = 3, 20, 600.0, 300.0

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock, self._lock = clock, threading.Lock()
        self._failures: dict[str, tuple[int, float]] = {}  # client -> (failures, time of the last)
        self._recent: deque[float] = deque()  # every failure's time, within WINDOW

    def wait(self, client: str) -> float:
        """Seconds before `client` may try again (0: now)."""
        with self._lock:
            now = self._clock()
            while self._recent and self._recent[0] < now - self.WINDOW:
                self._recent.popleft()
            count, last = self._failures.get(client, (0, now))
            own = last + self._delay(count - self.FREE) - now
            shared = (self._recent[-1] + self._delay(len(self._recent) - self.GLOBAL_FREE) - now) if self._recent else 0
            return max(own, shared, 0.0)

    def failed(self, client: str) -> None:
        with self._lock:
            now = self._clock()
            self._failures[client] = (self._failures.get(client, (0, now))[0] + 1, now)
            self._recent.append(now)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def _delay(self, excess: int) -> float:
        return 0.0 if excess < 0 else min(2.0 ** excess, self.LONGEST)


class UploadGuard:
    """Streamlit's upload endpoint (PUT /_stcore/upload_file/<session>/<file>) asks the runtime whether
    the session is active before it reads a byte of the body. Wrapped here, a session counts as active
    only once it has signed in: a session that saw only the sign-in form is refused with 400 and
    nothing it sends is buffered or stored."""

    def __init__(self):
        self._signed: set[str] = set()
        self._lock = threading.Lock()
        self._installed = False
        self.gated = False  # an UploadGate stands in front of the server (serve.py): closed from its first request

    def admit(self, session_id: str) -> None:
        with self._lock:
            self._signed.add(session_id)

    def admitted(self, session_id: str) -> bool:
        with self._lock:
            return session_id in self._signed

    def install(self, runtime) -> None:
        """Make `runtime` (streamlit's Runtime) refuse uploads from sessions not admitted; once."""
        with self._lock:
            if self._installed:
                return
            active = runtime.is_active_session
            runtime.is_active_session = lambda session_id: self.admitted(session_id) and active(session_id)
            self._installed = True


UPLOAD_PATH = re.compile(r'/_stcore/upload_file/([^/]+)/')


class UploadGate:
    """ASGI middleware that serve.py puts in front of Streamlit's own, so it holds from the server's
    first request on (UploadGuard.install only from the first page load): while `guarded()` (password
    mode), a request to the upload endpoint for a session that has not signed in is answered 403
    before a byte of its body is read."""

    def __init__(self, app, guarded: Callable[[], bool], guard: 'UploadGuard | None' = None):
        self.app, self.guarded, self.guard = app, guarded, guard or UPLOADS
        self.guard.gated = True

    async def __call__(self, scope, receive, send) -> None:
        found = UPLOAD_PATH.search(scope.get('path', '')) if scope['type'] == 'http' else None
        if found and scope['method'] != 'OPTIONS' and self.guarded() and not self.guard.admitted(found.group(1)):
            await send({'type': 'http.response.start', 'status': 403,
                        'headers': [(b'content-length', b'0'), (b'connection', b'close')]})
            await send({'type': 'http.response.body', 'body': b''})
            return
        await self.app(scope, receive, send)


TICKETS, THROTTLE, UPLOADS = Tickets(), Throttle(), UploadGuard()
