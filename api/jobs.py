"""The server's one writer: index and delete jobs run one at a time on a worker thread, in the order they came.

Searches never wait for a job: they run on the server's request threads over the same Library (the
Indexer serialises its own short storage steps). Other processes (the CLI, the page) writing to the
same workspace are kept apart by the workspace's lock, as between any two processes.
"""
import itertools
import logging
import queue
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from api.problems import status_of
from executors.documents import Status, VideoDoc
from executors.errors import VcedError, first_line
from library import VIDEO_EXTENSIONS, IndexSummary, Library, json_text, one_line, plural, progress_fraction, progress_text

__all__ = ['Job', 'JobQueue']

log = logging.getLogger(__name__)

STOPPED = 'the server stopped before the job finished: post it again'
KEPT = 1000  # finished jobs remembered for GET /v1/jobs/ID (the oldest forgotten first)


@dataclass
class Job:
    """One write to the library, as GET /v1/jobs/ID shows it."""

    id: str
    kind: str  # 'index' | 'delete'
    state: str = 'queued'  # queued | running | done | failed
    videos: list[dict] = field(default_factory=list)  # per video: video, video_id, status, error
    progress: dict | None = None  # the running video's stage: video, stage, done, total, fraction, text
    error: str = ''  # why a failed job failed
    status: int = 200  # the HTTP status of its outcome (a failed job's: as the same error from a request)
    version: int = 0  # bumped on every change (server-sent events wait for it)
    finished: threading.Event = field(default_factory=threading.Event)

    def view(self) -> dict:
        shown = {'job': self.id, 'kind': self.kind, 'state': self.state, 'videos': list(self.videos),
                 'progress': self.progress}
        return {**shown, 'error': self.error} if self.error else shown


class JobQueue:
    """Jobs by id, and the worker thread that runs them one at a time."""

    def __init__(self, library: Library):
        self.library = library
        self.jobs: dict[str, Job] = {}
        self._pending: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._stopping = threading.Event()
        self._worker = threading.Thread(target=self._work, name='vced-writer', daemon=True)
        self._worker.start()

    def index(self, paths: list[str], uploaded: bool = False) -> Job:
        """Queue indexing `paths` (files or folders); `uploaded`: files saved for this job, removed again when they
        fail or are already indexed."""
        return self._submit('index', lambda job: self._index(job, paths, uploaded))

    def delete(self, video_id: str) -> Job:
        """Queue deleting a video by id."""
        return self._submit('delete', lambda job: self.library.delete(video_id))

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self.jobs.get(job_id)

    def close(self) -> None:
        """Stop: the running job after its current video, queued ones before they start (they fail)."""
        self._stopping.set()
        self._pending.put(None)
        self._worker.join()

    def _submit(self, kind: str, run: Callable[[Job], None]) -> Job:
        job = Job(f'{next(self._numbers)}-{secrets.token_hex(4)}', kind)
        with self._lock:
            self.jobs[job.id] = job
            for old in [j for j in self.jobs.values() if j.finished.is_set()][:max(0, len(self.jobs) - KEPT)]:
                del self.jobs[old.id]
        self._pending.put((job, run))
        return job

    def _work(self) -> None:
        while (item := self._pending.get()) is not None:
            job, run = item
            self._change(job, state='running')
            try:
                if self._stopping.is_set():
                    raise VcedError(STOPPED)
                run(job)
            except VcedError as e:
                self._change(job, state='failed', error=one_line(str(e)), status=status_of(e), progress=None)
            except Exception as e:  # noqa: BLE001 - a bug fails its job, not the server's one writer
                log.exception('job %s failed', job.id)
                self._change(job, state='failed', error=f'{type(e).__name__}: {first_line(e)}', status=500, progress=None)
            else:
                self._change(job, state='done', progress=None)
            job.finished.set()

    def _index(self, job: Job, paths: list[str], uploaded: bool) -> None:
        summary = IndexSummary()

        def progress(video: VideoDoc, stage: str, done: int, total: int) -> None:
            self._change(job, progress={'video': json_text(video.uri), 'stage': stage, 'done': done, 'total': total,
                                        'fraction': round(progress_fraction(stage, done, total), 4),
                                        'text': progress_text(stage, done, total)})

        for video in self.library.index(paths, progress):
            summary.add(video)
            if uploaded and video.status != Status.INDEXED:  # an unreadable upload, or a second copy of a stored video
                Path(video.uri).unlink(missing_ok=True)
            outcome = {'video': json_text(video.uri), 'video_id': video.video_id, 'status': str(video.status),
                       'error': one_line(video.error) if video.error else None}
            self._change(job, videos=job.videos + [outcome])
            if self._stopping.is_set():
                raise VcedError(STOPPED)
        if not summary.total:
            raise VcedError(f"no video files in {one_line(', '.join(paths))} "
                            f"(looked for {', '.join(sorted(VIDEO_EXTENSIONS))})")
        if summary.counts[Status.FAILED] == summary.total:
            raise VcedError(f"{plural(summary.total, 'video')} failed: {job.videos[0]['error']}")

    def _change(self, job: Job, **changes) -> None:
        for name, value in changes.items():
            setattr(job, name, value)
        job.version += 1

