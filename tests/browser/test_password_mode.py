"""Password mode against a real `streamlit run serve.py`: nothing is accepted before sign-in, a signed-in
browser stays signed in across reloads, and videos play to signed-in browsers only."""
import asyncio
import http.client
import time
import urllib.error
import urllib.request
import uuid

import pytest

from tests.browser.conftest import PASSWORD, password_secrets, start_page, stop
from tests.browser.helpers import CHROMIUM_ARGS, add_videos, rss_mb, wait_playing

UPLOAD_MB = 100


async def open_session(port: int):
    """What any visitor can do: take the XSRF cookie and open a websocket session (nothing drawn yet)."""
    import websockets

    with urllib.request.urlopen(f'http://127.0.0.1:{port}/_stcore/health') as response:
        cookie = response.headers['Set-Cookie'].split(';')[0]
    socket = await websockets.connect(f'ws://127.0.0.1:{port}/_stcore/stream', subprotocols=['streamlit', cookie.split('=', 1)[1]],
                                      additional_headers={'Cookie': cookie, 'Origin': f'http://127.0.0.1:{port}'})
    return socket, cookie


async def drawn_session(port: int, then) -> None:
    """A visitor's session that lets the page draw; `then(session_id, cookie, text drawn)` runs while it is open."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    ws, cookie = await open_session(port)
    async with ws:
        rerun = BackMsg()
        rerun.rerun_script.query_string = ''
        await ws.send(rerun.SerializeToString())
        session_id, drawn = None, []
        while True:
            message = ForwardMsg()
            message.ParseFromString(await asyncio.wait_for(ws.recv(), 60))
            kind = message.WhichOneof('type')
            session_id = message.new_session.initialize.session_id if kind == 'new_session' else session_id
            drawn.append(str(message.delta) if kind == 'delta' else '')
            if kind == 'script_finished':
                break
        await asyncio.to_thread(then, session_id, cookie, ''.join(drawn))


async def undrawn_session(port: int, then) -> None:
    """A hand-made session that never lets the page run: it asks the server for upload URLs (as the file
    uploader does), which name its session; `then(session_id, cookie)` runs while it is open."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    ws, cookie = await open_session(port)
    async with ws:
        ask = BackMsg()
        ask.file_urls_request.request_id = 'r1'
        ask.file_urls_request.file_names.append('big.mp4')
        await ws.send(ask.SerializeToString())
        while True:
            message = ForwardMsg()
            message.ParseFromString(await asyncio.wait_for(ws.recv(), 60))
            assert message.WhichOneof('type') not in ('new_session', 'delta'), message  # the page never ran
            if message.WhichOneof('type') == 'file_urls_response':
                break
        session_id = message.file_urls_response.file_urls[0].upload_url.rstrip('/').split('/')[-2]
        await asyncio.to_thread(then, session_id, cookie)


def put_upload(port: int, session_id: str, cookie: str, megabytes: int) -> int:
    """PUT a `megabytes` file to Streamlit's upload endpoint as its page would; the status (0: cut off)."""
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
            'Content-Type: video/mp4\r\n\r\n').encode()
    tail = f'\r\n--{boundary}--\r\n'.encode()
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
    connection.putrequest('PUT', f'/_stcore/upload_file/{session_id}/{uuid.uuid4()}')
    for name, value in {'Cookie': cookie, 'X-Xsrftoken': cookie.split('=', 1)[1],
                        'Content-Type': f'multipart/form-data; boundary={boundary}',
                        'Content-Length': str(len(head) + megabytes * 2 ** 20 + len(tail))}.items():
        connection.putheader(name, value)
    connection.endheaders()
    chunk = bytes(2 ** 20)
    try:
        connection.send(head)
        for _ in range(megabytes):
            connection.send(chunk)
        connection.send(tail)
    except OSError:
        pass  # the server stopped reading: refused before the body
    try:
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        connection.close()


