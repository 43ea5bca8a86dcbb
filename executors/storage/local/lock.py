"""The workspace's write lock: one process writes at a time, and only while it writes."""
import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Iterator

from executors.errors import WorkspaceError

POLL = 0.05  # seconds between tries while another process holds the lock


class WriteLock:
    """An exclusive flock on `folder/lock` holding the owner's pid; held for one write at a time.

    `wait`: seconds to wait for another writer's write to finish before giving up with a
    WorkspaceError that names its pid.
    """

    def __init__(self, folder: Path, wait: float):
        self.path = folder / 'lock'
        self.wait = wait
        self._handle = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    @contextlib.contextmanager
    def hold(self) -> Iterator[bool]:
        """Hold the lock for the block (re-entrant); yields True when this call took it."""
        if self.held:
            yield False
            return
        self.acquire()
        try:
            yield True
        finally:
            self.release()

    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                owner = _read(self.path) or 'another process'
                raise WorkspaceError(f'{self.path.parent}: the workspace is locked by a process writing to it '
                                     f'(pid {owner}); wait for it to finish or use another --workspace')
            time.sleep(POLL)

    def try_acquire(self) -> bool:
        try:
            handle = open(self.path, 'a+b', buffering=0)  # noqa: SIM115 - held until release(); unbuffered: a pid the
            # full disk refused is not flushed again (and refused again) when the lock is released
        except OSError as e:
            raise WorkspaceError(f'{self.path}: cannot open the workspace lock ({e.strerror})') from e
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        try:
            handle.truncate(0)
            handle.write(str(os.getpid()).encode())
        except OSError:
            pass  # the pid is only for messages; a full disk must not stop the writer from taking the lock
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.truncate(0)
            self._handle.close()
            self._handle = None


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ''
