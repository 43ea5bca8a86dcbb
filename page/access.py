"""Who may use the page: anyone on this machine; others only with the password.

The page listens on 127.0.0.1 by default (.streamlit/config.toml). Served on another address (or
with `require_password = true` in secrets.toml, behind a proxy on this machine) it asks for a
password whose scrypt hash is in .streamlit/secrets.toml:

    .venv/bin/python -m page.access >> .streamlit/secrets.toml    # asks for the password twice

Until a session signs in it gets nothing but the sign-in form: no uploads (page.sessions), no
videos (the media server wants the sign-in cookie); wrong passwords are throttled.
"""
import getpass
import hashlib
import hmac
import ipaddress
import secrets
import sys

import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from page.sessions import COOKIE, THROTTLE, TICKETS, UPLOADS, cookie_from, make_cookie, set_cookie_header, valid_cookie

SCRYPT = {'n': 2 ** 14, 'r': 8, 'p': 1}  # ~50 ms and 16 MB per try: slow to guess, quick to sign in
SECRET_NAME = 'password_hash'  # the key in .streamlit/secrets.toml
REQUIRE_NAME = 'require_password'  # true: ask for it on a loopback address too (a proxy in front)


def hash_password(password: str, salt: bytes | None = None) -> str:
    """'scrypt$<salt hex>$<hash hex>' of `password`."""
    salt = salt or secrets.token_bytes(16)
    return f'scrypt${salt.hex()}${hashlib.scrypt(password.encode(), salt=salt, **SCRYPT).hex()}'


def check_password(password: str, stored: str) -> bool:
    """Whether `password` matches the hash `stored` (compared in constant time)."""
    try:
        scheme, salt, expected = stored.split('$')
        if scheme != 'scrypt':
            return False
        actual = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), **SCRYPT).hex()
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def is_local(address: str | None) -> bool:
    """Whether a server listening on `address` is reachable from this machine only."""
    if not address:
        return False  # Streamlit's default: every interface
    if address == 'localhost':
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to


def password_mode(address: str | None) -> bool:
    """Whether the page asks for the password: served beyond this machine, or told to."""
    return not is_local(address) or bool(_secret(REQUIRE_NAME, False))


def _secret(name: str, default):
    try:
        return st.secrets.get(name, default)
    except FileNotFoundError:  # no secrets.toml at all
        return default


def gate_ui(address: str | None) -> None:
    """Nothing on a local page; elsewhere the page stops here until this session gives the password
    (or its browser holds the sign-in cookie of an earlier sign-in)."""
    if not password_mode(address):
        return
    if _served():
        UPLOADS.install(Runtime.instance())  # too late for uploads before this first run: serve.py's gate is not
        if not UPLOADS.gated:
            st.error('This page asks for a password, but it was started without its upload gate, so anyone could '
                     'upload before signing in. Start it with `streamlit run serve.py -- ...` (as `make demo-shared` '
                     'does).', icon=':material/lock:')
            st.stop()
    session = get_script_run_ctx().session_id
    if not st.session_state.get('signed_in') and valid_cookie(st.context.cookies.get(COOKIE)):
        _admit(session, ticket=False)
    if st.session_state.get('signed_in'):
        return
    stored = _secret(SECRET_NAME, '')
    if not stored:
        st.error(f'This page listens on {address or "every address"}, so other machines can reach it, and no '
                 f'password is set. Set one (`python -m page.access >> .streamlit/secrets.toml`) and restart, or '
                 'serve the page on 127.0.0.1 only.', icon=':material/lock:')
        st.stop()
    st.title(':material/movie: VCED · sign in', anchor=False)
    with st.form('sign-in'):
        password = st.text_input('Password', type='password', autocomplete='current-password')
        signed = st.form_submit_button('Sign in', type='primary', icon=':material/lock_open:')
    if signed:
        address = st.context.ip_address
        client = address if isinstance(address, str) and address else session  # by address: new tabs do not reset it
        wait = THROTTLE.wait(client)
        if wait > 0:
            st.error(f'Too many wrong passwords: try again in {wait:.0f} s.', icon=':material/timer:')
        elif check_password(password, stored):
            THROTTLE.succeeded(client)
            _admit(session, ticket=True)
            st.rerun()
        else:
            THROTTLE.failed(client)
            st.error('Wrong password.', icon=':material/error:')
    st.stop()


def _served() -> bool:
    """Whether a Streamlit server runs the page (streamlit.testing's AppTest stands in a mock Runtime)."""
    return Runtime.exists() and type(Runtime.instance()) is Runtime


def _admit(session: str, ticket: bool) -> None:
    UPLOADS.admit(session)
    st.session_state.signed_in = True
    if ticket:  # exchanged for the cookie by cookie_ui
        st.session_state.cookie_ticket = TICKETS.issue()


def cookie_ui(media_base: str) -> None:
    """Right after a sign-in: the browser fetches its sign-in cookie from the media server (the page's
    own server cannot set an HttpOnly cookie), so reloads and new tabs stay signed in."""
    ticket = st.session_state.pop('cookie_ticket', None)
    if ticket:
        st.html(f'<img src="{media_base}/signin/{ticket}" alt="" width="1" height="1" style="display:none">')


def cookie_checker():
    """The media server's test of a request's Cookie header."""
    return lambda header: valid_cookie(cookie_from(header))


def cookie_issuer():
    """The media server's answer to /signin/<ticket>: a Set-Cookie header, or None."""
    return lambda ticket: set_cookie_header(make_cookie()) if TICKETS.redeem(ticket) else None


def main() -> int:
    password = getpass.getpass('Password for the page: ')
    if len(password) < 8:
        print('use at least 8 characters', file=sys.stderr)
        return 1
    if getpass.getpass('Again: ') != password:
        print('the two differ', file=sys.stderr)
        return 1
    print(f'{SECRET_NAME} = "{hash_password(password)}"')
    return 0


if __name__ == '__main__':
    sys.exit(main())
