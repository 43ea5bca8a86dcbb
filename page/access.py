"""Who may use the page: anyone on this machine; others only with the password.

The page listens on 127.0.0.1 by default (.streamlit/config.toml). Served on another address it
asks for a password whose scrypt hash is in .streamlit/secrets.toml:

    .venv/bin/python -m page.access >> .streamlit/secrets.toml    # asks for the password twice
"""
import getpass
import hashlib
import hmac
import ipaddress
import secrets
import sys

import streamlit as st

SCRYPT = {'n': 2 ** 14, 'r': 8, 'p': 1}  # ~50 ms and 16 MB per try: slow to guess, quick to sign in
SECRET_NAME = 'password_hash'  # the key in .streamlit/secrets.toml


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


def gate_ui(address: str | None) -> None:
    """Nothing on a local page; elsewhere the page stops here until this session gives the password."""
    if is_local(address) or st.session_state.get('signed_in'):
        return
    try:
        stored = st.secrets.get(SECRET_NAME, '')
    except FileNotFoundError:  # no secrets.toml at all
        stored = ''
    if not stored:
        st.error(f'This page listens on {address or "every address"}, so other machines can reach it, and no '
                 f'password is set. Set one (`python -m page.access >> .streamlit/secrets.toml`) and restart, or '
                 'serve the page on 127.0.0.1 only.', icon=':material/lock:')
        st.stop()
    with st.form('sign-in'):
        password = st.text_input('Password', type='password')
        signed = st.form_submit_button('Sign in', type='primary', icon=':material/lock_open:')
    if signed and check_password(password, stored):
        st.session_state.signed_in = True
        st.rerun()
    if signed:
        st.error('Wrong password.', icon=':material/error:')
    st.stop()


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
