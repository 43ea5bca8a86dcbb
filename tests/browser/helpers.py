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
    uploads = []
    record = lambda r: uploads.append(r.status) if '/_stcore/upload_file/' in r.url and r.request.method == 'PUT' else None
    page.on('response', record)
    page.locator('input[type="file"][multiple]').set_input_files([str(f) for f in files])
    deadline = time.monotonic() + timeout
    while len(uploads) < len(files) and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    page.remove_listener('response', record)
    assert uploads == [204] * len(files), uploads
    for file in files:  # the chip's button says "Cancel upload of" until the form holds the file
        page.get_by_role('button', name=f'Remove {file.name}', exact=True).wait_for(timeout=timeout * 1000)
    page.get_by_role('button', name='Add and index').click()


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
