"""The Milvus backend's three collections (fields, indexes), the connection, and rows to and from records
(see executors/storage/milvus/milvus_storage.py)."""
import base64
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from executors.errors import WorkspaceError
from executors.storage.interface import ImageSpace, VideoRecord


def create_collections(client, names: dict[str, str], dim: int, hnsw: dict, analyzer: dict) -> None:
    """Create the videos, frames and cues collections that do not exist yet (Strong consistency: a
    reader sees every write acknowledged before its request)."""
    from pymilvus import DataType

    def schema(*fields) -> tuple:
        result = client.create_schema(auto_id=False, enable_dynamic_field=False)
        result.add_field('id', DataType.VARCHAR, is_primary=True, max_length=96)
        for name, kind, options in fields:
            result.add_field(name, kind, **options)
        return result, client.prepare_index_params()

    text = lambda length: (DataType.VARCHAR, {'max_length': length})  # noqa: E731
    videos, videos_index = schema(
        ('path', *text(8192)), ('duration', DataType.DOUBLE, {}), ('fps', DataType.DOUBLE, {}),
        ('width', DataType.INT64, {}), ('height', DataType.INT64, {}), ('added', *text(40)),
        ('frame_count', DataType.INT64, {}), ('cue_count', DataType.INT64, {}), ('size', DataType.INT64, {}),
        ('mtime_ns', DataType.INT64, {}),
        ('seq', DataType.INT64, {}),  # time.time_ns() when written: the order videos were added
        ('state', *text(16)),  # 'pending' while its frames and cues are written, then 'stored'
        ('shots', *text(65535)),  # base64 little-endian float64 seconds
        ('space', *text(128)), ('space_name', *text(512)),  # the image tower: checkpoint identity, model name
        ('mean', DataType.FLOAT_VECTOR, {'dim': dim}))  # mean keyframe vector (CLIP4Clip's meanP)
    videos_index.add_index(field_name='mean', index_type='FLAT', metric_type='IP')

    frames, frames_index = schema(
        ('video_id', *text(64)), ('frame', DataType.INT64, {}), ('timestamp', DataType.DOUBLE, {}),
        ('thumbnail', *text(1024)),  # relative to <workspace>/thumbnails/
        ('written', DataType.INT64, {}),  # unix seconds
        ('vector', DataType.FLOAT_VECTOR, {'dim': dim}))
    frames_index.add_index(field_name='vector', index_type='HNSW', metric_type='IP', params=hnsw)
    frames_index.add_index(field_name='video_id', index_type='INVERTED')

    cues, cues_index = schema(
        ('video_id', *text(64)), ('cue', DataType.INT64, {}), ('start', DataType.DOUBLE, {}),
        ('end', DataType.DOUBLE, {}), ('text', *text(32768)), ('source', *text(16)), ('language', *text(16)),
        ('written', DataType.INT64, {}),
        ('keys', DataType.VARCHAR, {'max_length': 65535, 'enable_analyzer': True, 'enable_match': True,
                                    'analyzer_params': analyzer}),  # executors/retrieval/cue_text.py: keys
        ('embedded', DataType.BOOL, {}),  # whether `vector` holds the text's embedding (else zeros)
        ('vector', DataType.FLOAT_VECTOR, {'dim': dim}))  # the text tower's embedding, in the keyframes' space
    cues_index.add_index(field_name='vector', index_type='HNSW', metric_type='IP', params=hnsw)
    cues_index.add_index(field_name='video_id', index_type='INVERTED')

    for kind, (fields, index) in (('cues', (cues, cues_index)), ('frames', (frames, frames_index)),
                                  ('videos', (videos, videos_index))):  # videos last: readers wait for it
        if not client.has_collection(names[kind]):
            client.create_collection(names[kind], schema=fields, index_params=index, consistency_level='Strong')


VIDEO_FIELDS = ['path', 'duration', 'fps', 'width', 'height', 'added', 'frame_count', 'cue_count', 'size',
                'mtime_ns', 'seq']


def connect(uri: str, token: str, timeout: float):
    """A MilvusClient for `uri`; a one-line WorkspaceError when it cannot be reached or opened."""
    from pymilvus import MilvusClient

    from executors.storage.milvus.lite_logging import quiet_milvus_lite

    local = '://' not in uri
    try:
        if local:
            quiet_milvus_lite()
            Path(uri).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
            return MilvusClient(str(Path(uri).expanduser().resolve()))
        return MilvusClient(uri=uri, token=token, timeout=timeout)
    except Exception as e:  # pymilvus and milvus-lite raise many types for an unreachable or locked store
        why = reason(e)
        if local and locked(Path(uri).expanduser().resolve() / 'LOCK'):
            raise WorkspaceError(f'{uri}: Milvus Lite is open in another process (one at a time): serve it with '
                                 f'`milvus-lite server --data-dir {uri}` and use uri: http://127.0.0.1:19530') from e
        raise WorkspaceError(f'{uri}: cannot open Milvus ({why})') from e


def locked(lock: Path) -> bool:
    """Whether another process holds Milvus Lite's lock file (asked only after opening failed)."""
    import fcntl

    try:
        with open(lock, 'a') as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(handle, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def reason(error: Exception) -> str:
    return (getattr(error, 'message', '') or str(error)).strip().splitlines()[0][:300]


def video_row(video: VideoRecord, frame_count: int, cue_count: int, shots: list[float], mean: np.ndarray,
               space: ImageSpace) -> dict:
    return {'id': video.id, 'path': text_path(video.path), 'duration': float(video.duration), 'fps': float(video.fps),
            'width': int(video.width), 'height': int(video.height), 'added': video.added or datetime.now(timezone.utc).isoformat(timespec='seconds'),
            'frame_count': frame_count, 'cue_count': cue_count, 'size': int(video.size), 'mtime_ns': int(video.mtime_ns),
            'seq': time.time_ns(), 'shots': pack(shots), 'space': space.identity, 'space_name': space.name[:512],
            'mean': mean.astype(np.float32).tolist()}


def record(row: dict) -> VideoRecord:
    return VideoRecord(row['id'], path_of(row['path']), row['duration'], row['fps'], row['width'], row['height'],
                       row['added'], row['frame_count'], row['cue_count'], row['size'], row['mtime_ns'])


def pack(times: list[float]) -> str:
    """Shot cuts as base64 float64 (a VARCHAR holds 8191 of them; more are thinned evenly)."""
    times = np.asarray(sorted(times), dtype='<f8')
    if len(times) > 8191:
        times = times[np.linspace(0, len(times) - 1, 8191).astype(int)]
    return base64.b64encode(times.tobytes()).decode('ascii')


def unpack(text: str) -> list[float]:
    return np.frombuffer(base64.b64decode(text), dtype='<f8').tolist() if text else []


def text_path(path: str) -> str:
    """A path as a VARCHAR holds it: itself, or 'b64:' and its raw bytes when it is not valid UTF-8."""
    try:
        path.encode('utf-8')
        return path
    except UnicodeEncodeError:
        return 'b64:' + base64.b64encode(os.fsencode(path)).decode('ascii')


def path_of(text: str) -> str:
    return os.fsdecode(base64.b64decode(text[4:])) if text.startswith('b64:') else text
