"""`flow.py serve` as a real server process on a free 127.0.0.1 port, for the API's tests and benchmark."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


class ApiServer:
    """`python flow.py serve *args` on a free port; ready once /v1/readyz answers 200 (the models loaded)."""

    def __init__(self, args: list, log: Path, ready_within: float = 180.0):
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.log = log
        with open(log, 'wb') as out:
            self.process = subprocess.Popen([sys.executable, 'flow.py', 'serve', '--port', str(self.port), *map(str, args)],
                                            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                            env={**os.environ, 'HF_HUB_OFFLINE': '1'})
        deadline = time.monotonic() + ready_within
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f'the server exited with {self.process.returncode}: {log.read_text()[-2000:]}')
            try:
                if httpx.get(f'{self.url}/v1/readyz', timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f'the server was not ready in {ready_within:.0f} s: {log.read_text()[-2000:]}')
            time.sleep(0.25)

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, **kwargs)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no clean-up, as a power cut or the OOM killer would."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
