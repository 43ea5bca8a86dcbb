"""The API's token file: hashes only, several tokens, one-line reasons for a file that is not one."""
import pytest

from api.auth import hash_token, is_loopback, load_token_hashes, new_token
from executors.errors import VcedError


def test_new_tokens_are_appended_as_hashes_and_each_one_is_accepted(tmp_path):
    path = tmp_path / 'tokens'
    first, second = new_token(path), new_token(path)
    assert first != second and first not in path.read_text() and len(first) >= 40
    assert load_token_hashes(path) == [hash_token(first).encode(), hash_token(second).encode()]


def test_comments_and_blank_lines_are_skipped(tmp_path):
    path = tmp_path / 'tokens'
    path.write_text(f"# the build server\n\n{hash_token('x')}\n")
    assert load_token_hashes(path) == [hash_token('x').encode()]


@pytest.mark.parametrize('text, reason', [
    ('', 'holds no token hash'),
    ('my-plain-token\n', ":1: not a token hash (each line is 'sha256:' and 64 hex digits)"),
    (f"# ok\n{hash_token('x')}\nsha256:{'A' * 64}\n", ':3: not a token hash'),
])
def test_a_file_that_is_not_a_token_file_is_a_one_line_error(tmp_path, text, reason):
    path = tmp_path / 'tokens'
    path.write_text(text)
    with pytest.raises(VcedError, match=reason.replace('(', r'\(').replace(')', r'\)')):
        load_token_hashes(path)
    with pytest.raises(VcedError, match='cannot read the token file'):
        load_token_hashes(tmp_path / 'missing')


@pytest.mark.parametrize('host, loopback', [('127.0.0.1', True), ('127.0.1.1', True), ('::1', True),
                                            ('localhost', True), ('0.0.0.0', False), ('192.168.1.5', False),
                                            ('example.com', False), ('::', False)])
def test_only_loopback_addresses_may_serve_without_a_token(host, loopback):
    assert is_loopback(host) is loopback
