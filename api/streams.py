"""Long answers sent piece by piece: a video's bytes (with range requests) and a job's progress as server-sent events."""
import asyncio
import json
import os
from typing import AsyncIterator, BinaryIO, Iterator

from fastapi.responses import Response, StreamingResponse

from api.jobs import Job
from api.problems import Problem
from library.media import CHUNK_BYTES, byte_range, media_type

__all__ = ['file_response', 'job_events']

KEEP_ALIVE = 15.0  # seconds between comments on an idle event stream, so proxies keep it open
POLL = 0.1  # seconds between looks at a job for changes


def file_response(path: str, range_header: str | None, body: bool) -> Response:
    """The file at `path`, whole (200) or the part `range_header` asks for (206); 416 for a range past its end."""
    try:
        file = open(path, 'rb')
    except OSError as e:
        raise Problem(404, f'{path}: the indexed file cannot be read any more ({e.strerror})') from e
    size = os.fstat(file.fileno()).st_size
    try:
        wanted = byte_range(range_header, size)
    except ValueError:
        file.close()
        raise Problem(416, f'the range {range_header} is not within the file ({size} bytes)',
                      {'Content-Range': f'bytes */{size}'}) from None
    first, last = wanted or (0, size - 1)
    headers = {'Accept-Ranges': 'bytes', 'Content-Length': str(last - first + 1), 'Cache-Control': 'private, max-age=3600'}
    if wanted:
        headers['Content-Range'] = f'bytes {first}-{last}/{size}'
    status = 206 if wanted else 200
    if not body:
        file.close()
        return Response(status_code=status, headers=headers, media_type=media_type(path))
    return StreamingResponse(_pieces(file, first, last - first + 1), status, headers, media_type=media_type(path))


def _pieces(file: BinaryIO, first: int, count: int) -> Iterator[bytes]:
    with file:
        file.seek(first)
        while count > 0 and (chunk := file.read(min(CHUNK_BYTES, count))):
            count -= len(chunk)
            yield chunk


def job_events(job: Job) -> StreamingResponse:
    """`event: job` with the job's JSON at once and after every change, until it is done or failed."""
    return StreamingResponse(_events(job), media_type='text/event-stream',
                             headers={'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no'})


async def _events(job: Job) -> AsyncIterator[str]:
    sent, quiet = -1, 0.0
    while True:
        version, finished = job.version, job.finished.is_set()
        if version != sent:
            sent, quiet = version, 0.0
            yield f'event: job\ndata: {json.dumps(job.view(), ensure_ascii=False)}\n\n'
        if finished:
            return
        if quiet >= KEEP_ALIVE:
            quiet = 0.0
            yield ': keep-alive\n\n'
        await asyncio.sleep(POLL)
        quiet += POLL
