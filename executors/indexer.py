"""The Indexer: stores indexed videos in the workspace and answers /search, /list and /delete."""
import functools
import threading

import numpy as np

from executors.base import Executor, requests
from executors.catalog import VideoRow
from executors.documents import DocList, QueryDoc, SegmentDoc, VideoDoc
from executors.errors import QueryError, WorkspaceError
from executors.segments import Segment, group_segments
from executors.workspace import Workspace


def _one_at_a_time(handler):
    """Run the handler under the Indexer's lock: SQLite's connection and hnswlib's graph are not
    safe to use from two threads at once. Decoding and encoding, the slow parts, run outside it."""
    @functools.wraps(handler)
    def locked(self, *args, **kwargs):
        with self._busy:
            return handler(self, *args, **kwargs)

    return locked


class Indexer(Executor):
    """Keyframe embeddings on disk, an HNSW graph over them, SQLite for videos, frames and shots.

    Args:
        workspace: folder of the index, metadata and thumbnails (flow.yml's top-level `with:`).
        M: HNSW links per node. More links: better recall and more memory (~8*M bytes per keyframe
            on top of the 4*dim of the vector); 16 is hnswlib's usual choice.
        ef_construction: candidate list size while inserting. Higher builds a better graph, more
            slowly; it is fixed once a vector is inserted.
        ef_search: candidate list size while searching (raised to the number of candidates when
            lower). Higher: better recall, slower queries.
        candidates: nearest keyframes fetched from the graph per query; every frame of the videos
            they belong to is then scored exactly.
        margin: a segment grows over neighbouring keyframes scoring within this much (cosine) of
            its peak; CLIP's scores of one shot differ by about 0.01 to 0.03.
        max_segment: the longest segment, in seconds.
        snap: a segment's start and end move outward to a shot cut this close, in seconds.
    """

    def __init__(self, workspace: str = 'data/workspace', M: int = 16, ef_construction: int = 100,
                 ef_search: int = 256, candidates: int = 64, margin: float = 0.02, max_segment: float = 30.0,
                 snap: float = 2.0):
        for name, value in (('M', M), ('ef_construction', ef_construction), ('ef_search', ef_search),
                            ('candidates', candidates)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'{name} must be a positive integer, not {value!r}')
        if margin < 0 or max_segment <= 0 or snap < 0:
            raise ValueError('margin and snap must be >= 0 and max_segment > 0 (seconds)')
        self.workspace = Workspace(workspace, M=M, ef_construction=ef_construction, ef_search=ef_search)
        self.candidates = candidates
        self.grouping = {'margin': margin, 'max_segment': max_segment, 'snap': snap}
        self._busy = threading.Lock()  # the page's sessions share one Indexer: one request at a time

    @requests(on='/index')
    @_one_at_a_time
    def index(self, docs: DocList[VideoDoc], parameters: dict) -> DocList[VideoDoc]:
        """Store each loaded and encoded video; set its status ('indexed' or 'already indexed')."""
        todo = [doc for doc in docs if doc.status == '']
        if todo:
            self.workspace.start_writing()  # a locked workspace fails the request, not each video
        for doc in todo:
            try:
                doc.status = self.workspace.add(doc)
            except WorkspaceError as e:
                doc.status, doc.error = 'failed', str(e)
        return docs

    @requests(on='/search')
    @_one_at_a_time
    def search(self, docs: DocList[QueryDoc], parameters: dict) -> DocList[QueryDoc]:
        """Fill each query's matches: the best `top` segments, or with by='video' the best videos."""
        top, by = int(parameters.get('top', 10)), parameters.get('by', 'segment')
        if by not in ('segment', 'video'):
            raise QueryError(f"by must be 'segment' or 'video', not {by!r}")
        if top < 1:
            raise QueryError(f'top must be at least 1, not {top}')
        for doc in docs:
            if doc.embedding is None:
                raise QueryError('the query has no embedding: give a text or an image')
            query = np.asarray(doc.embedding, dtype=np.float32).ravel()
            query = query / max(float(np.linalg.norm(query)), 1e-12)
            find = search_videos if by == 'video' else search_segments
            doc.matches = DocList[SegmentDoc](find(self.workspace, query, top=top, candidates=self.candidates,
                                                   **self.grouping))
        return docs

    @requests(on='/list')
    @_one_at_a_time
    def list_videos(self, docs: DocList[VideoDoc]) -> DocList[VideoDoc]:
        """Every stored video with its frame count and the time it was added."""
        self.workspace.refresh()
        return DocList[VideoDoc]([_video_doc(v) for v in self.workspace.videos.values()])

    @requests(on='/delete')
    @_one_at_a_time
    def delete(self, docs: DocList[VideoDoc]) -> DocList[VideoDoc]:
        """Delete each video named by id, id prefix (6+ hex characters) or path; return what was deleted."""
        self.workspace.refresh()
        deleted = DocList[VideoDoc]()
        for doc in docs:
            for video in _matching(self.workspace, doc):
                self.workspace.delete(video)
                deleted.append(_video_doc(video))
        return deleted

    def close(self) -> None:
        """Save the HNSW graph (if this process changed it) and release the workspace."""
        with self._busy:
            self.workspace.close()


