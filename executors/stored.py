"""Stored videos as documents: those a document names (by id, id prefix or path), what they hold."""
import os

from executors.documents import DocList, FrameDoc, VideoDoc
from executors.errors import WorkspaceError
from executors.storage.interface import Storage, VideoRecord


def named_videos(storage: Storage, doc: VideoDoc) -> list[VideoRecord]:
    """The stored videos `doc` names; WorkspaceError when none (or an ambiguous id prefix)."""
    if doc.video_id:
        if len(doc.video_id) < 6 or any(c not in '0123456789abcdef' for c in doc.video_id.lower()):
            raise WorkspaceError(f"'{doc.video_id}' is not a video id (6 to 64 hex characters)")
        found = storage.find(video_id=doc.video_id)
        if len(found) > 1:
            raise WorkspaceError(f"video id '{doc.video_id}' is ambiguous: {len(found)} videos start with it")
    elif doc.uri:
        found = storage.find(path=doc.uri)
    else:
        raise WorkspaceError('a video id or a path is needed')
    if not found:
        raise WorkspaceError(f"no indexed video matches '{doc.video_id or doc.uri}' in {storage.location}")
    return found


def as_document(video: VideoRecord, screen_count: int = 0) -> VideoDoc:
    """A stored video as a document; `cue_count` counts subtitles and speech, `screen_count` on-screen text."""
    return VideoDoc(uri=video.path, video_id=video.id, duration=video.duration, fps=video.fps, width=video.width,
                    height=video.height, frame_count=video.frame_count, cue_count=max(video.cue_count - screen_count, 0),
                    screen_count=screen_count, added=video.added, size=video.size, mtime_ns=video.mtime_ns)


def missing_thumbnails(storage: Storage, video: VideoRecord) -> VideoDoc | None:
    """The video's file and its keyframes (time, thumbnail) whose thumbnail file is gone; None when all are there."""
    frames = storage.frames(video.id)
    missing = [FrameDoc(video_id=video.id, timestamp=float(t), thumbnail=thumbnail)
               for t, thumbnail in zip(frames.timestamps, frames.thumbnails) if thumbnail and not os.path.exists(thumbnail)]
    return VideoDoc(uri=video.path, video_id=video.id, frames=DocList[FrameDoc](missing)) if missing else None
