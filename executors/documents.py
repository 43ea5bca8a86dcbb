"""The documents that flow between executors (DocArray v2). Every time is in seconds."""
from typing import Optional

from docarray import BaseDoc, DocList
from docarray.typing import NdArray


class FrameDoc(BaseDoc):
    """One sampled keyframe of a video."""

    video_id: str = ''
    timestamp: float = 0.0  # seconds, from the decoder's presentation time
    tensor: Optional[NdArray] = None  # RGB uint8, H x W x 3, short side = the model's input size
    thumbnail: str = ''  # path of a small JPEG under the workspace
    embedding: Optional[NdArray] = None  # L2-normalised float32


class VideoDoc(BaseDoc):
    """A video file; `frames` is filled by the VideoLoader on /index."""

    uri: str = ''
    video_id: str = ''  # sha256 of the file's bytes: the same file is indexed once
    duration: float = 0.0
    fps: float = 0.0
    width: int = 0
    height: int = 0
    shots: list[float] = []  # scene-cut times
    frames: DocList[FrameDoc] = DocList[FrameDoc]()
    frame_count: int = 0  # keyframes stored for this video (filled by /list)
    added: str = ''  # ISO time the video was indexed (filled by /list)
    status: str = ''  # outcome of /index: 'indexed', 'already indexed' or 'failed'
    error: str = ''  # why this video failed, '' when it did not


class SegmentDoc(BaseDoc):
    """A matching moment of a video: play `uri` from `start` to `end`."""

    video_id: str = ''
    uri: str = ''
    start: float = 0.0
    end: float = 0.0
    timestamp: float = 0.0  # the best-matching keyframe
    score: float = 0.0  # cosine similarity of that keyframe to the query
    thumbnail: str = ''


class QueryDoc(BaseDoc):
    """A search by `text` or by `image` (RGB uint8, H x W x 3)."""

    text: str = ''
    image: Optional[NdArray] = None
    embedding: Optional[NdArray] = None
    matches: DocList[SegmentDoc] = DocList[SegmentDoc]()
