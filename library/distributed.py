"""Indexing on a Ray cluster with Ray Data: decode on CPU tasks, encode on an actor pool, store from the driver.

    paths ─► decode_videos (CPU tasks: load_video, then chunks of `chunk` keyframes with their JPEG
             thumbnails) ─► FrameEncoder (an actor pool, one per GPU when the cluster has GPUs: CLIP
             loaded once per actor; only vectors leave it) ─► the driver adds each complete video to
             the Storage (the only writer, whatever the backend)

Ray Data streams the stages, so decoding overlaps encoding and at most a few chunks of pixels are
in the object store at once. On a cluster without GPUs both stages ask for the same CPUs, so Ray Data
fuses them: each actor decodes and encodes its own videos and no pixel leaves its process (the same
cores would do both jobs anyway, and two stages competing for them could starve one another). Ray retries a task and restarts an actor whose worker died; the driver
keeps one copy of each chunk (by video and chunk number), and the Storage stores a video id once, so
a retried task never duplicates a video. If the run itself stops, the videos it had not stored are
reported failed and running the same command again indexes just those.
"""
import json
import logging
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from executors.documents import CueDoc, Status, VideoDoc
from executors.errors import VcedError, WorkspaceError, first_line
from executors.storage.interface import Frames, ImageSpace, Storage, VideoRecord

log = logging.getLogger(__name__)

Progress = Callable[[VideoDoc, str, int, int], None]
SHIPPED_NOT = ['/data/', '/weights/', '/.venv/', '/tests/', '/bench/', '/docs/', '.git/', '*.mp4', '*.pt']


def index_on_ray(paths: Iterable[str | Path], storage: Storage, *, loader: dict, encoder: dict, space: ImageSpace,
                 speech: dict | None = None,
                 workspace: str | Path, address: str = 'local', workers: int = 0, worker_cpus: float = 1.0,
                 chunk: int = 64, progress: Progress | None = None) -> Iterator[VideoDoc]:
    """Index `paths` on Ray; yield each video's VideoDoc with its status (and error) as it is stored.

    loader: the VideoLoader's keyword arguments (flow.yml); encoder: the ImageEncoder's (model,
    device, batch_size, quantize); speech: the SpeechReader's (None: no cues); space: the image tower's identity, recorded with the vectors.
    address: 'local' (a Ray instance on this machine) or a cluster's address ('ray://host:10001',
    'host:6379', 'auto'). workers: encoder actors (0: one per GPU, else 1); worker_cpus: CPUs each
    actor reserves; chunk: keyframes per decoded block.
    """
    import ray

    paths = [str(Path(p).expanduser().absolute()) for p in paths]
    if not paths:
        return
    connect(address)
    ray.data.DataContext.get_current().enable_progress_bars = False  # progress is reported per video instead
    gpus = int(ray.cluster_resources().get('GPU', 0))
    workers = workers or max(gpus, 1)
    stored = frozenset(video.id for video in storage.videos())
    dataset = (ray.data.from_items([{'path': p} for p in paths], override_num_blocks=len(paths))
               .map_batches(decode_videos, batch_size=1, num_cpus=1 if gpus else worker_cpus, fn_kwargs={
                   'loader': loader, 'indexed': stored, 'chunk': chunk, 'speech': speech})
               .map_batches(FrameEncoder, batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers),
                            num_gpus=1 if gpus else 0, num_cpus=worker_cpus,
                            fn_constructor_kwargs={'encoder': {**encoder, 'device': 'cuda' if gpus else 'cpu'}}))
    pending: dict[str, dict] = {}
    done: set[str] = set()
    try:
        for row in dataset.iter_rows():
            doc = _finish(row, pending, done, storage, space, Path(workspace), progress)
            if doc is not None:
                done.add(row['path'])
                yield doc
    except (ray.exceptions.RayError, OSError) as e:
        reason = first_line(e)
        for path in paths:
            if path not in done:
                yield VideoDoc(uri=path, status=Status.FAILED,
                               error=f'{Path(path).name}: the Ray run stopped ({reason}); run again to index the rest')


