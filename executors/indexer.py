"""The Indexer: stores indexed videos through a storage backend and answers /search, /list, /delete."""
import functools
import logging
import os
import threading
from types import MappingProxyType
from typing import Mapping

import numpy as np

from executors.media.thumbnails import remove_staged
from executors.retrieval import search
from executors.retrieval.footage import clip_sources, duplicate_groups
from executors.base import Executor, requests
from executors.models.clip_model import image_space_id
from executors.documents import SCREEN, CueDoc, DocList, DuplicateDoc, FrameDoc, QueryDoc, SegmentDoc, Status, VideoDoc
from executors.errors import QueryError, WorkspaceError
from executors.retrieval.answer import LISTS, Settings, answer
from executors.storage.interface import Frames, ImageSpace, Storage, VideoRecord
from executors.stored import as_document, missing_thumbnails, named_videos
from executors.storage.backends import (HnswOptions, IvfOptions, MilvusOptions, check_engine, engine_options,
                                        open_storage)
from executors.vectors import import_torch, torch_on_this_thread, unit_rows

log = logging.getLogger(__name__)

RANKINGS = ('segment', 'video')
WITHIN = ('all', 'visual', 'speech', SCREEN)


def _one_at_a_time(handler):
    """Run the handler under the Indexer's lock: SQLite's connection and hnswlib's graph are not
    safe to use from two threads at once. Decoding and encoding, the slow parts, run outside it."""
    @functools.wraps(handler)
    def locked(self, *args, **kwargs):
        with self._busy:
            return handler(self, *args, **kwargs)

    return locked


