"""The Indexer on hand-made VideoDocs and embeddings (no CLIP, no ffmpeg)."""
import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from executors.storage.local import catalog
from executors.storage.ann.base import INDEX_FILES, INDEX_KINDS, IndexConfig
from executors.storage.local.catalog import Catalog
from executors.documents import DocList, FrameDoc, QueryDoc, VideoDoc
from executors.errors import QueryError, WorkspaceError
from executors.indexer import Indexer
from executors.storage.local.local_storage import HnswlibStorage
from executors.media.thumbnails import staging_folder
from executors.storage.local.vector_store import VectorStore
from executors.storage.local.lock import WriteLock
from tests.factories import clustered_vectors

DIM = 32


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def make_video(workspace: Path, name: str, embeddings: np.ndarray, fps: float = 1.0, shots=()) -> VideoDoc:
    """A VideoDoc as the loader and encoder leave it: one keyframe per 1/fps seconds, with thumbnails."""
    video_id = hashlib.sha256(name.encode()).hexdigest()
    thumbs = staging_folder(workspace, video_id)  # where the loader leaves them for the storage
    frames = []
    for i, e in enumerate(embeddings):
        (thumbs / f'{i}.jpg').write_bytes(b'jpeg')
        frames.append(FrameDoc(video_id=video_id, timestamp=i / fps, thumbnail=str(thumbs / f'{i}.jpg'), embedding=e))
    return VideoDoc(uri=f'/videos/{name}', video_id=video_id, duration=len(embeddings) / fps, fps=25.0, width=320,
                    height=240, shots=list(shots), frames=DocList[FrameDoc](frames))


@pytest.fixture
def library(workspace):
    """Three videos of 10 keyframes drifting around their own direction, and the directions."""
    rng = np.random.default_rng(0)
    directions = unit(rng.normal(size=(3, DIM)))
    videos = [make_video(workspace, f'v{i}.mp4', unit(d + 0.3 * rng.normal(size=(10, DIM))))
              for i, d in enumerate(directions)]
    return videos, directions


def index(indexer: Indexer, *videos: VideoDoc) -> list[str]:
    docs = indexer.index(DocList[VideoDoc](videos))
    return [d.status for d in docs]


def search(indexer: Indexer, embedding, top: int = 10, by: str = 'segment'):
    docs = indexer.search(DocList[QueryDoc]([QueryDoc(embedding=embedding)]), parameters={'top': top, 'by': by})
    return docs[0].matches


def hits(matches) -> list[tuple]:
    return [(m.video_id, m.start, m.end, m.timestamp, round(m.score, 5), m.thumbnail) for m in matches]


def test_a_frame_finds_its_own_video_and_moment(workspace, library):
    videos, _ = library
    indexer = Indexer(workspace=str(workspace))
    assert index(indexer, *videos) == ['indexed'] * 3
    frame = videos[1].frames[6]
    best = search(indexer, frame.embedding)[0]
    assert (best.video_id, best.uri, best.timestamp) == (videos[1].video_id, '/videos/v1.mp4', 6.0)
    assert best.thumbnail == str(workspace / 'thumbnails' / videos[1].video_id / '6.jpg')  # moved out of staging
    assert not list((workspace / 'thumbnails' / '.staging').iterdir())
    assert best.score == pytest.approx(1.0, abs=1e-3)  # float16 on disk
    assert best.start <= 6.0 < best.end <= 10.0
    indexer.close()


def test_segments_cover_the_frames_near_the_peak_and_snap_to_shots(workspace):
    rng = np.random.default_rng(1)
    target, other = unit(rng.normal(size=(2, DIM)))
    embeddings = np.stack([target if 3 <= i <= 5 else other for i in range(12)])
    indexer = Indexer(workspace=str(workspace), snap=1.0)
    index(indexer, make_video(workspace, 'cut.mp4', unit(embeddings + 0.01 * rng.normal(size=(12, DIM))),
                              shots=[2.6, 9.0]))
    best = search(indexer, target, top=1)[0]
    assert (best.start, best.end) == (2.6, 6.0)
    others = sorted((m.start, m.end) for m in search(indexer, target, top=5)[1:])
    assert others == [(0.0, 2.6), (6.0, 12.0)]  # the rest of the video, clear of the best segment
    indexer.close()


def test_index_leaves_failed_videos_alone_and_fails_videos_without_embeddings(workspace, library):
    videos, _ = library
    failed = VideoDoc(uri='/videos/broken.mp4', status='failed', error='broken.mp4: no video stream')
    empty = VideoDoc(uri='/videos/empty.mp4', video_id='ab' * 32)
    indexer = Indexer(workspace=str(workspace))
    assert index(indexer, failed, empty, videos[0]) == ['failed', 'failed', 'indexed']
    assert failed.error == 'broken.mp4: no video stream'
    assert 'empty.mp4' in empty.error and 'embedding' in empty.error
    indexer.close()


