"""The page in a real browser: Debian's Chromium, driven by Playwright, against `streamlit run app.py`."""
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / 'tests' / 'artifacts'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking']


def first_frame_png(video: Path, folder: Path) -> Path:
    from executors.media import ffmpeg_path

    path = folder / 'frame.png'
    subprocess.run([ffmpeg_path(), '-v', 'error', '-i', str(video), '-frames:v', '1', str(path)], check=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def server(flow_args, tmp_path):
    """`streamlit run app.py` on a free local port; stopped whatever the test does."""
    port, log_path = free_port(), tmp_path / 'streamlit.log'
    command = [sys.executable, '-m', 'streamlit', 'run', str(ROOT / 'app.py'), '--server.address', '127.0.0.1',
               '--server.port', str(port), '--server.headless', 'true', '--browser.gatherUsageStats', 'false',
               '--', *flow_args, '--videos', str(tmp_path / 'uploads')]
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
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_upload_index_and_search_in_a_browser(server, chromium, sample_videos, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    expect.set_options(timeout=60_000)  # the first page load starts the model
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={'width': 1280, 'height': 1500})
            page.set_default_timeout(60_000)
            page.goto(server)
            expect(page.get_by_text('Nothing is indexed yet')).to_be_visible()

            page.get_by_role('tab', name='Add videos').click()
            page.locator('input[type="file"]').set_input_files([str(v) for v in sample_videos])
            page.get_by_role('button', name='Add and index').click()
            expect(page.get_by_text('3 indexed · 0 already indexed · 0 failed')).to_be_visible(timeout=90_000)
            page.screenshot(path=ARTIFACTS / 'add.png')

            page.get_by_role('tab', name='Search').click()
            query = page.get_by_label('Describe the moment')
            query.fill('colour bars on a test card')
            query.press('Enter')
            cards = page.get_by_text(re.compile(r'^\d\d:\d\d–\d\d:\d\d · score'))
            expect(cards.first).to_be_visible()
            expect(page.locator('video')).to_have_count(1)
            expect(page.get_by_role('button', name='Download this segment')).to_be_visible()

            # by image: a frame of the fractal video finds that video first, with the identical keyframe
            page.get_by_text('Search by image instead').click()
            page.locator('input[type="file"]').first.set_input_files(str(first_frame_png(sample_videos[2], tmp_path)))
            page.get_by_role('button', name='Search').click()
            expect(page.get_by_text('results for “frame.png”')).to_be_visible()
            expect(page.get_by_role('heading', name='fractal.mp4')).to_be_visible()
            page.wait_for_function('document.querySelector("video").readyState >= 2')  # the original file plays
            page.screenshot(path=ARTIFACTS / 'search.png', full_page=True)

            with page.expect_download() as download:
                page.get_by_role('button', name='Download this segment').click()
            assert download.value.suggested_filename == 'fractal 00.00–00.02.mp4'
            assert Path(download.value.path()).read_bytes()[4:8] == b'ftyp'  # an MP4, cut when asked for

            page.get_by_role('tab', name='Library').click()
            expect(page.get_by_role('tabpanel', name='Library').get_by_text('fractal.mp4')).to_be_visible()
            page.wait_for_timeout(500)  # the tab's underline slides
            page.screenshot(path=ARTIFACTS / 'library.png')
        finally:
            browser.close()
