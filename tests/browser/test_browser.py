"""The page in a real browser: Debian's Chromium, driven by Playwright, against `streamlit run app.py`."""
import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.factories import make_video

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / 'tests' / 'artifacts'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking']
CARD = re.compile(r'^\d\d:\d\d–\d\d:\d\d · [▰▱]{5} ')
BIG_VIDEO_MB = 200


def first_frame_png(video: Path, folder: Path) -> Path:
    from executors.media.cutting import ffmpeg_path

    path = folder / 'frame.png'
    subprocess.run([ffmpeg_path(), '-v', 'error', '-y', '-i', str(video), '-frames:v', '1', str(path)], check=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB (Linux)."""
    status = Path(f'/proc/{pid}/status').read_text()
    return int(re.search(r'VmRSS:\s+(\d+) kB', status).group(1)) / 1024


def cli(flow_args: list[str], *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / 'flow.py'), *args, *flow_args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture
def server(flow_args, tmp_path):
    """`streamlit run app.py` on a free local port (its media server on another); stopped whatever the test does."""
    port, log_path = free_port(), tmp_path / 'streamlit.log'
    command = [sys.executable, '-m', 'streamlit', 'run', str(ROOT / 'app.py'), '--server.address', '127.0.0.1',
               '--server.port', str(port), '--server.headless', 'true', '--browser.gatherUsageStats', 'false',
               '--', *flow_args, '--videos', str(tmp_path / 'uploads'), '--media-port', str(free_port())]
    with open(log_path, 'wb') as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f'http://127.0.0.1:{port}'
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f'{url}/_stcore/health', timeout=2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f'streamlit did not start:\n{log_path.read_text(errors="replace")[-3000:]}')
                time.sleep(0.3)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def browser(chromium):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    expect.set_options(timeout=60_000)  # the first page load starts the model
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield browser
        finally:
            browser.close()


def open_tab(browser, url: str):
    page = browser.new_page(viewport={'width': 1280, 'height': 1500})
    page.set_default_timeout(60_000)
    page.goto(url)
    return page


def search(page, text: str) -> None:
    page.get_by_role('tab', name='Search').click()
    query = page.get_by_label('Describe the moment')
    query.fill(text)
    query.press('Enter')


def wait_playing(page, after: float = 0.0, timeout: float = 60_000) -> dict:
    """The page's <video> once it has played by itself past `after` seconds (it may have reached the
    segment's end and paused again by the time a busy machine looks): its state."""
    page.wait_for_function(f'(v => v && v.currentTime > {after})(document.querySelector("video"))', timeout=timeout)
    return page.evaluate('(v => ({src: v.currentSrc, muted: v.muted, time: v.currentTime}))(document.querySelector("video"))')


def test_upload_search_play_delete_in_a_browser(server, browser, sample_videos, flow_args, tmp_path):
    from playwright.sync_api import expect

    url, _ = server
    page = open_tab(browser, url)
    media = []
    page.on('response', lambda r: media.append((r.status, r.request.headers.get('range'))) if '/media/' in r.url else None)
    expect(page.get_by_text('Nothing is indexed yet')).to_be_visible()

    page.get_by_role('tab', name='Add videos').click()
    page.locator('input[type="file"][multiple]').set_input_files([str(v) for v in sample_videos])
    page.get_by_role('button', name='Add and index').click()
    expect(page.get_by_text('3 indexed, 0 already indexed, 0 failed')).to_be_visible(timeout=240_000)  # models load meanwhile
    page.screenshot(path=ARTIFACTS / 'add.png')

    # the best result plays at once, muted, from the start of its segment, streamed by range requests
    search(page, 'colour bars on a test card')
    expect(page.get_by_text(CARD).first).to_be_visible()
    expect(page.locator('video')).to_have_count(1)
    state = wait_playing(page)
    page.set_viewport_size({'width': 1280, 'height': 1480})
    page.wait_for_timeout(300)
    page.screenshot(path=ARTIFACTS / 'screenshot.png')  # docs/screenshot.png
    assert state['muted'] and re.match(r'http://127\.0\.0\.1:\d+/media/[\w-]{32}/\w+\.mp4#t=', state['src'])
    assert any(status == 206 for status, _ in media)

    # by image: a frame of the fractal video finds that video first; the player switches to it and plays
    page.get_by_text('Search by image instead').click()
    page.get_by_test_id('stExpanderDetails').locator('input[type="file"]').set_input_files(str(first_frame_png(sample_videos[2], tmp_path)))
    page.get_by_role('button', name='Search').click()
    expect(page.get_by_text(re.compile('results? \\(1–\\d+\\) for “frame.png”'))).to_be_visible()
    expect(page.get_by_role('heading', name='fractal.mp4')).to_be_visible()
    assert 'fractal.mp4' in wait_playing(page)['src']
    page.screenshot(path=ARTIFACTS / 'search.png', full_page=True)

    with page.expect_download() as download:
        page.get_by_role('button', name='Download this segment').click()
    assert download.value.suggested_filename == 'fractal 00.00–00.02.mp4'
    assert Path(download.value.path()).read_bytes()[4:8] == b'ftyp'  # an MP4, cut when asked for

    # More like this, and the next page of results
    page.get_by_role('button', name='More like this').first.click()
    expect(page.get_by_text(re.compile(r'for “fractal\.mp4 at 00:0\d”'))).to_be_visible()

    # a second tab: uploading a file already indexed is told at once
    other = open_tab(browser, url)
    other.get_by_role('tab', name='Add videos').click()
    other.locator('input[type="file"][multiple]').set_input_files(str(sample_videos[0]))
    other.get_by_role('button', name='Add and index').click()
    expect(other.get_by_text('0 indexed, 1 already indexed, 0 failed')).to_be_visible(timeout=30_000)

    # deleting in the second tab: one confirmation, for that video only; the first tab drops it by itself
    other.get_by_role('tab', name='Library').click()
    library = other.get_by_role('tabpanel', name='Library')
    expect(library.get_by_text('fractal.mp4')).to_be_visible()
    other.screenshot(path=ARTIFACTS / 'library.png')
    library.locator('[data-testid="stHorizontalBlock"]', has_text='fractal.mp4').get_by_role('button', name='Delete').click()
    library.get_by_role('button', name='Yes, delete').click()
    expect(library.get_by_role('button', name='Delete')).to_have_count(2)
    expect(library.get_by_role('button', name='Yes, delete')).to_have_count(0)  # nothing left open for the next one
    expect(page.get_by_role('heading', name='fractal.mp4')).to_have_count(0, timeout=15_000)
    expect(page.get_by_text('2 videos · ')).to_be_visible()

    # the CLI works on the same workspace while the page runs, and the page sees what it did
    listed = cli(flow_args[:4], 'list', '--json')
    assert listed.returncode == 0, listed.stderr
    assert sorted(Path(v['video']).name for v in json.loads(listed.stdout)) == ['bars.mp4', 'pattern.mp4']
    found = cli(flow_args, 'search', 'colour bars')
    assert found.returncode == 0 and 'rebuil' not in found.stderr.lower(), found.stderr
    deleted = cli(flow_args[:4], 'delete', str(tmp_path / 'uploads' / 'pattern.mp4'))
    assert deleted.returncode == 0, deleted.stderr
    expect(page.get_by_text('1 video · ')).to_be_visible(timeout=15_000)


def test_a_200_mb_video_plays_with_flat_server_memory(server, browser, flow_args, tmp_path):
    """The media server sends the parts the browser asks for: memory stays flat while a 200 MB file plays."""
    from playwright.sync_api import expect

    big = make_video(tmp_path / 'big.mp4', duration=17, size='1280x720', source='testsrc2',
                     codec_args=('-vf', 'noise=alls=60:allf=t', '-c:v', 'libx264', '-preset', 'ultrafast',
                                 '-b:v', f'{BIG_VIDEO_MB // 2}M', '-minrate', f'{BIG_VIDEO_MB // 2}M',
                                 '-maxrate', f'{BIG_VIDEO_MB // 2}M', '-bufsize', '20M'))
    size_mb = big.stat().st_size / 2 ** 20
    indexed = cli(flow_args, 'index', str(big))
    assert indexed.returncode == 0, indexed.stderr

    url, process = server
    page = open_tab(browser, url)
    ranges = []
    page.on('request', lambda r: ranges.append(r.headers.get('range')) if '/media/' in r.url else None)
    search(page, 'a test pattern')
    expect(page.get_by_text(CARD).first).to_be_visible()
    wait_playing(page, timeout=180_000)  # software decoding of 100 Mbit/s 720p starts slowly on a busy 2-core machine
    before = rss_mb(process.pid)
    samples, stop = [], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(rss_mb(process.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:  # play it all fast, then seek about: the browser fetches the whole file in ranges
        page.evaluate('v => { v.playbackRate = 16; v.play(); }', page.locator('video').element_handle())
        page.wait_for_function('(v => v.ended || v.currentTime > 15)(document.querySelector("video"))', timeout=120_000)
        for position in (2, 12, 6, 15):
            page.evaluate(f'v => {{ v.playbackRate = 1; v.currentTime = {position}; v.play(); }}',
                          page.locator('video').element_handle())
            page.wait_for_function(f'(v => v.readyState >= 3 && Math.abs(v.currentTime - {position}) < 2)'
                                   '(document.querySelector("video"))')
    finally:
        stop.set()
        sampler.join()
    peak = max(samples)
    report = {'file_mb': round(size_mb), 'rss_before_mb': round(before), 'rss_peak_mb': round(peak),
              'rss_after_mb': round(rss_mb(process.pid)), 'range_requests': len(ranges), 'ranges': ranges[:8]}
    (ARTIFACTS / 'playback_memory.json').write_text(json.dumps(report, indent=1))
    print(report)
    assert size_mb > BIG_VIDEO_MB * 0.9 and len(ranges) > 2
    assert peak - before < 40, report  # streamed in 256 KB pieces, never held whole
