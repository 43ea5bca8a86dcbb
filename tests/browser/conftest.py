"""The page as users start it (`streamlit run serve.py`), on free local ports, and a Chromium to open it."""
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser.helpers import ARTIFACTS, CHROMIUM_ARGS, ROOT, free_port

PASSWORD = 'correct horse battery'


@dataclass
class Served:
    url: str
    port: int
    media_port: int
    process: subprocess.Popen
    log: Path


def start_page(flow_args: list[str], folder: Path, *streamlit_options: str, script: str = 'serve.py') -> Served:
    """`streamlit run serve.py` (or `script`) on 127.0.0.1 (its media server on another free port), once it answers."""
    port, media_port, log_path = free_port(), free_port(), folder / 'streamlit.log'
    command = [sys.executable, '-m', 'streamlit', 'run', str(ROOT / script), '--server.address', '127.0.0.1',
               '--server.port', str(port), '--server.headless', 'true', '--browser.gatherUsageStats', 'false',
               *streamlit_options, '--', *flow_args, '--videos', str(folder / 'uploads'), '--media-port', str(media_port)]
    with open(log_path, 'wb') as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    served = Served(f'http://127.0.0.1:{port}', port, media_port, process, log_path)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f'{served.url}/_stcore/health', timeout=2).close()
            return served
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                stop(process)
                pytest.fail(f'streamlit did not start:\n{log_path.read_text(errors="replace")[-3000:]}')
            time.sleep(0.3)


def password_secrets(folder: Path) -> Path:
    """A secrets.toml with PASSWORD's hash that asks for it on 127.0.0.1 too."""
    from page.access import hash_password

    secrets = folder / 'secrets.toml'
    secrets.write_text(f'password_hash = "{hash_password(PASSWORD)}"\nrequire_password = true\n')
    return secrets


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def server(flow_args, tmp_path):
    """The page for this machine only; stopped whatever the test does."""
    served = start_page(flow_args, tmp_path)
    try:
        yield served
    finally:
        stop(served.process)


@pytest.fixture
def guarded_server(flow_args, tmp_path):
    """The page on 127.0.0.1 told to ask for PASSWORD (require_password: as behind a proxy)."""
    served = start_page(flow_args, tmp_path, '--secrets.files', str(password_secrets(tmp_path)))
    try:
        yield served
    finally:
        stop(served.process)


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
