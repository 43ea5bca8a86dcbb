"""Indexing on a Ray cluster: flow.yml's own executors on the workers, its storing step on the driver.

    videos ─► run_flow (Ray Data tasks, as many at a time as GPUs, else `workers`: each worker process
              builds once a FlowWorker, the Flow's executors that come before the one that stores,
              with flow.yml's settings: VideoLoader, SpeechReader, ImageEncoder and any executor
              added there) ─► the driver hands each piece of a video to the storing executors of
              the same Flow (the Indexer: the only writer, whatever the backend)

A worker runs /index exactly as `Flow.stream` does without Ray, so what is stored is the same; only
the keyframe pixels stay on the worker: a piece travels as its embeddings, cues and metadata, with
its thumbnails' JPEG bytes, which the driver stages as the VideoLoader does. Tasks, not actors: Ray
retries a task whose worker died (an actor's restart would need Ray Data's arguments kept in the
object store, which Ray warns about on every run); the driver keeps a video's pieces until its last one, drops a
second copy of a piece, and the Storage stores a video id once, so a retried video is never
duplicated. If the run itself stops (Ray fails, or Ctrl-C), every video not stored is reported
failed, and running the same command again indexes just those.
"""
import atexit
import logging
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from executors.documents import DocList, FrameDoc, Status, VideoDoc
from executors.errors import VcedError, WorkspaceError, first_line
from executors.media.thumbnails import staging_folder
from library.pipeline import Flow

log = logging.getLogger(__name__)

Progress = Callable[[VideoDoc, str, int, int], None]
SHIPPED_NOT = ['/data/', '/weights/', '/.venv/', '/tests/', '/bench/', '/docs/', '.git/', '*.mp4', '*.pt']


def index_on_ray(docs: list[VideoDoc], flow: Flow, *, address: str = 'local', indexed: frozenset = frozenset(),
                 workers: int = 0, worker_cpus: float = 1.0, progress: Progress | None = None) -> Iterator[VideoDoc]:
    """Index `docs` (VideoDocs with `uri`, and `video_id` when known) with `flow` on Ray; yield each
    video's VideoDoc, with its status (and error), cues and frame count, as it is stored.

    address: 'local' (a Ray instance on this machine) or a cluster's address ('ray://host:10001',
    'host:6379', 'auto'). indexed: the ids already stored (a worker hashing a file skips those).
    workers: videos processed at a time (0: one per GPU, else 1); worker_cpus: CPUs each reserves.
    """
    import ray

    if not docs:
        return
    storing = flow.storing()
    driver = Driver(flow, storing, Path(flow.stages[storing][1].get('workspace') or tempfile.gettempdir()), progress)
    try:
        connect(address)
        _quiet_ray_data()
        gpus = int(ray.cluster_resources().get('GPU', 0))
        dataset = (ray.data.from_items([{'path': d.uri, 'video_id': d.video_id} for d in docs],
                                       override_num_blocks=len(docs))
                   .map_batches(run_flow, batch_size=1, concurrency=workers or max(gpus, 1), num_gpus=1 if gpus else 0,
                                num_cpus=worker_cpus, fn_kwargs={'stages': flow.stages[:storing],
                                                                 'path': str(flow.path), 'indexed': indexed}))
        for row in dataset.iter_rows():
            yield from driver.add(row)
    except (ray.exceptions.RayError, OSError) as e:
        yield from driver.unfinished(docs, f'the Ray run stopped ({first_line(e)}); run again to index the rest')
    except KeyboardInterrupt:
        yield from driver.unfinished(docs, 'interrupted before it was stored; run again to index the rest')
        raise
    finally:
        driver.discard()


def connect(address: str, **options) -> None:
    """Join the Ray cluster at `address`, or start one on this machine for 'local' (once per process);
    `options` go to ray.init (num_cpus, ...). Ray's own log lines stay in its session's log files."""
    import ray

    if ray.is_initialized():
        return
    quiet = {'logging_level': logging.ERROR, 'log_to_driver': False}
    if address == 'local':
        _start_local(ray, {'include_dashboard': False, **quiet, **options})
        return
    try:  # the workers get this repository's code (not its data, weights or venv): its packages they have
        ray.init(address=address, runtime_env={'working_dir': str(Path(__file__).resolve().parents[1]),
                                               'excludes': SHIPPED_NOT}, **quiet, **options)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise WorkspaceError(f'ray {address}: cannot join the cluster ({first_line(e)})') from e


def _quiet_ray_data() -> None:
    """Ray Data's per-run lines (execution plans, timings) go to its log file only, not to our stderr;
    progress is reported per video instead of by its bars."""
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    ours = set(logging.getLogger().handlers)  # Ray Data may hold the root's handlers too: they must keep warnings
    for handler in logging.getLogger('ray.data').handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler) \
                and handler not in ours:
            handler.setLevel(logging.ERROR)


def _start_local(ray, options: dict, attempts: int = 2) -> None:
    """Start a local Ray instance, once more if the first start times out: on a busy machine its GCS
    can miss Ray's 30-second start-up deadline. Ray reports that as a bare Exception."""
    for attempt in range(attempts):
        try:
            ray.init(**options)
            return
        except Exception as e:  # noqa: BLE001 (ray.init's start-up timeout is a bare Exception)
            ray.shutdown()
            if attempt + 1 == attempts:
                raise WorkspaceError(f'ray local: cannot start Ray on this machine ({first_line(e)})') from e
            log.warning('ray local: start-up failed (%s); starting again', first_line(e))


# ----------------------------------------------------------------------------- on the workers


