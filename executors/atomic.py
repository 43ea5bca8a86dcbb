"""Files replaced whole: written beside their place and moved over it, so no reader ever sees half of one."""
import contextlib
import os
from pathlib import Path


def replace_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` (its folder made if missing) through a temporary file; OSError when it cannot be
    written, with nothing left behind."""
    partial = path.with_name(f'{path.name}.{os.getpid()}.tmp')
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
        os.replace(partial, path)
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise
