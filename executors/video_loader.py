"""VideoLoader: a VideoDoc(uri) becomes metadata, shot cuts and keyframes at the encoder's resolution."""
import contextlib
import hashlib
import logging
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from executors.base import Executor, requests
from executors.documents import DocList, FrameDoc, Status, VideoDoc
from executors.errors import ConfigError, VideoError
from executors.media.ffmpeg_binary import FfmpegBinary, find_ffmpeg
from executors.media.frame_reader import Decoder, FrameReader, check_log_format, frame_at
from executors.media.cutting import printable
from executors.media.sampling import Sampling
from executors.media.thumbnails import redraw, save_thumbnail, staging_folder
from executors.media.probe import probe

log = logging.getLogger(__name__)

Progress = Callable[[VideoDoc, str, int, int], None]


@dataclass(frozen=True)
class Decoding:
    """How a video becomes keyframes: the loader's settings, resolved once."""

    sampling: Sampling
    size: int  # short side of a keyframe in pixels
    decoder: Decoder
    ffmpeg: FfmpegBinary


class VideoLoader(Executor):
    """Decodes each video once with ffmpeg into sampled keyframes, shot cuts and thumbnails.

    Args:
        workspace: folder whose thumbnails/ receives a JPEG per keyframe (staged; the storage moves them).
        strategy: uniform (`fps` keyframes a second), count (`count` evenly spaced), scene (a
            keyframe at each cut, and at least every `max_gap` seconds) or iframe (codec keyframes:
            fastest, but every frame of an all-intra codec such as MJPEG).
        fps, count, scene_threshold, max_gap: the strategies' settings (see Sampling).
        size: short side of the keyframes in pixels (CLIP's input resolution).
        threads: decoding threads; 0 lets ffmpeg use every core.
        skip_nonref: uniform/count may skip decoding B-frames that nothing references (faster;
            a keyframe may land a few frames later, its timestamp stays exact).
        ffmpeg: auto (the system's ffmpeg when it is 4.4 or later, else imageio-ffmpeg's), bundled,
            system, or the path of an ffmpeg. Resolved here, logged, and used for all of this
            loader's work (`self.ffmpeg`); its log format is checked before the first video.
        chunk_frames: 0 gives each video whole; N > 0 makes /index yield a video in pieces of at
            most N keyframes (see load_video), so memory does not grow with the video's length.
    """

    background = True

    def __init__(self, workspace: str = 'data/workspace', strategy: str = 'uniform', fps: float = 1.0,
                 count: int = 12, scene_threshold: float = 0.1, max_gap: float = 5.0, size: int = 224,
                 threads: int = 0, skip_nonref: bool = True, ffmpeg: str = 'auto', chunk_frames: int = 256):
        sampling = Sampling(strategy, float(fps), int(count), float(scene_threshold), float(max_gap))
        if not 16 <= size <= 4096:
            raise ConfigError(f'size must be between 16 and 4096 pixels, not {size}')
        if threads < 0:
            raise ConfigError(f'threads must be 0 (every core) or more, not {threads}')
        if chunk_frames < 0:
            raise ConfigError(f'chunk_frames must be 0 (whole videos) or more, not {chunk_frames}')
        self.ffmpeg = find_ffmpeg(str(ffmpeg))
        log.info('VideoLoader decodes with %s', self.ffmpeg)
        self.decoding = Decoding(sampling, int(size), Decoder(int(threads), bool(skip_nonref)), self.ffmpeg)
        self.chunk_frames = int(chunk_frames)
        self.workspace = Path(workspace)

    @requests(on='/index')
    def index(self, docs: DocList[VideoDoc], parameters: dict) -> DocList[VideoDoc] | Iterator[DocList[VideoDoc]]:
        """Each video with its keyframes; with chunk_frames, an iterator of one-piece DocLists instead (videos
        decided before decoding travel together)."""
        pieces = self._pieces(docs, parameters, self.workspace, self.chunk_frames)
        return pieces if self.chunk_frames else _whole(docs, pieces)

    @requests(on='/encode')
    def encode(self, docs: DocList[VideoDoc], parameters: dict) -> DocList[VideoDoc]:
        """As /index but without thumbnails: /encode embeds videos that are not added to the workspace."""
        return _whole(docs, self._pieces(docs, parameters, None, 0))

    @requests(on='/mend')
    def mend(self, docs: DocList[VideoDoc]) -> DocList[VideoDoc]:
        """Draw again, from each video's file, the thumbnails of the keyframes given (time, thumbnail path)."""
        for doc in docs:
            try:
                redraw_thumbnails(doc, self.decoding)
            except (VideoError, OSError) as e:
                log.warning('%s: its missing thumbnails cannot be drawn again: %s', printable(doc.uri), e)
        return docs

    def _pieces(self, docs: DocList[VideoDoc], parameters: dict, workspace: Path | None,
                chunk_frames: int) -> Iterator[DocList[VideoDoc]]:
        check_log_format(self.ffmpeg)  # once per binary, before the first video (not at start-up: search needs no ffmpeg)
        progress = parameters.get('progress')
        indexed = parameters.get('indexed_ids') or set()
        decided = DocList[VideoDoc]()  # before decoding (already indexed, or unreadable): handed on together
        for doc in docs:
            if doc.status != Status.PENDING:
                decided.append(doc)
                continue
            if decided:
                yield decided
                decided = DocList[VideoDoc]()
            try:
                for piece in load_video(doc, self.decoding, workspace, indexed, progress, chunk_frames):
                    yield DocList[VideoDoc]([piece])
            except VideoError as e:
                doc.status, doc.error, doc.frames, doc.shots = Status.FAILED, str(e), DocList[FrameDoc](), []
                doc.last_chunk = True
                yield DocList[VideoDoc]([doc])
        if decided:
            yield decided


