"""What the browser tests share: Debian's Chromium flags, ports, memory readings, and the steps a user takes."""
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / 'tests' / 'artifacts'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking']


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


def open_tab(browser, url: str):
    page = browser.new_page(viewport={'width': 1280, 'height': 1500})
    page.set_default_timeout(60_000)
    page.goto(url)
    return page


def add_videos(page, files: list[Path], timeout: float = 120) -> None:
    """Choose `files` in the Add videos tab and, once the browser has uploaded every one, click Add and
    index, as a person does: a file counts in the form only once it is listed as uploaded, and a click in
    the moment before that submits the form without it (the upload's own response comes a little earlier)."""
    page.get_by_role('tab', name='Add videos').click()
    settled(page, timeout)
    uploads = []
    record = lambda r: uploads.append(r.status) if '/_stcore/upload_file/' in r.url and r.request.method == 'PUT' else None
    page.on('response', record)
    for attempt in range(2):  # files the page has not listed at all are chosen again, as a person would
        page.locator('input[type="file"][multiple]').set_input_files([str(f) for f in files])
        listed = [page.get_by_role('button', name=re.compile(f'^(Remove|Cancel upload of) {re.escape(f.name)}$'))
                  for f in files]
        if all(_appears(button, 30) for button in listed) or attempt:
            break
    deadline = time.monotonic() + timeout
    while len(uploads) < len(files) and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    page.remove_listener('response', record)
    assert uploads == [204] * len(files), uploads
    for file in files:  # the chip's button says "Cancel upload of" until the form holds the file
        page.get_by_role('button', name=f'Remove {file.name}', exact=True).wait_for(timeout=timeout * 1000)
    page.get_by_role('button', name='Add and index').click()


def _appears(locator, seconds: float) -> bool:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        locator.first.wait_for(timeout=seconds * 1000)
        return True
    except PlaywrightTimeout:
        return False


def settled(page, timeout: float = 120) -> None:
    """Wait, as a person does, until the page has loaded its models and finished drawing: the rerun that
    follows the models' loading draws the page again, and a file chosen or a form sent during it is lost
    (CI, on a busy machine: no upload started, or the form arrived without its file)."""
    page.get_by_text('Loading the models').first.wait_for(state='detached', timeout=timeout * 1000)
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=timeout * 1000)


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
