"""VideoLoader: a VideoDoc(uri) becomes metadata, shot cuts and keyframes at the encoder's resolution."""
import contextlib
import hashlib
import os
import shutil
import stat
from pathlib import Path
from typing import Callable, Iterator

from executors.base import Executor, requests
from executors.documents import DocList, FrameDoc, Status, VideoDoc
from executors.errors import ConfigError, VideoError
from executors.frame_reader import Decoder, FrameReader
from executors.sampling import Sampling
from executors.thumbnails import save_thumbnail, staging_folder
from executors.video_probe import probe

Progress = Callable[[VideoDoc, str, int, int], None]


class VideoLoader(Executor):
    """Decodes each video once with ffmpeg into sampled keyframes, shot cuts and thumbnails.

    Args:
        workspace: folder whose thumbnails/<video_id>/ receives a JPEG per keyframe.
        strategy: uniform (`fps` keyframes a second), count (`count` evenly spaced), scene (a
            keyframe at each cut, and at least every `max_gap` seconds) or iframe (codec keyframes:
            fastest, but every frame of an all-intra codec such as MJPEG).
        fps, count, scene_threshold, max_gap: the strategies' settings (see Sampling).
        size: short side of the keyframes in pixels (CLIP's input resolution).
        threads: decoding threads; 0 lets ffmpeg use every core.
        skip_nonref: uniform/count may skip decoding B-frames that nothing references (faster;
            a keyframe may land a few frames later, its timestamp stays exact).
    """

    def __init__(self, workspace: str = 'data/workspace', strategy: str = 'uniform', fps: float = 1.0,
                 count: int = 12, scene_threshold: float = 0.1, max_gap: float = 5.0, size: int = 224,
                 threads: int = 0, skip_nonref: bool = True):
        self.sampling = Sampling(strategy, float(fps), int(count), float(scene_threshold), float(max_gap))
        if not 16 <= size <= 4096:
            raise ConfigError(f'size must be between 16 and 4096 pixels, not {size}')
        if threads < 0:
            raise ConfigError(f'threads must be 0 (every core) or more, not {threads}')
        self.size = int(size)
        self.decoder = Decoder(int(threads), bool(skip_nonref))
        self.workspace = Path(workspace)

    @requests(on='/index')
    def index(self, docs: DocList[VideoDoc], parameters: dict) -> DocList[VideoDoc]:
        return self._load(docs, parameters, self.workspace)

    @requests(on='/encode')
    def encode(self, docs: DocList[VideoDoc], parameters: dict) -> DocList[VideoDoc]:
        """As /index but without thumbnails: /encode embeds videos that are not added to the workspace."""
        return self._load(docs, parameters, thumbnails=None)

    def _load(self, docs: DocList[VideoDoc], parameters: dict, thumbnails: Path | None) -> DocList[VideoDoc]:
        progress = parameters.get('progress')
        indexed = parameters.get('indexed_ids') or set()
        for doc in docs:
            if doc.status != Status.PENDING:
                continue  # decided before decoding (already indexed, or unreadable)
            try:
                load_video(doc, self.sampling, self.size, self.decoder, thumbnails, indexed, progress)
            except VideoError as e:
                doc.status, doc.error, doc.frames, doc.shots = Status.FAILED, str(e), DocList[FrameDoc](), []
        return docs


def load_video(doc: VideoDoc, sampling: Sampling, size: int, decoder: Decoder, workspace: Path | None,
               indexed: set[str] = frozenset(), progress: Progress | None = None) -> None:
    """Fill `doc` (uri made absolute) with its id, metadata, shots and keyframes, or raise VideoError.

    The file is hashed unless `doc.video_id` is already set; a video whose id is in `indexed` is
    marked 'already indexed' without decoding. Thumbnails go to a staging folder under
    `workspace` (executors.thumbnails; none when `workspace` is None), removed if decoding fails.
    """
    path = Path(os.path.abspath(os.path.expanduser(doc.uri)))
    doc.uri = str(path)
    doc.video_id = doc.video_id or file_sha256(path)
    if doc.video_id in indexed:
        doc.status = Status.ALREADY_INDEXED
        return
    info = probe(path)
    doc.duration, doc.fps, doc.width, doc.height = info.duration, info.fps, info.width, info.height
    expected = sampling.expected_frames(info.duration)
    frames = DocList[FrameDoc]()
    staged = staged_folder(workspace, doc.video_id) if workspace else contextlib.nullcontext(None)
    with staged as staging:
        with FrameReader(path, info, sampling, size, decoder) as reader:
            for timestamp, rgb in reader:
                name = f'{len(frames):06d}.jpg'
                if staging:
                    save_thumbnail(rgb, staging / name)
                frames.append(FrameDoc(video_id=doc.video_id, timestamp=timestamp, tensor=rgb,
                                       thumbnail=str(staging / name) if staging else ''))
                if progress:
                    progress(doc, 'decode', len(frames), max(expected, len(frames)))
    if progress:
        progress(doc, 'decode', len(frames), len(frames))
    doc.frames, doc.shots = frames, reader.shots


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes; VideoError naming the file when it cannot be read or is empty."""
    try:
        status = path.stat()
        if stat.S_ISDIR(status.st_mode):
            raise VideoError(f'{path.name}: is a folder, not a video file')
        if not stat.S_ISREG(status.st_mode):
            raise VideoError(f'{path.name}: not a regular file')
        if status.st_size == 0:
            raise VideoError(f'{path.name}: the file is empty (0 bytes)')
        with open(path, 'rb') as f:
            return hashlib.file_digest(f, 'sha256').hexdigest()
    except FileNotFoundError as e:
        raise VideoError(f'{path.name}: no such file ({path})') from e
    except OSError as e:
        raise VideoError(f'{path.name}: cannot read it ({e.strerror})') from e


@contextlib.contextmanager
def staged_folder(workspace: Path, video_id: str) -> Iterator[Path]:
    """A staging folder for the video's thumbnails, removed if decoding fails; the storage moves it into place."""
    staging = staging_folder(workspace, video_id)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