def _whole(docs: DocList[VideoDoc], pieces: Iterator[DocList[VideoDoc]]) -> DocList[VideoDoc]:
    """Run `pieces` (each video in one piece: the doc itself, filled in) and return `docs`."""
    for _ in pieces:
        pass
    return docs


def load_video(doc: VideoDoc, decoding: Decoding, workspace: Path | None, indexed: set[str] = frozenset(),
               progress: Progress | None = None, chunk_frames: int = 0) -> Iterator[VideoDoc]:
    """Decode `doc` (uri made absolute) into its id, metadata, shots and keyframes; raise VideoError if it cannot.

    Yields `doc` itself, filled in, when `chunk_frames` is 0. Else yields pieces as they decode:
    VideoDocs with the same id, uri, video_id and metadata and the next <= `chunk_frames`
    keyframes (at least one), `last_chunk` False on all but the last, which is `doc` itself and
    also carries the shots. A VideoError can come after some pieces: the video failed as a whole.
    The file is hashed unless `doc.video_id` is already set; a video whose id is in `indexed` is
    marked 'already indexed' without decoding. Thumbnails go to a staging folder under
    `workspace` (executors.media.thumbnails; none when `workspace` is None), removed if decoding fails.
    """
    path = Path(os.path.abspath(os.path.expanduser(doc.uri)))
    doc.uri = str(path)  # the file system's name: bytes that are not UTF-8 stay surrogates (os.fsdecode)
    doc.video_id = doc.video_id or file_sha256(path)
    if doc.video_id in indexed:
        doc.status = Status.ALREADY_INDEXED
        yield doc
        return
    info = probe(path, decoding.ffmpeg)
    doc.duration, doc.fps, doc.width, doc.height = info.duration, info.fps, info.width, info.height
    expected = decoding.sampling.expected_frames(info.duration)
    frames, count = DocList[FrameDoc](), 0
    staged = staged_folder(workspace, doc.video_id) if workspace else contextlib.nullcontext(None)
    with staged as staging:
        with FrameReader(path, info, decoding.sampling, decoding.size, decoding.decoder, decoding.ffmpeg) as reader:
            for timestamp, rgb in reader:
                if chunk_frames and len(frames) == chunk_frames:  # a full piece goes once the next frame exists
                    yield _piece(doc, frames)
                    frames = DocList[FrameDoc]()
                name = f'{count:06d}.jpg'
                if staging:
                    save_thumbnail(rgb, staging / name)
                frames.append(FrameDoc(video_id=doc.video_id, timestamp=timestamp, tensor=rgb,
                                       thumbnail=str(staging / name) if staging else ''))
                count += 1
                if progress:
                    progress(doc, 'decode', count, max(expected, count))
    if progress:
        progress(doc, 'decode', count, count)
    doc.frames, doc.shots, doc.last_chunk = frames, reader.shots, True
    yield doc


def redraw_thumbnails(doc: VideoDoc, decoding: Decoding) -> None:
    """Save the thumbnail of each of `doc`'s keyframes again, decoded from its file at the keyframe's time."""
    path = Path(doc.uri)
    info = probe(path, decoding.ffmpeg)
    for frame in doc.frames:
        redraw(frame.thumbnail, frame_at(path, info, frame.timestamp, decoding.size, decoding.ffmpeg))
    log.info('%s: %d thumbnail(s) drawn again', printable(path.name), len(doc.frames))


def _piece(doc: VideoDoc, frames: DocList[FrameDoc]) -> VideoDoc:
    """A not-last piece of `doc`: its identity and metadata with these frames (the shots come with the last)."""
    return doc.model_copy(update={'frames': frames, 'shots': [], 'last_chunk': False})


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes; VideoError naming the file when it cannot be read or is empty."""
    name = printable(path.name)
    try:
        status = path.stat()
        if stat.S_ISDIR(status.st_mode):
            os.scandir(path).close()  # an unreadable folder says so (PermissionError) rather than what it is
            raise VideoError(f'{name}: is a folder, not a video file')
        if not stat.S_ISREG(status.st_mode):
            raise VideoError(f'{name}: not a regular file')
        if status.st_size == 0:
            raise VideoError(f'{name}: the file is empty (0 bytes)')
        with open(path, 'rb') as f:
            return hashlib.file_digest(f, 'sha256').hexdigest()
    except FileNotFoundError as e:
        raise VideoError(f'{name}: no such file ({printable(path)})') from e
    except OSError as e:
        raise VideoError(f'{name}: cannot read it ({e.strerror})') from e


@contextlib.contextmanager
def staged_folder(workspace: Path, video_id: str) -> Iterator[Path]:
    """A staging folder for the video's thumbnails, removed if decoding fails; the storage moves it into place."""
    staging = staging_folder(workspace, video_id)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