class Indexer(Executor):
    """Keyframe vectors, shots and cues in a storage backend; search fuses what is seen and said.

    Args:
        workspace: folder of the default backend's index, metadata and thumbnails.
        model: the CLIP model's name, recorded with the vectors (flow.yml's top-level `with:`).
        backend: 'local' (the workspace folder: float16 rows, an ANN index, SQLite; 'hnswlib' is its
            old name) or 'milvus' (Milvus Lite file or server).
        index: the local folder's nearest-neighbour index: 'ivf' (faiss: exact search below 40,000
            keyframes, then an inverted file of 4-bit codes whose best 500 are rescored from the float16
            rows) or 'hnsw' (hnswlib's graph). A workspace saved with the other kind builds this one from its rows.
        ivf: IvfOptions (or their mapping): nprobe, lists scanned per query (of ~4 * sqrt(keyframes)).
        hnsw: HnswOptions: M (links per keyframe: better recall, ~8*M bytes more per keyframe),
            ef_construction (build effort, fixed once a vector is inserted), ef_search (search effort,
            raised to the number of candidates when lower). Milvus's HNSW index takes them too.
        milvus: MilvusOptions: uri (a file for Milvus Lite, default <workspace>/milvus.db, or
            http://host:19530) and token.
        A block the chosen engine does not read must keep its defaults (a ConfigError names the option).
        candidates: nearest keyframes fetched per query; the videos they belong to are scored exactly.
        margin: a segment grows over neighbouring keyframes scoring within this much (cosine) of
            its peak; CLIP's scores of one shot differ by about 0.01 to 0.03.
        max_segment: the longest segment, in seconds.
        snap: a segment's start and end move outward to a shot cut this close, in seconds.
        speech_candidates: cue hits fetched per text query before they are grouped into spoken segments.
        merge_gap: seconds: matching cues of one video closer than this become one spoken segment.
        fusion_weights: {list name: weight} in the fusion (executors/retrieval/fusion.py): a result's score is
            the sum over the lists that found it of weight x its evidence there (0-1); a list left out weighs 1.
        fusion_slack: seconds: results of one video this close are one moment.
        meaning_floor: cosine between the query's and a cue's text embeddings below which the cue is not
            found by meaning (executors/retrieval/cue_search.py); 1 = search what is said by words only.
        lock_wait: seconds a write waits for another process's write to the same workspace.
    """

    stores = True

    nested_overrides = {'uri': ('milvus', 'uri')}  # the Flow's override `uri` (CLI --uri) sets milvus.uri

    def __init__(self, workspace: str = 'data/workspace', model: str = '', backend: str = 'local',
                 index: str = 'ivf', ivf: IvfOptions = IvfOptions(), hnsw: HnswOptions = HnswOptions(),
                 milvus: MilvusOptions = MilvusOptions(), candidates: int = 64, margin: float = 0.02,
                 max_segment: float = 30.0, snap: float = 2.0, speech_candidates: int = 100, merge_gap: float = 2.0,
                 fusion_weights: Mapping[str, float] = MappingProxyType({'visual': 1.0, 'speech': 1.0, 'screen': 1.0}),
                 fusion_slack: float = 1.0, meaning_floor: float = 0.8, lock_wait: float = 60.0):
        engines = {name: engine_options(name, given)
                   for name, given in (('ivf', ivf), ('hnsw', hnsw), ('milvus', milvus))}
        backend = check_engine(backend, index, engines)
        for name, value in (('candidates', candidates), ('speech_candidates', speech_candidates)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'{name} must be a positive integer, not {value!r}')
        if margin < 0 or max_segment <= 0 or snap < 0:
            raise ValueError('margin and snap must be >= 0 and max_segment > 0 (seconds)')
        weights = {name: 1.0 for name in LISTS} | dict(fusion_weights or {})
        if any(not isinstance(w, (int, float)) or w < 0 for w in weights.values()) or merge_gap < 0 or fusion_slack < 0:
            raise ValueError(f'fusion_weights, merge_gap and fusion_slack must be >= 0, not {weights}, {merge_gap}, '
                             f'{fusion_slack}')
        self.storage: Storage = open_storage(backend, workspace=workspace, index=index, lock_wait=lock_wait, **engines)
        self.model = str(model)
        self.grouping = search.Grouping(margin, max_segment, snap)
        if not 0 <= meaning_floor <= 1:
            raise ValueError(f'meaning_floor must be a cosine within 0..1, not {meaning_floor!r}')
        self.settings = Settings(candidates, self.grouping, speech_candidates, merge_gap, weights, fusion_slack,
                                 meaning_floor)
        self._busy = threading.Lock()  # the page's sessions share one Indexer: one request at a time
        self._pieces: dict[str, list[Frames | WorkspaceError]] = {}  # keyframes of videos arriving in chunks

    @requests(on='/index')
    @_one_at_a_time
    def index(self, docs: DocList[VideoDoc]) -> DocList[VideoDoc]:
        """Store each loaded and encoded video; its status becomes 'indexed', 'already indexed' or 'failed'.

        A video that arrives in chunks is stored (and returned, with its last chunk's frames and
        `frame_count` the whole video's) with its last chunk; until then only its keyframes' times,
        embeddings and thumbnails are kept, as arrays, not documents.
        """
        complete = DocList[VideoDoc]()
        for doc in docs:
            if doc.status == Status.PENDING and not doc.last_chunk:
                try:
                    self._pieces.setdefault(doc.uri, []).append(_keyframes(doc))
                except WorkspaceError as e:  # the video fails with its last chunk
                    self._pieces[doc.uri] = [e]
                continue
            complete.append(doc)
            earlier = self._pieces.pop(doc.uri, [])
            if doc.status != Status.PENDING:  # failed on the way here, perhaps after some of its pieces came
                remove_staged(_thumbnails(doc, earlier))
                continue
            try:
                record, frames, shots, cues = _to_store(doc, earlier)
                stored = self.storage.add(record, frames, shots, cues, space=self._space(doc.space))
                doc.status = Status.INDEXED if stored else Status.ALREADY_INDEXED
                doc.frame_count = len(frames)
            except WorkspaceError as e:
                doc.status, doc.error = Status.FAILED, str(e)
                remove_staged(_thumbnails(doc, earlier))
        return complete

    @requests(on='/save')
    @_one_at_a_time
    def save(self, docs: DocList[VideoDoc]) -> DocList[VideoDoc]:
        """Persist derived state (the search graph) after a batch."""
        self.storage.save()
        return docs

    @requests(on='/warm')
    @_one_at_a_time
    def warm(self, docs: DocList[VideoDoc]) -> DocList[VideoDoc]:
        """Read ahead what searches need, so the first ones cost what later ones do (the page starting);
        a workspace problem is left for the first search to report."""
        import_torch()  # a long-lived process scores rows with torch (executors.vectors.loaded_torch)
        try:
            self.storage.preload()
        except WorkspaceError as e:
            log.warning('%s', e)
        return docs

    @requests(on='/search')
    @_one_at_a_time
    def search(self, docs: DocList[QueryDoc], parameters: dict) -> DocList[QueryDoc]:
        """Fill each query's matches: the best `top` segments (or videos, by='video') after `offset`."""
        top, offset = int(parameters.get('top', 10)), int(parameters.get('offset', 0))
        by, within = parameters.get('by', 'segment'), parameters.get('within', 'all')
        if by not in RANKINGS:
            raise QueryError(f"by must be one of {', '.join(RANKINGS)}, not {by!r}")
        if within not in WITHIN:
            raise QueryError(f"within must be one of {', '.join(WITHIN)}, not {within!r}")
        if top < 1 or offset < 0:
            raise QueryError(f'top must be at least 1 and offset at least 0, not {top} and {offset}')
        with torch_on_this_thread():
            for doc in docs:
                matches = self._matches(doc, top + offset, by, within)
                doc.matches = DocList[SegmentDoc](matches[offset:offset + top])
        return docs

    def _matches(self, query: QueryDoc, count: int, by: str, within: str) -> list[SegmentDoc]:
        lists = LISTS if within == 'all' else (within,)
        if query.embedding is None and (within == 'visual' or not query.text.strip()):
            raise QueryError('the query has no embedding: give a text or an image')
        vector = None if query.embedding is None or within in ('speech', SCREEN) else self._query_vector(query)
        if by == 'video' and vector is not None:
            return search.search_videos(self.storage, vector, count=count, grouping=self.grouping)
        return answer(self.storage, vector, query.text, count=count, lists=lists, settings=self.settings,
                      meaning=self._meaning_vector(query))

    def _space(self, identity: str = '') -> ImageSpace:
        """The image space of what this flow embeds: as the encoder said, else the flow's model's."""
        return ImageSpace(identity, self.model) if identity else self.image_space(self.model)

    @staticmethod
    def image_space(model: str) -> ImageSpace:
        """The image space `model` (a CLIP name, checkpoint or tuned file) embeds keyframes into."""
        return ImageSpace(image_space_id(model) if model else '', model)

    def _query_vector(self, query: QueryDoc) -> np.ndarray:
        stored, space = self.storage.image_space(), self._space(query.space)
        if stored and space.identity and space.identity != stored.identity:
            raise QueryError(f'{self.storage.location}: holds vectors of {stored.describe()}, but this query was '
                             f'embedded for {space.describe()}: search with the model that indexed it (or a text '
                             f'model aligned with it), or index with this one into a new --workspace')
        vector = np.asarray(query.embedding, dtype=np.float32).ravel()
        if not np.isfinite(vector).all():
            raise QueryError('the query embedding is not finite: the model gave NaN or infinity')
        return unit_rows(vector)

    def _meaning_vector(self, query: QueryDoc) -> np.ndarray | None:
        """The query's text embedding for search by meaning; None without one or from another image space."""
        try:
            return self._query_vector(query) if query.embedding is not None and query.text.strip() else None
        except QueryError:
            return None

    @requests(on='/locate')
    @_one_at_a_time
    def locate(self, docs: DocList[QueryDoc], parameters: dict) -> DocList[QueryDoc]:
        """Fill each clip query's matches: the stored videos it comes from, and where it lies in each."""
        for doc in docs:
            doc.matches = DocList[SegmentDoc](clip_sources(self.storage, doc, int(parameters.get('top', 10))))
        return docs

    @requests(on='/duplicates')
    @_one_at_a_time
    def duplicates(self, docs: DocList[VideoDoc], parameters: dict) -> DocList[DuplicateDoc]:
        """Groups of stored videos that share footage (parameters: threshold, a cosine)."""
        return DocList[DuplicateDoc](duplicate_groups(self.storage, float(parameters.get('threshold', 0.9))))

    @requests(on='/list')
    @_one_at_a_time
    def list_videos(self, docs: DocList[VideoDoc]) -> DocList[VideoDoc]:
        """Every stored video with its frame and cue counts and the time it was added."""
        screen = self.storage.screen_counts()
        return DocList[VideoDoc]([as_document(v, screen.get(v.id, 0)) for v in self.storage.videos()])

    @requests(on='/video')
    @_one_at_a_time
    def stored_video(self, docs: DocList[VideoDoc]) -> DocList[VideoDoc]:
        """Each named video as stored: its keyframes (time, thumbnail, embedding), shots and cues."""
        found = DocList[VideoDoc]()
        for doc in docs:
            for video in named_videos(self.storage, doc):
                frames = self.storage.frames(video.id)
                stored = as_document(video)
                stored.frames = DocList[FrameDoc]([FrameDoc(video_id=video.id, timestamp=float(t), thumbnail=thumb,
                                                            embedding=e)
                                                   for t, thumb, e in zip(frames.timestamps, frames.thumbnails,
                                                                          frames.vectors)])
                stored.shots, stored.cues = self.storage.shots(video.id), DocList[CueDoc](self.storage.cues(video.id))
                space = self.storage.image_space()
                stored.space = space.identity if space else ''
                found.append(stored)
        return found

    @requests(on='/thumbnails')
    @_one_at_a_time
    def missing_thumbnails(self, docs: DocList[VideoDoc]) -> DocList[VideoDoc]:
        """Each named video whose thumbnails are not all there: its file, and the keyframes (time, thumbnail) missing."""
        found = (missing_thumbnails(self.storage, video) for doc in docs for video in named_videos(self.storage, doc))
        return DocList[VideoDoc]([video for video in found if video])

    @requests(on='/delete')
    @_one_at_a_time
    def delete(self, docs: DocList[VideoDoc]) -> DocList[VideoDoc]:
        """Delete each video named by id, id prefix (6+ hex characters) or path; return what was deleted."""
        deleted = DocList[VideoDoc]()
        for doc in docs:
            for video in named_videos(self.storage, doc):
                if self.storage.delete(video.id):
                    deleted.append(as_document(video))
        return deleted

    def close(self) -> None:
        """Save derived state (if this process changed it) and release the storage."""
        with self._busy:
            self.storage.close()


