"""page_access: the page's password (scrypt hash in secrets.toml) and which addresses need it."""
import pytest

from page.access import check_password, hash_password, is_local


def test_a_password_matches_its_hash_only():
    stored = hash_password('correct horse')
    assert stored.startswith('scrypt$') and 'correct horse' not in stored
    assert check_password('correct horse', stored)
    assert not check_password('correct horsE', stored) and not check_password('', stored)
    assert hash_password('correct horse') != stored  # salted


@pytest.mark.parametrize('stored', ['', 'plain text', 'scrypt$zz$00', 'md5$00$00', '$$'])
def test_a_malformed_hash_lets_no_one_in(stored):
    assert not check_password('anything', stored)


@pytest.mark.parametrize('address, local', [
    ('127.0.0.1', True), ('localhost', True), ('::1', True), ('127.0.0.2', True),
    ('', False), (None, False), ('0.0.0.0', False), ('::', False), ('192.168.1.20', False), ('myhost', False),
])
def test_only_loopback_addresses_are_local(address, local):
    assert is_local(address) == local
