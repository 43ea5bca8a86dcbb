"""Facts about a file that take time to learn, remembered across processes in weights/file_facts.json by the file's
path, size and modification time (what make and git trust too): a checkpoint's sha256, its identity (reading 350 MB
cost every CLI search 0.5 s), and what `ffmpeg -version` says (starting ffmpeg cost every command 0.1-0.2 s).
A file changed in place gets a new modification time, so its facts are learnt again."""
import hashlib
import json
import logging
from pathlib import Path
from typing import Callable

from executors.atomic import replace_atomically
from executors.models.clip_weights import WEIGHTS_DIR

log = logging.getLogger(__name__)
RECORD_DIR = WEIGHTS_DIR
KEEP = 64  # facts remembered; the oldest is dropped first


def remembered(kind: str, path: str, size: int, mtime_ns: int, learn: Callable[[], str]) -> str:
    """What `learn()` says of `kind` of the file at `path` (absolute), whose stat gave `size` and `mtime_ns`;
    learnt once per version of the file. What raises is not remembered."""
    record, key = RECORD_DIR / 'file_facts.json', f'{kind} {path}'
    known = _read(record)
    if known.get(key, [None])[:2] == [size, mtime_ns]:
        return known[key][2]
    fact = learn()
    known.pop(key, None)
    known[key] = [size, mtime_ns, fact]
    _write(record, dict(list(known.items())[-KEEP:]))
    return fact


def file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """The sha256 of the file at `path` (absolute), whose stat gave `size` and `mtime_ns`."""
    def digest() -> str:
        with open(path, 'rb') as f:
            return hashlib.file_digest(f, 'sha256').hexdigest()

    return remembered('sha256', path, size, mtime_ns, digest)


def _read(record: Path) -> dict:
    try:
        known = json.loads(record.read_text())
        return known if isinstance(known, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(record: Path, known: dict) -> None:
    try:
        replace_atomically(record, json.dumps(known).encode())
    except OSError as e:
        log.debug('cannot remember file facts in %s (%s)', record, e.strerror or e)
