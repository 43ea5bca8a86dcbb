"""The documents that flow between executors (DocArray v2). Every time is in seconds."""
import sys
from enum import Enum
from typing import Iterable, Iterator, Optional

from pydantic import Field


def _import_docarray():
    """docarray imports torch (1-3 s) merely to learn whether it is installed; our documents hold numpy
    arrays only, so it is imported with torch hidden when torch is not loaded yet (`list`, `delete`,
    `transcript` then start without it). torch itself stays importable afterwards."""
    hidden = 'torch' not in sys.modules
    if hidden:
        sys.modules['torch'] = None  # `import torch` raises ImportError, which docarray takes as "not installed"
    try:
        import docarray
        from docarray.typing import NdArray
    finally:
        if hidden:
            del sys.modules['torch']
    return docarray.BaseDoc, docarray.DocList, NdArray


BaseDoc, DocList, NdArray = _import_docarray()


class Status(str, Enum):
    """The outcome of indexing one video (a str, so it prints and compares as its value)."""

    PENDING = ''
    INDEXED = 'indexed'
    ALREADY_INDEXED = 'already indexed'
    FAILED = 'failed'

    def __str__(self) -> str:
        return self.value


class FrameDoc(BaseDoc):
    """One sampled keyframe of a video."""

    video_id: str = ''
    timestamp: float = 0.0  # seconds, from the decoder's presentation time
    tensor: Optional[NdArray] = None  # RGB uint8, H x W x 3, short side = the model's input size
    thumbnail: str = ''  # path of a small JPEG under the workspace
    embedding: Optional[NdArray] = None  # L2-normalised float32


SCREEN = 'screen'  # CueDoc.source of on-screen text (ScreenTextReader); SegmentDoc.source of its matches


class CueDoc(BaseDoc):
    """A piece of timed text of a video: a subtitle, a recognised utterance or text shown on screen."""

    video_id: str = ''
    start: float = 0.0
    end: float = 0.0
    text: str = ''
    source: str = ''  # 'srt' | 'vtt' | 'stream' (a subtitle stream in the file) | 'asr' (speech recognition) | 'screen'
    language: str = ''  # ISO 639-1 code when known ('en', 'zh', ...), else ''
    embedding: Optional[NdArray] = None  # the text tower's embedding of `text` (search by meaning), when made


class VideoDoc(BaseDoc):
    """A video file; `frames` (and `cues`) are filled on /index."""

    uri: str = ''
    video_id: str = ''  # sha256 of the file's bytes: the same file is indexed once
    duration: float = 0.0
    fps: float = 0.0
    width: int = 0
    height: int = 0
    shots: list[float] = []  # scene-cut times
    frames: DocList[FrameDoc] = Field(default_factory=DocList[FrameDoc])  # a factory: pydantic deep-copies a plain default per doc (0.15 ms)
    cues: DocList[CueDoc] = Field(default_factory=DocList[CueDoc])  # subtitles or recognised speech, in time order
    frame_count: int = 0  # keyframes stored for this video (filled by /list)
    cue_count: int = 0  # subtitle and speech cues stored for this video (filled by /list)
    screen_count: int = 0  # on-screen text cues stored for this video (filled by /list)
    added: str = ''  # ISO time the video was indexed (filled by /list)
    size: int = 0  # the file's size in bytes when indexed (filled by /list)
    mtime_ns: int = 0  # the file's modification time when indexed (filled by /list)
    status: Status = Status.PENDING  # outcome of /index
    space: str = ''  # identity of the image tower that embedded the frames (executors.models.clip_model.image_space_id)
    error: str = ''  # why this video failed, '' when it did not
    last_chunk: bool = True  # /index in pieces (VideoLoader chunk_frames): False on every piece of a video but its last


class SegmentDoc(BaseDoc):
    """A matching moment of a video: play `uri` from `start` to `end`."""

    video_id: str = ''
    uri: str = ''
    start: float = 0.0
    end: float = 0.0
    timestamp: float = 0.0  # the best-matching keyframe (or the matched cue's start)
    score: float = 0.0  # the ranking score: a keyframe's cosine, a video's mean cosine (by video), or the fused score
    thumbnail: str = ''
    source: str = 'visual'  # the list that found it: 'visual' (keyframes) | 'speech' (subtitles or speech) | 'screen' (on-screen text); 'both' when several did
    sources: list[str] = Field(default_factory=list)  # every list that found it (executors.retrieval.fusion)
    text: Optional[str] = None  # the matched cue text, None for a visual-only match


class QueryDoc(BaseDoc):
    """A search by `text`, by `image` (RGB uint8, H x W x 3) or by a clip's `frames` (with embeddings)."""

    text: str = ''
    image: Optional[NdArray] = None
    embedding: Optional[NdArray] = None
    language: str = ''  # set by the TextEncoder when it can tell ('en', 'zh', ...)
    space: str = ''  # identity of the image space the embedding lives in (executors.models.clip_model.image_space_id)
    frames: DocList[FrameDoc] = Field(default_factory=DocList[FrameDoc])  # a clip's keyframes, to find where it comes from
    duration: float = 0.0  # the clip's, seconds
    matches: DocList[SegmentDoc] = Field(default_factory=DocList[SegmentDoc])


class DuplicateDoc(BaseDoc):
    """Stored videos that share footage: each video's shared range as a segment; `part` is 'footage', or
    'intro' / 'outro' when only those are shared."""

    videos: DocList[SegmentDoc] = Field(default_factory=DocList[SegmentDoc])
    score: float = 0.0  # the mean cosine of the aligned keyframes
    part: str = 'footage'


def whole_videos(pieces: Iterable[DocList[VideoDoc]]) -> Iterator[VideoDoc]:
    """Each video of `pieces` (what /index or /encode hands on, a video's pieces in order) once its last piece
    came: that piece with the keyframes of all its pieces."""
    frames: dict[str, list[FrameDoc]] = {}
    for docs in pieces:
        for doc in docs:
            frames.setdefault(doc.uri, []).extend(doc.frames)
            if doc.last_chunk:
                doc.frames = DocList[FrameDoc](frames.pop(doc.uri))
                yield doc
