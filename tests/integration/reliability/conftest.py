import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.factories import make_video
from tests.integration.reliability.checks import Reference, read_reference

ROOT = Path(__file__).resolve().parents[3]
SOURCES = ['testsrc2', 'smptebars', 'mandelbrot', 'rgbtestsrc', 'color=c=orange', 'life']


class CliServer:
    """Runs `flow.py` commands as forked children of tests/integration/reliability/cli_server.py (see there)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.runs = 0
        self.process = subprocess.Popen([sys.executable, '-m', 'tests.integration.reliability.cli_server'], cwd=ROOT,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.pid = None

    def start(self, *argv) -> int:
        """Start `flow.py *argv`; return the child's pid."""
        self.runs += 1
        self.out, self.err = self.folder / f'{self.runs}.out', self.folder / f'{self.runs}.err'
        job = {'argv': [str(a) for a in argv], 'out': str(self.out), 'err': str(self.err)}
        self.process.stdin.write(json.dumps(job) + '\n')
        self.pid = json.loads(self.process.stdout.readline())['pid']
        return self.pid

    def wait(self) -> tuple[int, str, str]:
        """The exit code (negative: killed by that signal), stdout and stderr of the last command."""
        code = json.loads(self.process.stdout.readline())['code']
        self.pid = None
        return code, self.out.read_text(), self.err.read_text()

    def run(self, *argv) -> tuple[int, str, str]:
        self.start(*argv)
        return self.wait()

    def kill_after(self, seconds: float) -> tuple[bool, int, str, str]:
        """SIGKILL the running command `seconds` after now; (whether it was still running, wait())."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and _running(self.pid):
            time.sleep(0.002)
        alive = _running(self.pid)
        if alive:
            os.kill(self.pid, signal.SIGKILL)
        return (alive, *self.wait())

    def stop(self) -> None:
        """Kill and reap a command a failed test left running, so the next test starts with the server idle."""
        if self.pid is not None:
            if _running(self.pid):
                os.kill(self.pid, signal.SIGKILL)
            self.wait()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def _running(pid: int) -> bool:
    """True while `pid` runs (a zombie, dead but not yet reaped by the server, counts as gone)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


@pytest.fixture(scope='session')
def cli_servers(tmp_path_factory):
    servers = [CliServer(tmp_path_factory.mktemp(name)) for name in ('cli-runs', 'cli-runs-2')]
    yield servers
    for server in servers:
        server.close()


@pytest.fixture
def cli(cli_servers):
    yield cli_servers[0]
    cli_servers[0].stop()


@pytest.fixture
def second_cli(cli_servers):
    yield cli_servers[1]
    cli_servers[1].stop()


@pytest.fixture(scope='session')
def batch(tmp_path_factory) -> Path:
    """A folder of tiny, visually distinct videos (2 keyframes each with flow.yml's 1 fps)."""
    folder = tmp_path_factory.mktemp('batch')
    for i, source in enumerate(SOURCES):
        make_video(folder / f'clip{i}.mp4', duration=2, size='64x48', rate=10, source=source)
    return folder


@pytest.fixture(scope='session')
def reference(cli_servers, batch, tiny_checkpoint, tmp_path_factory) -> Reference:
    """The batch indexed once, undisturbed, by `flow.py index`: what every other run must reproduce."""
    folder = tmp_path_factory.mktemp('reference') / 'workspace'
    code, out, err = cli_servers[0].run('index', batch, '--workspace', folder, '--model', tiny_checkpoint)
    assert code == 0, err
    return read_reference(folder)


@pytest.fixture
def library(reference, workspace) -> Path:
    """A fresh workspace holding the reference batch, stored by the Indexer alone (no CLIP, no ffmpeg)."""
    from executors.indexer import Indexer

    indexer = Indexer(workspace=str(workspace))
    indexer.index(reference.docs(reference.videos, workspace))
    indexer.close()
    return workspace