def connect(address: str, **options) -> None:
    """Join the Ray cluster at `address`, or start one on this machine for 'local' (once per process);
    `options` go to ray.init (num_cpus, ...)."""
    import ray

    if ray.is_initialized():
        return
    if address == 'local':
        _start_local(ray, {'include_dashboard': False, 'logging_level': logging.WARNING, 'log_to_driver': False,
                           **options})
        return
    try:  # the workers get this repository's code (not its data, weights or venv): its packages they have
        ray.init(address=address, logging_level=logging.WARNING, runtime_env={
            'working_dir': str(Path(__file__).resolve().parents[1]), 'excludes': SHIPPED_NOT}, **options)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise WorkspaceError(f'ray {address}: cannot join the cluster ({first_line(e)})') from e


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


def decode_videos(batch: dict, *, loader: dict, indexed: frozenset, chunk: int, speech: dict | None = None) -> Iterator[dict]:
    """A Ray task: decode each video of `batch` with the VideoLoader itself (its thumbnails staged in a
    temporary folder of this worker) and read its subtitles or speech with the SpeechReader's own
    function when `speech` (the SpeechReader's arguments) is given; yield its keyframes in rows of
    `chunk` (pixels, timestamps, JPEG bytes), the last one flagged and carrying the cues, or one row
    saying why it was not decoded."""
    import shutil
    import tempfile

    from executors.documents import DocList
    from executors.speech_reader import SpeechReader
    from executors.video_loader import VideoLoader

    scratch = tempfile.mkdtemp(prefix='vced-ray-')
    try:
        video_loader = VideoLoader(**{**loader, 'workspace': scratch})
        reader = SpeechReader(**speech) if speech is not None else None
        for path in batch['path']:
            yield from _decode(video_loader, DocList[VideoDoc]([VideoDoc(uri=str(path))]), indexed, chunk, reader)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _decode(video_loader, docs, indexed: frozenset, chunk: int, reader=None) -> Iterator[dict]:
    path = docs[0].uri
    try:
        loaded = video_loader.index(docs, {'indexed_ids': indexed})
        pieces = [loaded] if hasattr(loaded, 'doc_type') else loaded  # a DocList, or an iterator of pieces
        index, frames, doc = 0, [], docs[0]
        for piece in pieces:
            doc = piece[0]
            if doc.status:
                yield _row(path, doc, doc.status, doc.error)
                return
            frames += list(doc.frames)
            while len(frames) > chunk:
                yield _chunk_row(path, doc, index, frames[:chunk], last=False)
                index, frames = index + 1, frames[chunk:]
        if not index and not frames:
            raise WorkspaceError(f'{Path(path).name}: no keyframe could be decoded')
        if reader is not None:
            from executors.speech_reader import read_cues

            doc.cues = type(doc.cues)(read_cues(doc, reader.recognizer))
        yield _chunk_row(path, doc, index, frames, last=True)
    except VcedError as e:
        yield _row(path, docs[0], Status.FAILED, str(e))


def _chunk_row(path: str, doc: VideoDoc, index: int, frames: list, last: bool) -> dict:
    """Keyframes `frames` (the index-th chunk of `doc`) as a row; the last carries the video's metadata."""
    thumbnails = [Path(frame.thumbnail).read_bytes() if frame.thumbnail else b'' for frame in frames]
    meta = '{}'
    if last:
        stat = os.stat(path)
        meta = json.dumps({'duration': doc.duration, 'fps': doc.fps, 'width': doc.width, 'height': doc.height,
                           'shots': list(doc.shots), 'size': stat.st_size, 'mtime_ns': stat.st_mtime_ns,
                           'cues': [cue.model_dump(include={'start', 'end', 'text', 'source', 'language'})
                                    for cue in doc.cues]})
    pixels = np.stack([frame.tensor for frame in frames]) if frames else np.zeros((0, 1, 1, 3), np.uint8)
    return _row(path, doc, Status.PENDING, meta=meta, index=index, count=index + 1 if last else 0, pixels=pixels,
                timestamps=np.array([frame.timestamp for frame in frames], dtype=np.float64), thumbnails=thumbnails)


