"""Request bodies within limits, and uploads streamed to disk: a body is never held whole in memory."""
import os
from pathlib import Path

from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Receive, Scope, Send

from api.problems import Problem, problem
from library import VIDEO_EXTENSIONS, one_line, save_upload

__all__ = ['BodyLimit', 'save_video_upload', 'inside']

MB = 1024 * 1024


class BodyLimit:
    """ASGI middleware: 413 for a body over its route's limit, whether it declares its length or streams it."""

    def __init__(self, app: ASGIApp, limits: dict[str, int], default: int):
        self.app, self.limits, self.default = app, limits, default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope['type'] != 'http':
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope['path'], self.default)
        declared = dict(scope['headers']).get(b'content-length', b'')
        if declared.isdigit() and int(declared) > limit:
            await problem(413, too_large(limit))(scope, receive, send)
            return
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get('body', b''))
            if seen > limit:
                raise Problem(413, too_large(limit))
            return message

        await self.app(scope, counted, send)


def too_large(limit: int) -> str:
    return f'the request body is larger than this server accepts ({limit // MB} MB; --max-upload-mb)'


def save_video_upload(upload: UploadFile, folder: Path) -> Path:
    """Save an uploaded video in `folder` (a numbered name on a clash); 415 unless its name is a video's."""
    name = upload.filename or ''
    if Path(name).suffix.lower() not in VIDEO_EXTENSIONS:
        raise Problem(415, f"{one_line(name) or 'the upload'}: not a video file name "
                           f"(accepted: {', '.join(sorted(VIDEO_EXTENSIONS))})")
    upload.file.seek(0)
    return save_upload(name, upload.file, folder)


def inside(path: str, folders: list[Path]) -> Path:
    """`path` resolved (symlinks followed); 403 unless it lies in one of `folders`, 404 when it does not exist."""
    if '\0' in path:  # no file name holds one; os.path would raise ValueError
        raise Problem(400, f'{one_line(path)}: a path cannot contain a NUL character')
    resolved = Path(os.path.realpath(os.path.expanduser(path)))
    if not any(resolved == folder or folder in resolved.parents for folder in folders):
        raise Problem(403, f"{one_line(path)}: outside the folders this server may read "
                           f"({', '.join(str(f) for f in folders)}; --allow-dir)")
    try:
        os.stat(resolved)
    except OSError as e:  # no such file, a name too long, no permission
        raise Problem(404, f'{one_line(path)}: {e.strerror or "cannot be read"}') from None
    return resolved
