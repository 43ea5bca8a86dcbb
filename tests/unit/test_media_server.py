"""media_server: indexed videos played by range requests, nothing else reachable."""
import http.client
import os

import pytest

from library.media import byte_range
from page.media_server import MediaServer


@pytest.fixture
def server():
    media = MediaServer('127.0.0.1', 0)
    yield media
    media.close()


@pytest.fixture
def video(tmp_path):
    path = tmp_path / 'clip été 🎬.mp4'
    path.write_bytes(bytes(range(256)) * 40)  # 10240 bytes
    return path


def request(server, path: str, method: str = 'GET', headers: dict | None = None):
    connection = http.client.HTTPConnection('127.0.0.1', server.port, timeout=10)
    connection.request(method, path, headers=headers or {})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


def test_whole_file_and_ranges(server, video):
    url = server.publish(video)
    data = video.read_bytes()

    response, body = request(server, url)
    assert response.status == 200 and body == data
    assert response.getheader('Content-Type') == 'video/mp4' and response.getheader('Accept-Ranges') == 'bytes'

    response, body = request(server, url, headers={'Range': 'bytes=100-199'})
    assert response.status == 206 and body == data[100:200]
    assert response.getheader('Content-Range') == f'bytes 100-199/{len(data)}'

    response, body = request(server, url, headers={'Range': 'bytes=10000-'})  # to the end (a seek)
    assert response.status == 206 and body == data[10000:]
    response, body = request(server, url, headers={'Range': 'bytes=-40'})  # the last 40 (the moov atom)
    assert response.status == 206 and body == data[-40:]

    response, body = request(server, url, headers={'Range': 'bytes=20000-'})
    assert response.status == 416 and response.getheader('Content-Range') == f'bytes */{len(data)}' and body == b''

    response, body = request(server, url, 'HEAD')
    assert response.status == 200 and body == b'' and response.getheader('Content-Length') == str(len(data))


def test_one_token_per_file_unguessable_and_withdrawn(server, video, tmp_path):
    url = server.publish(video)
    assert server.publish(str(video)) == url
    token = url.split('/')[2]
    assert len(token) >= 32 and video.name not in token
    other = tmp_path / 'other.webm'
    other.write_bytes(b'x')
    assert server.publish(other).split('/')[2] != token
    assert request(server, server.publish(other))[0].getheader('Content-Type') == 'video/webm'

    server.withdraw(video)
    assert request(server, url)[0].status == 404


@pytest.mark.parametrize('path', ['/media/nope/clip.mp4', '/media/../../etc/passwd', '/etc/passwd', '/',
                                  '/media/', '/media/%2e%2e%2fetc%2fpasswd', f'/media/{os.sep}etc{os.sep}passwd'])
def test_nothing_else_is_served(server, video, path):
    server.publish(video)
    response, body = request(server, path)
    assert response.status == 404 and body == b''


def test_a_published_file_removed_from_disk_is_not_found(server, video):
    url = server.publish(video)
    video.unlink()
    assert request(server, url)[0].status == 404


@pytest.mark.parametrize('header, expected', [
    (None, None), ('', None), ('bytes=0-', (0, 99)), ('bytes=0-0', (0, 0)), ('bytes=50-500', (50, 99)),
    ('bytes=-10', (90, 99)), ('bytes=-500', (0, 99)), ('items=0-5', None), ('bytes=0-5,10-20', None),
])
def test_byte_range(header, expected):
    assert byte_range(header, 100) == expected


@pytest.mark.parametrize('header', ['bytes=100-', 'bytes=5-4', 'bytes=-0'])
def test_unsatisfiable_ranges(header):
    with pytest.raises(ValueError):
        byte_range(header, 100)


def test_idle_and_half_sent_connections_keep_threads_bounded_and_are_closed(monkeypatch, video):
    import socket
    import threading
    import time

    from page import media_server

    monkeypatch.setattr(media_server, 'IDLE_SECONDS', 1)
    server = MediaServer('127.0.0.1', 0)
    try:
        before = threading.active_count()
        clients = []
        for n in range(400):  # far more than the pool: half of them half-sent, half silent
            client = socket.create_connection(('127.0.0.1', server.port), timeout=10)
            if n % 2:
                client.sendall(b'GET /media/x/y.mp4 HTTP/1.1\r\nHost: a\r\n')  # never finished
            clients.append(client)
        time.sleep(0.5)
        assert threading.active_count() <= before + media_server.WORKERS
        # each is closed by the server after IDLE_SECONDS of silence (or at once, past the queue)
        deadline = time.monotonic() + 60
        for client in clients:
            client.settimeout(max(deadline - time.monotonic(), 0.1))
            assert client.recv(1) == b''
            client.close()
        response, body = request(server, server.publish(video))
        assert response.status == 200 and len(body) == 10240  # served again once they are gone
        assert threading.active_count() <= before + media_server.WORKERS
    finally:
        server.close()


def test_the_listen_backlog_is_a_normal_one(server):
    from page.media_server import BACKLOG

    assert BACKLOG >= 128 and server._http.request_queue_size == BACKLOG


def test_guarded_it_serves_signed_in_browsers_only_and_hands_out_the_cookie_once(video):
    from page.sessions import COOKIE, Tickets, cookie_from, make_cookie, set_cookie_header, valid_cookie

    tickets = Tickets()
    server = MediaServer('127.0.0.1', 0, allow=lambda header: valid_cookie(cookie_from(header)),
                        sign_in=lambda t: set_cookie_header(make_cookie()) if tickets.redeem(t) else None)
    try:
        url = server.publish(video)
        assert request(server, url)[0].status == 403  # the URL alone is not enough
        assert request(server, url, headers={'Cookie': f'{COOKIE}=1.2.3'})[0].status == 403  # nor a forged cookie

        ticket = tickets.issue()
        response, _ = request(server, f'/signin/{ticket}')
        cookie = response.getheader('Set-Cookie')
        assert response.status == 204 and 'HttpOnly' in cookie and 'SameSite=Strict' in cookie and 'Max-Age=' in cookie
        assert request(server, f'/signin/{ticket}')[0].status == 403  # once only
        value = cookie.split(';')[0]
        response, body = request(server, url, headers={'Cookie': f'other=1; {value}'})
        assert response.status == 200 and body == video.read_bytes()
    finally:
        server.close()