def pieces(video: VideoDoc, size: int) -> list[VideoDoc]:
    """The video as the loader hands it on with chunk_frames=size: pieces of its frames, the last marked."""
    frames = list(video.frames)
    return [video.model_copy(update={'frames': DocList[FrameDoc](frames[i:i + size]),
                                     'last_chunk': i + size >= len(frames)}) for i in range(0, len(frames), size)]


def test_a_video_in_pieces_is_stored_whole_with_its_last_piece(workspace, library):
    videos, directions = library
    indexer = Indexer(workspace=str(workspace))
    returned = [indexer.index(DocList[VideoDoc]([piece])) for piece in pieces(videos[0], 4)]
    assert [len(docs) for docs in returned] == [0, 0, 1]
    assert returned[-1][0].status == 'indexed' and returned[-1][0].frame_count == 10
    stored = indexer.storage.frames(videos[0].video_id)
    assert stored.timestamps.tolist() == [float(i) for i in range(10)]
    expected = unit(np.stack([f.embedding for f in videos[0].frames]))
    assert np.allclose(stored.vectors, expected, atol=1e-3)  # float16 on disk
    assert search(indexer, directions[0], top=1)[0].video_id == videos[0].video_id
    indexer.close()


def test_a_piece_without_embeddings_fails_its_video_at_the_last_piece(workspace, library):
    videos, _ = library
    indexer = Indexer(workspace=str(workspace))
    first, middle, last = pieces(videos[1], 4)
    middle.frames[0].embedding = None
    assert [len(indexer.index(DocList[VideoDoc]([p]))) for p in (first, middle)] == [0, 0]
    done = indexer.index(DocList[VideoDoc]([last]))[0]
    assert done.status == 'failed' and 'embedding' in done.error
    assert indexer.list_videos(DocList[VideoDoc]()) == []
    indexer.close()


def test_a_video_that_fails_after_some_pieces_came_leaves_no_staged_thumbnails(workspace, library):
    """Its speech, say, could not be read: the last piece arrives failed, and the thumbnails its earlier pieces
    staged go with it."""
    videos, _ = library
    indexer = Indexer(workspace=str(workspace))
    first, middle, last = pieces(videos[1], 4)
    assert [len(indexer.index(DocList[VideoDoc]([p]))) for p in (first, middle)] == [0, 0]
    staged = Path(first.frames[0].thumbnail).parent
    assert staged.is_dir()
    last.status, last.error = 'failed', 'v1.mp4: cannot read its subtitles or speech (bad audio)'
    assert [d.status for d in indexer.index(DocList[VideoDoc]([last]))] == ['failed']
    assert not staged.exists() and indexer.list_videos(DocList[VideoDoc]()) == []
    indexer.close()


def test_duplicate_add_is_reported_and_stores_nothing(workspace, library):
    videos, _ = library
    indexer = Indexer(workspace=str(workspace))
    index(indexer, videos[0])
    again = videos[0].model_copy(update={'status': ''})
    assert index(indexer, again) == ['already indexed']
    assert [v.frame_count for v in indexer.list_videos(DocList[VideoDoc]())] == [10]
    indexer.close()


def test_list_returns_each_video_with_its_frame_count(workspace, library):
    videos, _ = library
    indexer = Indexer(workspace=str(workspace))
    index(indexer, *videos)
    listed = indexer.list_videos(DocList[VideoDoc]())
    assert [(v.video_id, v.uri, v.frame_count, v.duration) for v in listed] == [
        (v.video_id, v.uri, 10, 10.0) for v in videos]
    assert all(v.added and not v.frames for v in listed)
    indexer.close()


def test_persistence_round_trip(workspace, library):
    videos, directions = library
    indexer = Indexer(workspace=str(workspace))
    index(indexer, *videos)
    before = [hits(search(indexer, d)) for d in directions]
    indexer.close()
    assert (workspace / 'ivf.faiss').exists() and (workspace / 'ivf.json').exists()  # the default index
    reopened = Indexer(workspace=str(workspace))
    assert [hits(search(reopened, d)) for d in directions] == before
    assert before[0][0][0] == videos[0].video_id
    reopened.close()


@pytest.mark.parametrize('kind', INDEX_KINDS)
@pytest.mark.parametrize('damage', ['delete', 'garbage'])
def test_a_missing_or_unreadable_index_is_rebuilt_with_a_message(workspace, library, caplog, damage, kind):
    videos, directions = library
    indexer = Indexer(workspace=str(workspace), index=kind)
    index(indexer, *videos)
    before = hits(search(indexer, directions[2]))
    indexer.close()
    saved = workspace / INDEX_FILES[kind]
    saved.unlink() if damage == 'delete' else saved.write_bytes(b'not an index' * 100)
    with caplog.at_level(logging.WARNING):
        reopened = Indexer(workspace=str(workspace), index=kind)
        assert hits(search(reopened, directions[2])) == before
    assert 'rebuilding' in caplog.text and INDEX_FILES[kind] in caplog.text
    reopened.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # the rebuilt index was saved: no rebuild next time
        third = Indexer(workspace=str(workspace), index=kind)
        assert hits(search(third, directions[2])) == before
    assert 'rebuilding' not in caplog.text
    third.close()