def run_flow(batch: dict, *, stages: list[tuple[str, dict]], path: str, indexed: frozenset) -> Iterator[dict]:
    """A Ray task: each video of `batch` through /index by this worker process's FlowWorker, one row per
    piece it comes out in."""
    worker = FlowWorker.of(stages, path)
    for uri, video_id in zip(batch['path'], batch['video_id']):
        yield from worker.index(str(uri), str(video_id), indexed)


class FlowWorker:
    """The Flow's executors before the storing one, built once per worker process (Ray reuses its
    processes for the next tasks, so models load once); its `workspace` is a scratch folder of its
    own, since nothing is stored on a worker."""

    _built: dict[bytes, 'FlowWorker'] = {}

    def __init__(self, stages: list[tuple[str, dict]], path: str):
        self.scratch = Path(tempfile.mkdtemp(prefix='vced-ray-'))
        atexit.register(shutil.rmtree, self.scratch, True)
        self.flow = Flow.of([(uses, {**kwargs, 'workspace': str(self.scratch)} if 'workspace' in kwargs else kwargs)
                             for uses, kwargs in stages], path)

    @classmethod
    def of(cls, stages: list[tuple[str, dict]], path: str) -> 'FlowWorker':
        key = pickle.dumps((stages, path))
        if key not in cls._built:
            cls._built[key] = cls(stages, path)
        return cls._built[key]

    def index(self, uri: str, video_id: str, indexed: frozenset) -> Iterator[dict]:
        request = DocList[VideoDoc]([VideoDoc(uri=uri, video_id=video_id)])
        try:
            for number, piece in enumerate(self.flow.stream('/index', [request], {'indexed_ids': indexed})):
                yield {'path': [uri], 'number': [number], 'piece': [pack(piece)]}
        except VcedError as e:
            failed = VideoDoc(uri=uri, video_id=video_id, status=Status.FAILED, error=str(e))
            yield {'path': [uri], 'number': [-1], 'piece': [pack(DocList[VideoDoc]([failed]))]}
        finally:
            shutil.rmtree(self.scratch / 'thumbnails', ignore_errors=True)


def pack(docs: DocList[VideoDoc]) -> bytes:
    """A piece as bytes: its documents without pixels, each keyframe's thumbnail as its file name and JPEG bytes."""
    packed = []
    for doc in docs:
        frames = DocList[FrameDoc]([f.model_copy(update={'tensor': None, 'thumbnail': Path(f.thumbnail).name
                                                         if f.thumbnail else ''}) for f in doc.frames])
        jpegs = [Path(f.thumbnail).read_bytes() if f.thumbnail else b'' for f in doc.frames]
        packed.append((doc.model_copy(update={'frames': frames}), jpegs))
    return pickle.dumps(packed, protocol=pickle.HIGHEST_PROTOCOL)


# ----------------------------------------------------------------------------- on the driver


class Driver:
    """Hands each piece to the Flow's storing executors, its thumbnails staged under the workspace
    (executors.media.thumbnails), and keeps track of what is finished."""

    def __init__(self, flow: Flow, storing: int, workspace: Path, progress: Progress | None):
        self.flow, self.storing, self.workspace, self.progress = flow, storing, workspace, progress
        self.received: dict[str, set[int]] = {}  # piece numbers of each unfinished video
        self.staged: dict[str, Path] = {}  # each unfinished video's staging folder
        self.frames: dict[str, int] = {}  # keyframes received of each unfinished video
        self.finished: set[str] = set()

    def add(self, row: dict) -> Iterator[VideoDoc]:
        path, number = row['path'], int(row['number'])
        if path in self.finished or number in self.received.setdefault(path, set()):
            return  # a retried task's second copy
        self.received[path].add(number)
        docs = DocList[VideoDoc]([self._staged(doc, jpegs) for doc, jpegs in pickle.loads(row['piece'])])
        for doc in docs:
            if self.progress and doc.status == Status.PENDING:
                self.frames[path] = self.frames.get(path, 0) + len(doc.frames)
                self.progress(doc, 'encode', self.frames[path], self.frames[path] + (0 if doc.last_chunk else 1))
        for doc in self.flow.post('/index', docs, first=self.storing):
            self._close(doc.uri, failed=doc.status == Status.FAILED)
            yield doc

    def _staged(self, doc: VideoDoc, jpegs: list[bytes]) -> VideoDoc:
        """`doc` with its thumbnails written into this video's staging folder."""
        if not any(jpegs):
            return doc
        if doc.uri not in self.staged:
            self.staged[doc.uri] = staging_folder(self.workspace, doc.video_id)
        folder = self.staged[doc.uri]
        try:
            for frame, jpeg in zip(doc.frames, jpegs):
                if jpeg:
                    (folder / frame.thumbnail).write_bytes(jpeg)
                    frame.thumbnail = str(folder / frame.thumbnail)
        except OSError as e:
            doc.status, doc.error = Status.FAILED, f'{folder}: cannot write the thumbnails ({e.strerror or e})'
        return doc

    def _close(self, path: str, failed: bool) -> None:
        self.finished.add(path)
        self.received.pop(path, None)
        self.frames.pop(path, None)
        folder = self.staged.pop(path, None)
        if failed and folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def unfinished(self, docs: list[VideoDoc], reason: str) -> Iterator[VideoDoc]:
        """Every video of `docs` not finished, as failed for `reason`."""
        for doc in docs:
            if doc.uri not in self.finished:
                self._close(doc.uri, failed=True)
                yield VideoDoc(uri=doc.uri, video_id=doc.video_id, status=Status.FAILED,
                               error=f'{Path(doc.uri).name}: {reason}')

    def discard(self) -> None:
        """Drop the staged thumbnails of videos that will not be stored."""
        for folder in self.staged.values():
            shutil.rmtree(folder, ignore_errors=True)
        self.staged.clear()
