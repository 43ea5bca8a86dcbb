"""page.sessions: the sign-in cookie, one-time tickets, the throttle on wrong passwords and the upload gate."""
import asyncio

from page.sessions import COOKIE_SECONDS, Throttle, Tickets, UploadGate, UploadGuard, make_cookie, valid_cookie


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_cookie_is_valid_signed_and_unexpired_only():
    cookie = make_cookie(now=0)
    assert valid_cookie(cookie, now=1) and not valid_cookie(cookie, now=COOKIE_SECONDS + 1)
    expiry, nonce, signature = cookie.split('.')
    assert not valid_cookie(f'{int(expiry) + 10 ** 6}.{nonce}.{signature}', now=1)  # its expiry cannot be moved
    assert not valid_cookie(f'{expiry}.{nonce}.{"0" * len(signature)}', now=1)
    for junk in (None, '', 'a.b', 'x.y.z', '1.2.3.4'):
        assert not valid_cookie(junk)


def test_a_ticket_is_redeemed_once_and_expires():
    clock = Clock()
    tickets = Tickets(clock)
    first, second = tickets.issue(), tickets.issue()
    assert tickets.redeem(first) and not tickets.redeem(first) and not tickets.redeem('made-up')
    clock.now += 61
    assert not tickets.redeem(second)


def test_wrong_passwords_wait_longer_and_longer_per_client_and_for_everyone():
    clock = Clock()
    throttle = Throttle(clock)
    waits = []
    for _ in range(7):
        assert throttle.wait('a') == 0  # the client waited as told
        throttle.failed('a')
        waits.append(throttle.wait('a'))
        clock.now += waits[-1]
    assert waits == [0, 0, 1, 2, 4, 8, 16]  # 2 free tries, then double each time
    throttle.failed('a')
    assert throttle.wait('a') == 32 and throttle.wait('b') == 0  # another client is not slowed by a's few failures
    throttle.succeeded('a')
    assert throttle.wait('a') == 0

    for n in range(30):  # many clients guessing together: everyone waits
        throttle.failed(f'client-{n}')
    assert throttle.wait('someone-new') > 60
    clock.now += Throttle.WINDOW + 1
    assert throttle.wait('someone-new') == 0



def ask_gate(guard: UploadGuard, path: str, method: str = 'PUT', guarded: bool = True) -> tuple[int | None, bool]:
    """The status UploadGate answers a request for `path` with (None: none), and whether it passed it on;
    it must never read the body itself."""
    sent, passed = [], []

    async def app(scope, receive, send):
        passed.append(scope['path'])

    async def receive():
        raise AssertionError('the gate read the body')

    async def send(message):
        sent.append(message)

    gate = UploadGate(app, guarded=lambda: guarded, guard=guard)
    asyncio.run(gate({'type': 'http', 'method': method, 'path': path}, receive, send))
    assert not sent or sent[-1]['body'] == b''
    return (sent[0]['status'] if sent else None), bool(passed)


def test_the_upload_gate_refuses_sessions_not_signed_in_before_reading_a_byte():
    guard = UploadGuard()
    assert ask_gate(guard, '/_stcore/upload_file/s1/f1') == (403, False) and guard.gated
    assert ask_gate(guard, '/base/_stcore/upload_file/s1/f1', 'DELETE') == (403, False)  # under server.baseUrlPath
    assert ask_gate(guard, '/_stcore/upload_file/s1/f1', 'OPTIONS') == (None, True)  # CORS preflight
    assert ask_gate(guard, '/_stcore/health') == (None, True)
    guard.admit('s1')
    assert ask_gate(guard, '/_stcore/upload_file/s1/f1') == (None, True)
    assert ask_gate(guard, '/_stcore/upload_file/s2/f1') == (403, False)
    assert ask_gate(UploadGuard(), '/_stcore/upload_file/s9/f1', guarded=False) == (None, True)  # this machine only