def upload_attack(server, session_id: str, cookie: str) -> dict:
    """Four 100 MB PUTs to the upload endpoint for `session_id`: their statuses, and the server's memory."""
    before = rss_mb(server.process.pid)
    statuses = [put_upload(server.port, session_id, cookie, UPLOAD_MB) for _ in range(4)]
    time.sleep(1)
    return {'statuses': statuses, 'before': before, 'after': rss_mb(server.process.pid)}


def test_a_session_that_only_saw_the_sign_in_form_cannot_upload(guarded_server):
    results = {}

    def attack(session_id: str, cookie: str, drawn: str) -> None:
        assert 'Password' in drawn and 'Describe the moment' not in drawn
        results.update(upload_attack(guarded_server, session_id, cookie))

    asyncio.run(drawn_session(guarded_server.port, attack))
    print(results)
    assert all(status in (403, 0) for status in results['statuses']), results  # never 204 (stored)
    assert results['after'] - results['before'] < 50, results  # 400 MB sent, none of it held


def test_before_any_page_load_a_fresh_server_refuses_uploads(guarded_server):
    """From the server's first request: a session that never let the page run (so app.py never ran in
    this process) is refused too, and nothing it sends is held."""
    results = {}
    asyncio.run(undrawn_session(guarded_server.port, lambda *session: results.update(upload_attack(guarded_server, *session))))
    print(results)
    assert all(status in (403, 0) for status in results['statuses']), results
    assert results['after'] - results['before'] < 50, results


def test_started_without_its_upload_gate_the_page_asks_for_serve_py_and_shows_nothing(flow_args, tmp_path):
    served = start_page(flow_args, tmp_path, '--secrets.files', str(password_secrets(tmp_path)), script='app.py')
    try:
        seen = []
        asyncio.run(drawn_session(served.port, lambda *session: seen.append(session[2])))
    finally:
        stop(served.process)
    assert 'streamlit run serve.py' in seen[0] and 'Password' not in seen[0] and 'Describe the moment' not in seen[0]


def test_signed_in_a_browser_stays_signed_in_uploads_and_plays_and_others_get_nothing(guarded_server, chromium,
                                                                                          sample_videos):
    from playwright.sync_api import expect, sync_playwright

    url, media_port = guarded_server.url, guarded_server.media_port
    expect.set_options(timeout=60_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            context = browser.new_context(viewport={'width': 1280, 'height': 1200})
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.goto(url)
            field = page.get_by_label('Password', exact=True)
            expect(field).to_have_attribute('autocomplete', 'current-password')
            field.fill(PASSWORD)
            page.get_by_role('button', name='Sign in').click()
            expect(page.get_by_role('tab', name='Add videos')).to_be_visible()
            deadline = time.monotonic() + 30
            while not any(c['name'] == 'vced_session' for c in context.cookies()):
                assert time.monotonic() < deadline, context.cookies()
                page.wait_for_timeout(200)
            [cookie] = [c for c in context.cookies() if c['name'] == 'vced_session']
            assert cookie['httpOnly'] and cookie['sameSite'] == 'Strict' and cookie['expires'] > time.time() + 3600

            add_videos(page, sample_videos[:1])
            expect(page.get_by_text('1 indexed, 0 already indexed, 0 failed')).to_be_visible(timeout=240_000)  # a busy machine

            other = context.new_page()  # a new tab (and a reload) of the same browser: no password asked
            other.goto(url)
            other.get_by_role('tab', name='Search').click()
            query = other.get_by_label('Describe the moment')
            query.fill('colour bars')
            query.press('Enter')
            source = wait_playing(other)['src'].split('#')[0]
            assert f':{media_port}/media/' in source
            with pytest.raises(urllib.error.HTTPError) as refused:  # the URL alone, without the cookie
                urllib.request.urlopen(source, timeout=10)
            assert refused.value.code == 403

            stranger = browser.new_context().new_page()  # another browser: asked for the password
            stranger.goto(url)
            expect(stranger.get_by_label('Password', exact=True)).to_be_visible()
            expect(stranger.get_by_role('tab', name='Search')).to_have_count(0)
        finally:
            browser.close()