def search_segments(workspace: Workspace, query: np.ndarray, *, top: int, candidates: int, margin: float,
                    max_segment: float, snap: float) -> list[SegmentDoc]:
    """ANN candidates -> their videos -> exact scores of every frame -> segments, best `top` first.

    The `top` best segments lie in at most `top` videos, so only the first `top` videos to appear
    among the candidates (in ANN order) are scored exactly.
    """
    vectors = workspace.graph()
    if vectors is None:
        return []
    labels, _ = vectors.nearest(query, max(candidates, top))
    return segments_of_candidates(workspace, labels, query, top=top, margin=margin, max_segment=max_segment,
                                  snap=snap)


def segments_of_candidates(workspace: Workspace, labels: np.ndarray, query: np.ndarray, *, top: int, margin: float,
                           max_segment: float, snap: float) -> list[SegmentDoc]:
    """The best `top` segments of the first `top` videos owning the keyframes `labels` (nearest first)."""
    found = []
    for video in workspace.owners(labels)[:top]:
        found += [(video, s) for s in video_segments(workspace, video, query, top, margin=margin,
                                                     max_segment=max_segment, snap=snap)]
    found.sort(key=lambda pair: -pair[1].score)
    return [_segment_doc(workspace, video, s) for video, s in found[:top]]


def search_videos(workspace: Workspace, query: np.ndarray, *, top: int, candidates: int, margin: float,
                  max_segment: float, snap: float) -> list[SegmentDoc]:
    """Videos ranked by the cosine of their mean frame embedding (CLIP4Clip's meanP), each with its
    best segment; `score` is the video's score."""
    workspace.refresh()
    ids, means = workspace.means()
    if not ids:
        return []
    scores = means @ query
    matches = []
    for i in np.argsort(-scores, kind='stable')[:top]:
        video = workspace.videos[ids[i]]
        best = video_segments(workspace, video, query, 1, margin=margin, max_segment=max_segment, snap=snap)[0]
        matches.append(_segment_doc(workspace, video, best, score=float(scores[i])))
    return matches


def video_segments(workspace: Workspace, video: VideoRow, query: np.ndarray, limit: int, *, margin: float,
                   max_segment: float, snap: float) -> list[Segment]:
    """The best `limit` segments of one video, scored exactly over all its keyframes."""
    scores = workspace.vectors.read(video.first_label, video.frame_count) @ query
    return group_segments(scores, workspace.timestamps(video.id), video.duration, margin=margin,
                          max_segment=max_segment, limit=limit, shots=workspace.shots(video.id), snap=snap)


def _segment_doc(workspace: Workspace, video: VideoRow, segment: Segment, score: float | None = None) -> SegmentDoc:
    return SegmentDoc(video_id=video.id, uri=video.path, start=segment.start, end=segment.end,
                      timestamp=float(workspace.timestamps(video.id)[segment.peak]),
                      score=segment.score if score is None else score,
                      thumbnail=workspace.thumbnail(video.first_label + segment.peak))


def _matching(workspace: Workspace, doc: VideoDoc) -> list[VideoRow]:
    """The stored videos `doc` names; WorkspaceError when none (or an ambiguous id prefix)."""
    if doc.video_id:
        if len(doc.video_id) < 6 or any(c not in '0123456789abcdef' for c in doc.video_id.lower()):
            raise WorkspaceError(f"'{doc.video_id}' is not a video id (6 to 64 hex characters)")
        found = workspace.find(video_id=doc.video_id)
        if len(found) > 1:
            raise WorkspaceError(f"video id '{doc.video_id}' is ambiguous: {len(found)} videos start with it")
    elif doc.uri:
        found = workspace.find(uri=doc.uri)
    else:
        raise WorkspaceError('delete needs a video id or a path')
    if not found:
        raise WorkspaceError(f"no indexed video matches '{doc.video_id or doc.uri}' in {workspace.folder}")
    return found


def _video_doc(video: VideoRow) -> VideoDoc:
    return VideoDoc(uri=video.path, video_id=video.id, duration=video.duration, fps=video.fps, width=video.width,
                    height=video.height, frame_count=video.frame_count, added=video.added)