def test_delete_then_search(workspace, library):
    videos, directions = library
    indexer = Indexer(workspace=str(workspace))
    index(indexer, *videos)
    deleted = indexer.delete(DocList[VideoDoc]([VideoDoc(video_id=videos[0].video_id[:8])]))
    assert [d.video_id for d in deleted] == [videos[0].video_id]
    assert not (workspace / 'thumbnails' / videos[0].video_id).exists()
    assert (workspace / 'thumbnails' / videos[1].video_id).exists()
    assert videos[0].video_id not in {m.video_id for m in search(indexer, directions[0], top=50)}
    indexer.delete(DocList[VideoDoc]([VideoDoc(uri='/videos/v1.mp4')]))
    indexer.close()
    reopened = Indexer(workspace=str(workspace))  # the deletions persist
    assert {m.video_id for m in search(reopened, directions[0], top=50)} == {videos[2].video_id}
    with pytest.raises(WorkspaceError, match='no indexed video matches .deadbeef'):
        reopened.delete(DocList[VideoDoc]([VideoDoc(video_id='deadbeef')]))
    with pytest.raises(WorkspaceError, match='not a video id'):
        reopened.delete(DocList[VideoDoc]([VideoDoc(video_id='abc')]))
    again = make_video(workspace, 'v0.mp4', np.stack([f.embedding for f in videos[0].frames]))  # loaded anew
    assert index(reopened, again) == ['indexed']  # can come back
    assert search(reopened, directions[0])[0].video_id == videos[0].video_id
    reopened.close()


def test_by_video_ranks_whole_videos_by_their_mean_and_returns_each_once(workspace, library):
    videos, directions = library
    indexer = Indexer(workspace=str(workspace))
    index(indexer, *videos)
    matches = search(indexer, directions[1], by='video')
    assert [m.video_id for m in matches][0] == videos[1].video_id
    assert sorted(m.video_id for m in matches) == sorted(v.video_id for v in videos)
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)
    assert search(indexer, directions[1], top=1, by='video')[0].video_id == videos[1].video_id
    indexer.close()


def test_search_works_from_one_frame_and_on_an_empty_workspace(workspace):
    indexer = Indexer(workspace=str(workspace))
    query = unit(np.ones(DIM))
    assert search(indexer, query) == []
    assert search(indexer, query, by='video') == []
    index(indexer, make_video(workspace, 'one.mp4', query[None]))
    assert [(m.start, m.end, m.timestamp) for m in search(indexer, query, top=10)] == [(0.0, 1.0, 0.0)]
    with pytest.raises(QueryError, match="by must be one of segment, video"):
        indexer.search(DocList[QueryDoc]([QueryDoc(embedding=query)]), parameters={'by': 'frame'})
    indexer.close()


def test_writers_take_turns_and_readers_see_each_commit(workspace, library):
    videos, directions = library
    first, second = Indexer(workspace=str(workspace)), Indexer(workspace=str(workspace), lock_wait=0.3)
    index(first, videos[0])
    assert search(second, directions[0])[0].video_id == videos[0].video_id
    assert index(second, videos[1]) == ['indexed']  # the lock is held only while a write runs
    assert search(first, directions[1])[0].video_id == videos[1].video_id  # new commits are seen
    assert index(first, videos[1].model_copy(update={'status': ''})) == ['already indexed']
    second.delete(DocList[VideoDoc]([VideoDoc(video_id=videos[0].video_id)]))
    assert videos[0].video_id not in {m.video_id for m in search(first, directions[0], top=50)}
    other = WriteLock(workspace, wait=0)
    other.acquire()  # another process in the middle of a write
    try:
        third = videos[2].model_copy(update={'status': ''})
        assert index(second, third) == ['failed'] and 'workspace is locked' in third.error
    finally:
        other.release()
    # the failed try removed what it had staged, so a retry loads the video anew, as the Flow does
    retry = make_video(workspace, 'v2.mp4', np.stack([f.embedding for f in videos[2].frames]))
    assert index(second, retry) == ['indexed']
    first.close()
    second.close()