def _thumbnails(doc: VideoDoc, earlier: list) -> list[str]:
    """The staged thumbnails of a video's last piece `doc` and of its `earlier` pieces."""
    return [f.thumbnail for f in doc.frames] + [t for piece in earlier if isinstance(piece, Frames) for t in piece.thumbnails]


def _keyframes(doc: VideoDoc) -> Frames:
    """A piece's keyframes (times, unit embeddings, thumbnails); WorkspaceError when one has no embedding."""
    if any(f.embedding is None for f in doc.frames):
        raise WorkspaceError(f'{os.path.basename(doc.uri) or doc.video_id}: has no keyframe embeddings to index')
    if not len(doc.frames):
        return Frames(np.empty(0), np.empty((0, 0), np.float32), [])
    embeddings = unit_rows(np.stack([np.asarray(f.embedding, dtype=np.float32).ravel() for f in doc.frames]))
    return Frames(np.array([f.timestamp for f in doc.frames], dtype=np.float64), embeddings,
                  [f.thumbnail for f in doc.frames])


def _to_store(doc: VideoDoc, earlier: list) -> tuple[VideoRecord, Frames, list[float], list[CueDoc]]:
    """What the storage keeps of a loaded and encoded video (its last piece `doc`, after the keyframes of
    the `earlier` pieces); WorkspaceError when it has no embeddings."""
    name = os.path.basename(doc.uri) or doc.video_id
    if not doc.video_id:
        raise WorkspaceError(f'{name}: has no video_id (it was not loaded)')
    for failed in (piece for piece in earlier if isinstance(piece, WorkspaceError)):
        raise failed
    pieces = [piece for piece in [*earlier, _keyframes(doc)] if len(piece)]
    if not pieces:
        raise WorkspaceError(f'{name}: has no keyframe embeddings to index')
    try:
        status = os.stat(doc.uri)
        size, mtime_ns = status.st_size, status.st_mtime_ns
    except OSError:
        size = mtime_ns = 0
    record = VideoRecord(doc.video_id, doc.uri, float(doc.duration), float(doc.fps), int(doc.width), int(doc.height),
                         size=size, mtime_ns=mtime_ns)
    frames = Frames(np.concatenate([p.timestamps for p in pieces]), np.concatenate([p.vectors for p in pieces]),
                    [thumbnail for p in pieces for thumbnail in p.thumbnails])
    return record, frames, list(doc.shots), list(doc.cues)