def _row(path: str, doc: VideoDoc, status: Status, error: str = '', *, meta: str = '{}', index: int = 0,
         count: int = 0, pixels: np.ndarray | None = None, timestamps: np.ndarray | None = None,
         thumbnails: list[bytes] = ()) -> dict:
    """One row as a batch of one; every row has every column, so Ray Data can put rows in one block."""
    return {'path': [path], 'video_id': [doc.video_id], 'status': [str(status)], 'error': [error], 'meta': [meta],
            'index': [index], 'count': [count],
            'pixels': [pixels if pixels is not None else np.zeros((0, 1, 1, 3), np.uint8)],
            'timestamps': [timestamps if timestamps is not None else np.zeros(0)],
            'thumbnails': [np.frombuffer(b''.join(thumbnails), np.uint8)],
            'thumbnail_sizes': [np.array([len(t) for t in thumbnails], dtype=np.int64)]}


class FrameEncoder:
    """A Ray actor: the ImageEncoder's model, loaded once; turns a chunk's pixels into unit vectors."""

    def __init__(self, encoder: dict):
        from executors.image_encoder import ImageEncoder

        self.encoder = ImageEncoder(**encoder)
        self.model = self.encoder.model

    def __call__(self, batch: dict) -> dict:
        from executors.models.clip_encoding import encode_images

        pixels = batch.pop('pixels')[0]
        vectors = [encode_images(self.model, list(pixels[start:start + self.encoder.batch_size]))
                   for start in range(0, len(pixels), self.encoder.batch_size)]
        batch['vectors'] = [np.concatenate(vectors) if vectors else np.zeros((0, 1), np.float32)]
        return batch


# ----------------------------------------------------------------------------- on the driver


def _finish(row: dict, pending: dict[str, dict], done: set[str], storage: Storage, space: ImageSpace,
            workspace: Path, progress: Progress | None) -> VideoDoc | None:
    """Collect a chunk; when its video is complete (or was never decoded), store it and return its VideoDoc."""
    path, status = row['path'], Status(row['status'])
    if path in done:
        return None  # a retried task's second copy
    doc = VideoDoc(uri=path, video_id=row['video_id'])
    if status != Status.PENDING:
        doc.status, doc.error = status, row['error']
        pending.pop(path, None)
        return doc
    parts = pending.setdefault(path, {})
    parts[int(row['index'])] = row
    count = max(int(part['count']) for part in parts.values())  # known once the last chunk arrived
    if progress:
        received = sum(len(part['timestamps']) for part in parts.values())
        progress(doc, 'encode', received, received + (0 if len(parts) == count else 1))
    if len(parts) < count or not count:
        return None
    del pending[path]
    chunks = [parts[i] for i in range(count)]
    meta = json.loads(chunks[-1]['meta'])
    doc.duration, doc.fps, doc.width, doc.height = meta['duration'], meta['fps'], meta['width'], meta['height']
    try:
        chunks = [c for c in chunks if len(c['timestamps'])]
        frames = Frames(np.concatenate([c['timestamps'] for c in chunks]),
                        np.concatenate([c['vectors'] for c in chunks]).astype(np.float32),
                        _stage_thumbnails(workspace, doc.video_id, chunks))
        video = VideoRecord(doc.video_id, path, meta['duration'], meta['fps'], meta['width'], meta['height'],
                            frame_count=len(frames), size=meta['size'], mtime_ns=meta['mtime_ns'])
        cues = [CueDoc(video_id=doc.video_id, **cue) for cue in meta.get('cues', [])]
        added = storage.add(video, frames, meta['shots'], cues, space)
        doc.status, doc.frame_count = (Status.INDEXED if added else Status.ALREADY_INDEXED), len(frames)
    except VcedError as e:
        doc.status, doc.error = Status.FAILED, str(e)
    return doc


def _stage_thumbnails(workspace: Path, video_id: str, chunks: list[dict]) -> list[str]:
    """Write a video's JPEGs into a staging folder under the workspace; the Storage moves them into place."""
    import tempfile

    parent = workspace / 'thumbnails' / '.staging'
    try:
        parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f'{os.getpid()}-{video_id[:16]}-', dir=parent))
        paths = []
        for chunk in chunks:
            blob, offset = chunk['thumbnails'].tobytes(), 0
            for size in chunk['thumbnail_sizes']:
                path = folder / f'{len(paths):06d}.jpg'
                path.write_bytes(blob[offset:offset + int(size)])
                paths.append(str(path))
                offset += int(size)
    except OSError as e:
        raise WorkspaceError(f'{parent}: cannot write the thumbnails ({e.strerror or e})') from e
    return paths