@pytest.mark.parametrize('step', ['after_vectors', 'inside_transaction', 'after_commit'])
def test_a_crash_during_an_add_leaves_the_video_fully_indexed_or_absent(workspace, library, step):
    videos, directions = library
    first = Indexer(workspace=str(workspace))
    index(first, videos[0])
    first.close()
    pid = os.fork()
    if pid == 0:  # the child crashes at `step` while adding videos[1]
        try:
            _crash_at(step)
            crashing = Indexer(workspace=str(workspace))
            index(crashing, videos[1])
        finally:
            os._exit(0)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 3  # it did crash there
    reopened = Indexer(workspace=str(workspace))
    stored = {v.video_id: v.frame_count for v in reopened.list_videos(DocList[VideoDoc]())}
    best = search(reopened, directions[1], top=50)
    if step == 'after_commit':
        assert stored == {videos[0].video_id: 10, videos[1].video_id: 10}
        assert best[0].video_id == videos[1].video_id
    else:
        assert stored == {videos[0].video_id: 10}
        assert {m.video_id for m in best} == {videos[0].video_id}
    assert index(reopened, videos[2]) == ['indexed']  # the writer drops orphan rows, then appends
    rows = os.path.getsize(workspace / 'embeddings.f16') // (2 * DIM)
    assert rows == sum(stored.values()) + 10
    assert search(reopened, directions[2])[0].video_id == videos[2].video_id
    reopened.close()


def _crash_at(step: str) -> None:
    """Make this (forked) process die without cleaning up at one step of HnswlibStorage.add."""
    def die(*args, **kwargs):
        os._exit(3)

    if step == 'after_vectors':
        Catalog.add_video = die
    elif step == 'inside_transaction':  # every row inserted, COMMIT never runs
        catalog._Transaction.__exit__ = die
    else:
        VectorStore.add_to_index = die


def test_ann_recall_at_10_against_brute_force_on_20k_vectors(tmp_path):
    vectors = clustered_vectors(20_200, 64, centres=1000, noise=1.0, seed=2)
    data, queries = vectors[:20_000], vectors[20_000:]
    store = VectorStore(tmp_path, 64, IndexConfig('hnsw', ef_search=64))
    store.append(data)
    store.open_index(np.ones(len(data), dtype=bool), generation=0)
    stored = store.read(0, len(data))  # float16 on disk is the truth the graph is built from
    exact = np.argsort(-(queries @ stored.T), axis=1)[:, :10]
    found = [store.nearest(q, 10)[0] for q in queries]
    recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)])
    assert recall >= 0.99
    store.close()


def test_workspace_rejects_embeddings_of_another_size(workspace, library):
    videos, _ = library
    indexer = Indexer(workspace=str(workspace))
    index(indexer, videos[0])
    wider = make_video(workspace, 'wide.mp4', unit(np.ones((2, 2 * DIM))))
    assert index(indexer, wider) == ['failed']
    assert '32-dimensional' in wider.error and '64' in wider.error
    indexer.close()


def test_a_workspace_reader_ignores_rows_no_committed_video_owns(workspace, library):
    videos, directions = library
    indexer = Indexer(workspace=str(workspace))
    index(indexer, videos[0])
    indexer.close()
    with open(workspace / 'embeddings.f16', 'ab') as f:  # what a crash before the commit leaves
        f.write(np.tile(directions[1], (5, 1)).astype(np.float16).tobytes() + b'\x01')
    (workspace / 'ivf.faiss').unlink()
    storage = HnswlibStorage(workspace)
    found = storage.nearest(directions[1], 50)
    assert set(found.video_ids) == {videos[0].video_id} and found.frames.max() < 10
    storage.close()


def test_searches_from_other_threads_while_indexing_see_whole_videos_only(workspace):
    """The page shares one Indexer between sessions: a search during an add sees the video whole or not at all."""
    import threading

    rng = np.random.default_rng(3)
    direction = unit(rng.normal(size=DIM))
    videos = [make_video(workspace, f'c{i}.mp4', unit(direction + 0.3 * rng.normal(size=(40, DIM)))) for i in range(12)]
    indexer = Indexer(workspace=str(workspace))
    errors, seen = [], []

    def keep_searching():
        while not done.is_set():
            try:
                matches = search(indexer, direction, top=20)
                seen.append(len({m.video_id for m in matches}))
                assert all(m.start <= m.timestamp < m.end and m.thumbnail for m in matches)
            except Exception as e:  # collected and re-raised in the main thread
                errors.append(e)

    done = threading.Event()
    searchers = [threading.Thread(target=keep_searching) for _ in range(2)]
    for thread in searchers:
        thread.start()
    try:
        for video in videos:
            assert index(indexer, video) == ['indexed']
    finally:
        done.set()
        for thread in searchers:
            thread.join()
    assert errors == [] and seen
    assert len(indexer.list_videos(DocList[VideoDoc]())) == 12
    final = hits(search(indexer, direction, top=20))
    indexer.close()
    assert hits(search(Indexer(workspace=str(workspace)), direction, top=20)) == final
